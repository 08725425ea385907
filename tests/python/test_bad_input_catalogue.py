"""Every bad-input class of DESIGN.md ends as a quarantined row with its reason, or evolves the schema."""

from __future__ import annotations

import json

import pytest

from el.settings import Settings
from shopsim import SimConfig, Simulator
from shopsim.config import Rates
from tests.python.el_helpers import load_sources, settings_for, wh

# DESIGN.md class -> (raw dataset, source table, reason code, column whose value is in the record)
CATALOGUE = {
    "null keys (orders)": ("raw_shop", "orders", "null_key", "customer_id"),
    "null keys (events)": ("raw_events", "events", "null_key", "event_id"),
    "null keys (spend files)": ("raw_marketing", "spend", "null_key", "channel"),
    "unknown event types": ("raw_events", "events", "unknown_value", "event_type"),
    "malformed JSON": ("raw_events", "events", "malformed_JSON", "properties"),
    "negative amounts (payments)": ("raw_shop", "payments", "negative_amount", "amount"),
    "negative amounts (spend files)": ("raw_marketing", "spend", "negative_amount", "spend"),
    "type drift (order item quantity)": ("raw_shop", "order_items", "type_drift", "quantity"),
    "type drift (event user id)": ("raw_events", "events", "type_drift", "user_id"),
    "type drift (spend amount)": ("raw_marketing", "spend", "type_drift", "spend"),
}


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory):
    settings = settings_for(tmp_path_factory.mktemp("catalogue"))
    sim = Simulator(settings.sources_root, SimConfig(scale=30, drift_day=2, rates=Rates(bad_row=0.2)))
    sim.advance(10)  # spend files carry only 8 rows a day
    load_sources(settings)
    return settings


@pytest.mark.parametrize("defect", sorted(CATALOGUE))
def test_bad_rows_are_quarantined_with_reason_and_record(loaded: Settings, defect: str) -> None:
    dataset, table, code, column = CATALOGUE[defect]
    rows = wh(
        loaded,
        f"select reason, record, _source from {dataset}.rejects "
        f"where source_table = '{table}' and reason_code = '{code}'",
    )
    assert rows, f"no quarantined row for {defect}"
    for reason, record, origin in rows:
        assert column in reason
        assert column in json.loads(record), "the raw record is kept whole"
        assert origin


def test_new_columns_evolve_the_raw_schema(loaded: Settings) -> None:
    """A column appearing in a source is added to raw, not rejected, and filled from then on."""
    for dataset, table, column in (
        ("raw_shop", "customers", "loyalty_points"),
        ("raw_events", "events", "app_version"),
        ("raw_marketing", "spend", "conversions"),
    ):
        (filled,) = wh(loaded, f"select count({column}) from {dataset}.{table}")[0]
        (empty,) = wh(loaded, f"select count(*) - count({column}) from {dataset}.{table}")[0]
        assert filled > 0 and empty > 0, f"{dataset}.{table}.{column}: before and after the drift day"


def test_fit_rows_never_land_in_rejects(loaded: Settings) -> None:
    assert wh(loaded, "select count(*) from raw_shop.rejects where reason_code not in "
                      "('null_key', 'negative_amount', 'type_drift')")[0][0] == 0  # fmt: skip
