"""The contract guard on Arrow batches (PostgreSQL arrives as a stream of Arrow record batches)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa

from el.contracts import SHOP_CONTRACTS
from el.sources.guard import check_items

AT = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
CONTRACT = SHOP_CONTRACTS["order_items"]


def _batch(quantity: pa.Array, order_item_id: pa.Array) -> pa.Table:
    rows = len(quantity)
    return pa.table(
        {
            "order_item_id": order_item_id,
            "order_id": pa.array([1] * rows),
            "product_id": pa.array([2] * rows),
            "quantity": quantity,
            "unit_price": pa.array([None] * rows, pa.null()),  # an all-null batch: Arrow type null
            "updated_at": pa.array([AT] * rows, pa.timestamp("us", "UTC")),
        }
    )


def test_fit_rows_keep_arrow_and_get_lineage() -> None:
    batch = _batch(pa.array([1, -1, 3]), pa.array([10, 11, None]))
    fit = check_items(batch, CONTRACT, AT, "shop_db.order_items", load_id="1795.5").fit
    assert isinstance(fit, pa.Table)
    assert fit["order_item_id"].to_pylist() == [10]
    assert fit["_extracted_at"].to_pylist() == [AT]
    assert fit["_source"].to_pylist() == ["shop_db.order_items"]
    assert fit["_dlt_load_id"].to_pylist() == ["1795.5"]


def test_every_breaking_row_is_rejected_with_its_reason() -> None:
    batch = _batch(pa.array([1, -1, 3]), pa.array([10, 11, None]))
    checked = check_items(batch, CONTRACT, AT, "shop_db.order_items")
    assert sorted(r["reason_code"] for r in checked.rejects) == ["negative_amount", "null_key"]
    assert len(checked.rejects) + checked.fit.num_rows == batch.num_rows


def test_all_null_and_empty_batches_are_not_an_error() -> None:
    batch = _batch(pa.array([None, None], pa.null()), pa.array([10, 11]))
    checked = check_items(batch, CONTRACT, AT, "x")
    assert (checked.fit.num_rows, checked.rejects) == (2, [])
    empty = _batch(pa.array([], pa.int64()), pa.array([], pa.int64()))  # a stream can end with one
    checked = check_items(empty, CONTRACT, AT, "x")
    assert (checked.fit.num_rows, checked.rejects) == (0, [])


def test_decimals_are_cast_back_to_the_declared_precision() -> None:
    # connectorx delivers numeric(12,2) as decimal(38,10)
    prices = pa.array([Decimal("1.50"), None], pa.decimal128(38, 10))
    batch = _batch(pa.array([1, 2]), pa.array([10, 11])).set_column(4, "unit_price", prices)
    fit = check_items(batch, CONTRACT, AT, "x", decimals={"unit_price": (12, 2)}).fit
    assert fit.schema.field("unit_price").type == pa.decimal128(12, 2)
    assert fit["unit_price"].to_pylist() == [Decimal("1.50"), None]


class _WideMask(type(CONTRACT)):  # type: ignore[misc]
    """A contract whose vectorised mask picks every row: the mask only names candidates, the row check decides."""

    def candidate_mask(self, table: pa.Table) -> pa.Array:
        return pa.array([True] * table.num_rows)


def test_a_candidate_the_row_check_finds_fit_is_loaded_not_lost() -> None:
    wide = _WideMask(**{name: getattr(CONTRACT, name) for name in CONTRACT.__dataclass_fields__})
    batch = _batch(pa.array([1, -1, 3]), pa.array([10, 11, None]))
    checked = check_items(batch, wide, AT, "shop_db.order_items")
    assert checked.fit["order_item_id"].to_pylist() == [10]  # the fit candidate, in its place
    assert sorted(r["reason_code"] for r in checked.rejects) == ["negative_amount", "null_key"]
