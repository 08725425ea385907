"""Source contracts: which rows are fit to land in raw, and why the others are quarantined.

A contract is declarative, so one definition serves both row dicts (sqlalchemy backend, API pages,
CSV rows) and Arrow tables (pyarrow backend): the vectorised mask only picks candidate rows, and
the reason is always the row-level `violation`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

REJECTS_TABLE = "rejects"


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _as_decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal):
        return Decimal(str(value))
    if isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            return None
        return number if number.is_finite() else None
    return None


@dataclass(frozen=True)
class Contract:
    source: str
    table: str
    required: tuple[str, ...] = ()
    integers: tuple[str, ...] = ()
    non_negative: tuple[str, ...] = ()
    accepted: Mapping[str, frozenset[str]] = field(default_factory=dict)
    json_objects: tuple[str, ...] = ()

    def violation(self, row: Mapping[str, Any]) -> str | None:
        """The first broken rule of a row, as a reason text; None when the row is fit."""
        for column in self.required:
            if _is_blank(row.get(column)):
                return f"null key: {column} is missing"
        for column in self.integers:
            value = row.get(column)
            if value is not None and _as_int(value) is None:
                return f"type drift: {column}={value!r} is not an integer"
        for column in self.non_negative:
            value = row.get(column)
            if value is None:
                continue
            number = _as_decimal(value)
            if number is None:
                return f"type drift: {column}={value!r} is not a number"
            if number < 0:
                return f"negative amount: {column}={value}"
        for column, allowed in self.accepted.items():
            value = row.get(column)
            if value not in allowed:
                return f"unknown value: {column}={value!r} not in {sorted(allowed)}"
        for column in self.json_objects:
            value = row.get(column)
            if value is not None and not isinstance(value, dict):
                return f"malformed JSON: {column} is not a JSON object"
        return None

    def coerce(self, row: dict[str, Any]) -> dict[str, Any]:
        """Typed values for a fit row whose numbers arrived as text (CSV, SQLite affinity)."""
        for column in self.integers:
            if row.get(column) is not None:
                row[column] = _as_int(row[column])
        for column in self.non_negative:
            if row.get(column) is not None:
                row[column] = _as_decimal(row[column])
        return row

    def reject(self, row: Mapping[str, Any], reason: str, extracted_at: dt.datetime, origin: str) -> dict[str, Any]:
        return {
            "source": self.source,
            "source_table": self.table,
            "reason_code": reason.split(":", 1)[0].replace(" ", "_"),
            "reason": reason,
            "record": json.dumps(row, default=str, sort_keys=True),
            "_extracted_at": extracted_at,
            "_source": origin,
        }

    def candidate_mask(self, table: pa.Table) -> pa.ChunkedArray | pa.Array:
        """Rows of an Arrow table that may break the contract (typed columns cannot drift)."""
        mask = pa.repeat(pa.scalar(False), table.num_rows)  # typed bool even for an empty batch
        for column in self.required:
            if column in table.column_names:
                mask = pc.or_(mask, pc.is_null(table[column]))
        for column in self.non_negative:
            if column in table.column_names:  # an all-null batch has Arrow type null: nothing negative
                negative = pc.less(table[column], 0).cast(pa.bool_())
                mask = pc.or_(mask, pc.fill_null(negative, False))
        for column, allowed in self.accepted.items():
            if column in table.column_names:
                known = pc.is_in(table[column], value_set=pa.array(sorted(allowed)))
                mask = pc.or_(mask, pc.invert(pc.fill_null(known, False)))
        return mask


def _shop(table: str, **rules: Any) -> Contract:
    return Contract("shop_db", table, **rules)


SHOP_CONTRACTS = {
    "customers": _shop("customers", required=("customer_id", "updated_at")),
    "products": _shop("products", required=("product_id", "updated_at"), non_negative=("price",)),
    "orders": _shop("orders", required=("order_id", "customer_id", "updated_at")),
    "order_items": _shop(
        "order_items",
        required=("order_item_id", "order_id", "product_id", "updated_at"),
        integers=("quantity",),
        non_negative=("quantity", "unit_price"),
    ),
    "payments": _shop("payments", required=("payment_id", "order_id", "updated_at"), non_negative=("amount",)),
}

EVENT_TYPES = frozenset({"page_view", "click", "add_to_cart", "purchase", "signup", "logout"})
EVENTS_CONTRACT = Contract(
    "events_api",
    "events",
    required=("event_id", "user_id", "event_timestamp", "received_at"),
    integers=("user_id",),
    accepted={"event_type": EVENT_TYPES},
    json_objects=("properties",),
)

SPEND_CONTRACT = Contract(
    "marketing_files",
    "spend",
    required=("spend_date", "channel", "campaign"),
    integers=("impressions", "clicks", "conversions"),
    non_negative=("spend",),
)
