"""Every bad-input class of DESIGN.md ends as a quarantined row with its reason, or evolves the schema."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation

import pytest

from el.contracts import REJECT_CODES
from el.settings import Settings
from shopsim import SimConfig, Simulator
from shopsim.config import Rates, SourcePaths
from tests.python.el_helpers import SERVED, load_sources, settings_for, src, wh

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


def test_every_reason_code_written_is_one_the_models_accept(loaded: Settings) -> None:
    """The reason_code tests of models/ list el.contracts.REJECT_CODES (test_project_conventions)."""
    written = {code for dataset in ("raw_shop", "raw_events", "raw_marketing")
               for (code,) in wh(loaded, f"select distinct reason_code from {dataset}.rejects")}  # fmt: skip
    assert written and written <= set(REJECT_CODES), written


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


# shop table -> (key, the contract breach in the source's own terms: SQLite's values, not the loader's checks,
# and the reason code its rows are rejected with); the simulator breaks no other shop table
SHOP_BREACHES = {
    "orders": ("order_id", "customer_id is null", "null_key"),
    "order_items": ("order_item_id", "typeof(quantity) <> 'integer'", "type_drift"),
    "payments": ("payment_id", "amount < 0", "negative_amount"),
}
# the simulator's record of the defect it put into an event -> the reason code the event must be rejected with
EVENT_DEFECTS = {
    "null_key": "null_key",
    "unknown_event_type": "unknown_value",
    "malformed_json": "malformed_JSON",
    "type_drift": "type_drift",
}


@pytest.mark.parametrize("table", sorted(SHOP_BREACHES))
def test_shop_rows_land_in_raw_or_rejects_as_the_source_says(loaded: Settings, table: str) -> None:
    """Every source row breaking the contract is rejected (and not in raw); every other row is in raw (and
    not rejected): the split is checked against the source's values, not against the reason codes."""
    key, breach, code = SHOP_BREACHES[table]
    shop = SourcePaths(loaded.sources_root).shop_db
    bad = {row[0] for row in src(shop, f"select {key} from {table} where {breach}")}
    fit = {row[0] for row in src(shop, f"select {key} from {table} where not ({breach})")}
    assert bad and fit
    in_raw = {row[0] for row in wh(loaded, f"select distinct {key} from raw_shop.{table}")}
    rejected = {
        row[0]
        for row in wh(
            loaded,
            f"select distinct cast(json_extract(record, '$.{key}') as bigint) from raw_shop.rejects "
            f"where source_table = '{table}'",
        )
    }
    assert in_raw == fit
    assert rejected == bad
    codes = wh(loaded, f"select distinct reason_code from raw_shop.rejects where source_table = '{table}'")
    assert codes == [(code,)]


def test_only_the_broken_shop_tables_have_rejects(loaded: Settings) -> None:
    tables = wh(loaded, "select distinct source_table from raw_shop.rejects order by 1")
    assert tables == [(table,) for table in sorted(SHOP_BREACHES)]


def test_events_land_in_raw_or_rejects_as_the_simulator_made_them(loaded: Settings) -> None:
    """The events the API served: those without a defect are in raw, each defect is rejected with its code,
    as often as it was delivered (a redelivered bad event is rejected again)."""
    store = SourcePaths(loaded.sources_root).events_db
    fit = {row[0] for row in src(store, f"select event_id from events where defect is null and {SERVED}")}
    assert {row[0] for row in wh(loaded, "select distinct event_id from raw_events.events")} == fit
    served = dict(src(store, f"select defect, count(*) from events where defect is not null and {SERVED} group by 1"))
    rejected = dict(wh(loaded, "select reason_code, count(*) from raw_events.rejects group by 1"))
    assert set(served) == set(EVENT_DEFECTS)
    assert rejected == {EVENT_DEFECTS[defect]: count for defect, count in served.items()}


def _fit_spend(text: str | None) -> bool:
    """A spend amount the contract accepts: a decimal number, not negative."""
    try:
        return Decimal((text or "").strip()) >= 0
    except InvalidOperation:
        return False


def test_spend_rows_in_raw_keep_the_contract_and_every_reject_breaks_it(loaded: Settings) -> None:
    bad_raw = "select count(*) from raw_marketing.spend where channel is null or channel = '' or spend < 0"
    assert wh(loaded, bad_raw) == [(0,)]
    records = [json.loads(row[0]) for row in wh(loaded, "select record from raw_marketing.rejects")]
    assert records
    for record in records:
        assert not record.get("channel") or not _fit_spend(record.get("spend")), record
