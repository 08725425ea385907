"""Source contracts: which rows are fit to land in raw, and why the others are quarantined.

A contract is declarative, so one definition serves both row dicts (sqlalchemy backend, API pages,
CSV rows) and Arrow tables (pyarrow backend): the vectorised mask only picks candidate rows, and
the reason is always the row-level `violation`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pyarrow (~40 MB resident) is imported by the two Arrow methods only: the direct path never needs it
    import pyarrow as pa

REJECTS_TABLE = "rejects"
# every reason code el/ writes into a raw rejects table: a reason's text up to its first colon, words joined by
# "_" (Contract.reject); the stream's `schema_violation` is el.sources.kafka's. The reason_code tests of
# models/ accept these (checked by tests/python/test_project_conventions.py)
REJECT_CODES = (
    "null_key",
    "type_drift",
    "out_of_range",
    "negative_amount",
    "unknown_value",
    "malformed_JSON",
    "malformed_CSV",
    "bad_file",
)
INT64 = (-(2**63), 2**63 - 1)
# declared column types a contract checks: "int" (int64), "decimal(p,s)", "timestamp", "date" (text kept as is)
TypeName = str


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


def as_timestamp(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and value.strip():
        try:
            return dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def decimal_type(name: TypeName) -> tuple[int, int] | None:
    if not name.startswith("decimal("):
        return None
    precision, scale = name[len("decimal(") : -1].split(",")
    return int(precision), int(scale)


class DriftError(ValueError):
    """A value that cannot be read as its declared type (reason code type_drift)."""


class OutOfRangeError(ValueError):
    """A value of the right type outside the declared range (reason code out_of_range)."""


def typed_value(column: str, value: Any, type_name: TypeName) -> Any:
    """`value` read as its declared type; raises DriftError or OutOfRangeError with the reason text."""
    if type_name == "int":
        number = _as_int(value)
        if number is None and isinstance(value, float) and value.is_integer():
            number = int(value)
        if number is None:
            raise DriftError(f"type drift: {column}={value!r} is not an integer")
        if not INT64[0] <= number <= INT64[1]:
            raise OutOfRangeError(f"out of range: {column}={value!r} does not fit a 64-bit integer")
        return number
    if type_name in ("timestamp", "date"):
        stamp = as_timestamp(value)
        if stamp is None:
            kind = "timestamp" if type_name == "timestamp" else "date"
            raise DriftError(f"type drift: {column}={value!r} is not a {kind}")
        if stamp.tzinfo is not None:
            try:
                stamp.astimezone(dt.UTC)  # year 1 at +05:00 or 9999-12-31 at -10:00 has no UTC time
            except OverflowError:
                raise OutOfRangeError(f"out of range: {column}={value!r} has no time in UTC") from None
        return stamp if type_name == "timestamp" else value
    declared = decimal_type(type_name)
    if declared is None:
        return value
    precision, scale = declared
    decimal = _as_decimal(value)
    if decimal is None:
        raise DriftError(f"type drift: {column}={value!r} is not a number")
    if isinstance(value, float):  # SQLite REAL: the binary approximation of a numeric(p,s) value
        decimal = decimal.quantize(Decimal(1).scaleb(-scale))
    exponent = decimal.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > scale and decimal != decimal.quantize(Decimal(1).scaleb(-scale)):
        raise OutOfRangeError(f"out of range: {column}={value!r} has more than {scale} decimals")
    if abs(decimal) >= Decimal(10) ** (precision - scale):
        raise OutOfRangeError(f"out of range: {column}={value!r} does not fit numeric({precision},{scale})")
    return decimal


RowCheck = Callable[[Mapping[str, Any]], str | None]


@dataclass(frozen=True)
class Contract:
    source: str
    table: str
    required: tuple[str, ...] = ()
    integers: tuple[str, ...] = ()
    non_negative: tuple[str, ...] = ()
    accepted: Mapping[str, frozenset[str]] = field(default_factory=dict)
    json_objects: tuple[str, ...] = ()
    types: Mapping[str, TypeName] = field(default_factory=dict)  # column -> declared type, checked per value
    key: tuple[str, ...] = ()  # named in reject reasons
    checks: tuple[RowCheck, ...] = ()  # further row rules (e.g. the events' plausible time range)
    first_checks: tuple[RowCheck, ...] = ()  # rules before all others (a row the file reader could not split)

    @property
    def typed(self) -> dict[str, TypeName]:
        return {**dict.fromkeys(self.integers, "int"), **self.types}

    def violation(self, row: Mapping[str, Any]) -> str | None:
        """The first broken rule of a row, as a reason text; None when the row is fit."""
        for check in self.first_checks:
            reason = check(row)
            if reason is not None:
                return reason
        for column in self.required:
            if _is_blank(row.get(column)):
                return f"null key: {column} is missing"
        for column, type_name in self.typed.items():
            value = row.get(column)
            if not _is_blank(value):
                try:
                    typed_value(column, value, type_name)
                except (DriftError, OutOfRangeError) as exc:
                    return str(exc)
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
        for check in self.checks:
            reason = check(row)
            if reason is not None:
                return reason
        return None

    def coerce(self, row: dict[str, Any]) -> dict[str, Any]:
        """Typed values for a fit row whose values arrived as text (CSV, SQLite affinity, JSON)."""
        typed = self.typed
        for column, type_name in typed.items():
            if column not in row:
                continue
            value = row[column]
            row[column] = None if _is_blank(value) else typed_value(column, value, type_name)
        for column in self.non_negative:
            if column not in typed and row.get(column) is not None:
                row[column] = _as_decimal(row[column])
        return row

    def key_text(self, row: Mapping[str, Any]) -> str:
        return ", ".join(f"{column}={row.get(column)!r}" for column in self.key if row.get(column) is not None)

    def reject(
        self,
        row: Mapping[str, Any],
        reason: str,
        extracted_at: dt.datetime,
        origin: str,
        reason_code: str | None = None,
    ) -> dict[str, Any]:
        """A reject record: the reason names the table, the row key where known, and the cause."""
        where = self.key_text(row)
        return {
            "source": self.source,
            "source_table": self.table,
            "reason_code": reason_code or reason.split(":", 1)[0].replace(" ", "_"),
            "reason": f"{reason} ({self.source}.{self.table}{' ' + where if where else ''})",
            "record": json.dumps(row, default=str, sort_keys=True),
            "_extracted_at": extracted_at,
            "_source": origin,
        }

    def arrow_fits(self, schema: pa.Schema) -> bool:
        """True when every typed column of an Arrow batch has an Arrow type of its declared kind; a
        batch whose source column changed type is checked row by row instead."""
        import pyarrow as pa

        for column, type_name in self.typed.items():
            if column not in schema.names:
                continue
            arrow_type = schema.field(column).type
            if pa.types.is_null(arrow_type):
                continue
            if type_name == "int":
                fits = pa.types.is_integer(arrow_type) and arrow_type != pa.uint64()
            elif type_name == "timestamp":
                fits = pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type)
            elif decimal_type(type_name):
                fits = pa.types.is_decimal(arrow_type) or pa.types.is_integer(arrow_type)
            else:
                fits = pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)
            if not fits:
                return False
        return True

    def candidate_mask(self, table: pa.Table) -> pa.ChunkedArray | pa.Array:
        """Rows of an Arrow table that break the contract (typed columns cannot drift, but decimals can
        exceed the declared precision when the reader widens them, e.g. connectorx's decimal(38,10))."""
        import pyarrow as pa
        import pyarrow.compute as pc

        mask = pa.repeat(pa.scalar(False), table.num_rows)  # typed bool even for an empty batch
        for column in self.required:
            if column in table.column_names:
                mask = pc.or_(mask, pc.is_null(table[column]))
        for column, type_name in self.typed.items():
            declared = decimal_type(type_name)
            if declared and column in table.column_names and pa.types.is_decimal(table.schema.field(column).type):
                precision, scale = declared
                values = table[column]
                too_big = pc.greater_equal(pc.abs(values), pa.scalar(Decimal(10) ** (precision - scale)))
                too_fine = pc.not_equal(pc.round(values, scale), values)
                mask = pc.or_(mask, pc.fill_null(pc.or_(too_big, too_fine), False))
        for column in self.non_negative:
            if column in table.column_names:  # an all-null batch has Arrow type null: nothing negative
                negative = pc.less(table[column], 0).cast(pa.bool_())
                mask = pc.or_(mask, pc.fill_null(negative, False))
        for column, allowed in self.accepted.items():
            if column in table.column_names:
                known = pc.is_in(table[column], value_set=pa.array(sorted(allowed)))
                mask = pc.or_(mask, pc.invert(pc.fill_null(known, False)))
        return mask


TIMESTAMPS = {"created_at": "timestamp", "updated_at": "timestamp", "deleted_at": "timestamp"}
SHOP_CURSOR = "updated_at"  # the incremental cursor of every shop table
MONEY = "decimal(12,2)"


def _shop(table: str, key: str, types: Mapping[str, TypeName], **rules: Any) -> Contract:
    return Contract("shop_db", table, key=(key,), types={key: "int", **types, **TIMESTAMPS}, **rules)


SHOP_CONTRACTS = {
    "customers": _shop("customers", "customer_id", {"loyalty_points": "int"}, required=("customer_id", "updated_at")),
    "products": _shop("products", "product_id", {"price": MONEY}, required=("product_id", "updated_at"),
                      non_negative=("price",)),
    "orders": _shop("orders", "order_id", {"customer_id": "int", "ordered_at": "timestamp"},
                    required=("order_id", "customer_id", "updated_at")),
    "order_items": _shop(
        "order_items",
        "order_item_id",
        {"order_id": "int", "product_id": "int", "quantity": "int", "unit_price": MONEY},
        required=("order_item_id", "order_id", "product_id", "updated_at"),
        non_negative=("quantity", "unit_price"),
    ),
    "payments": _shop("payments", "payment_id", {"order_id": "int", "amount": MONEY},
                      required=("payment_id", "order_id", "updated_at"), non_negative=("amount",)),
}  # fmt: skip
# primary key of every shop table (key reconciliation of hard deletes)
SHOP_KEYS = {table: contract.key[0] for table, contract in SHOP_CONTRACTS.items()}

EVENT_TYPES = frozenset({"page_view", "click", "add_to_cart", "purchase", "signup", "logout"})
MAX_LATENESS_DAYS = 30.0
MAX_CLOCK_SKEW_MINUTES = 60.0


def _event_properties(row: Mapping[str, Any]) -> str | None:
    properties = row.get("properties")
    if not isinstance(properties, dict):
        return None
    for name, type_name in (("product_id", "int"), ("value", "decimal(38,9)")):
        value = properties.get(name)
        if value is None:
            continue
        try:
            typed_value(f"properties.{name}", value, type_name)
        except (DriftError, OutOfRangeError) as exc:
            return str(exc)
    return None


def _utc(value: Any) -> dt.datetime | None:
    """`value` as an aware timestamp (a naive one is UTC); None when it is not a timestamp."""
    stamp = as_timestamp(value)
    return stamp.replace(tzinfo=dt.UTC) if stamp is not None and stamp.tzinfo is None else stamp


# the events cursor's first value (el/sources/events_api.py): no event can have been received before it
CURSOR_START = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class ReceivedBy:
    """The latest received_at an event can have: the time it is checked at plus the allowed clock skew (the
    API cannot have received an event later). The clock is read again only when a row is past the limit
    last read, so an extract that pages for longer than the skew (a first load of a long history) still
    takes the events the API received while it ran, at the cost of one comparison a row. The limit never
    goes back: a row the cursor guard admits, the contract checking it next admits too. (The other way
    round, a row the guard kept from the cursor may pass the contract if the clock moved on in between:
    it lands without being the cursor, and a later load may take it again, a redelivery staging drops.)"""

    def __init__(self, skew: dt.timedelta) -> None:
        self.skew = skew
        self.limit = dt.datetime.now(dt.UTC) + skew

    def admits(self, received: dt.datetime) -> bool:
        if received <= self.limit:
            return True
        self.limit = max(self.limit, dt.datetime.now(dt.UTC) + self.skew)
        return received <= self.limit


def cursor_text(value: Any, received_by: ReceivedBy | None) -> str | None:
    """A received_at the events cursor may take - a timestamp that `received_by` admits (a later one, once
    the cursor, would make every later load skip the events received before it) - written as the cursor
    compares it: UTC, ISO's extended form with microseconds and a Z, the demo API's own. dlt's incremental
    compares text with text, so only one form of every instant sorts as the instants do (a leading blank, a
    space for the T, ISO's basic form or another offset do not). None when the cursor must not take it,
    also before `CURSOR_START`, which would sort below the cursor's first value and vanish."""
    received = _utc(value)
    if received is None or received < CURSOR_START or (received_by is not None and not received_by.admits(received)):
        return None
    try:
        utc = received.astimezone(dt.UTC)
    except OverflowError:  # near year 9999 in a negative offset (no received_by to stop it first): unorderable
        return None
    return utc.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _event_range(max_lateness: dt.timedelta, max_skew: dt.timedelta, received_by: ReceivedBy | None) -> RowCheck:
    def check(row: Mapping[str, Any]) -> str | None:
        happened, received = _utc(row.get("event_timestamp")), _utc(row.get("received_at"))
        if happened is None or received is None:
            return None  # type rules report it
        if received < CURSOR_START:
            return (
                f"out of range: received_at={row.get('received_at')!r} is before 1970-01-01 (the events cursor's start)"
            )
        if received_by is not None and not received_by.admits(received):
            return (
                f"out of range: received_at={row.get('received_at')!r} is after the time it was checked plus "
                f"the clock skew ({received_by.limit.isoformat()}, SHOP_EVENTS_MAX_CLOCK_SKEW_MINUTES)"
            )
        try:
            too_early, too_late = happened < received - max_lateness, happened > received + max_skew
        except OverflowError:  # received_at near year 9999 (no received_by to stop it first)
            return f"out of range: received_at={row.get('received_at')!r} is past the last representable time"
        if too_early:
            return (
                f"out of range: event_timestamp={row.get('event_timestamp')!r} is more than {max_lateness} "
                f"before received_at={row.get('received_at')!r} (SHOP_EVENTS_MAX_LATENESS_DAYS)"
            )
        if too_late:
            return (
                f"out of range: event_timestamp={row.get('event_timestamp')!r} is more than {max_skew} "
                f"after received_at={row.get('received_at')!r} (SHOP_EVENTS_MAX_CLOCK_SKEW_MINUTES)"
            )
        return None

    return check


def events_contract(
    max_lateness_days: float = MAX_LATENESS_DAYS,
    max_clock_skew_minutes: float = MAX_CLOCK_SKEW_MINUTES,
    received_by: ReceivedBy | None = None,
) -> Contract:
    """Events: user_id an int64, parseable timestamps within the plausible range, typed properties; with
    `received_by` (the time of the check plus the clock skew), no received_at after it."""
    lateness, skew = dt.timedelta(days=max_lateness_days), dt.timedelta(minutes=max_clock_skew_minutes)
    window = _event_range(lateness, skew, received_by)
    return Contract(
        "events_api",
        "events",
        required=("event_id", "user_id", "event_timestamp", "received_at"),
        types={"user_id": "int", "event_timestamp": "timestamp", "received_at": "timestamp"},
        accepted={"event_type": EVENT_TYPES},
        json_objects=("properties",),
        key=("event_id",),
        checks=(_event_properties, window),
    )


EVENTS_CONTRACT = events_contract()


def _bad_file(row: Mapping[str, Any]) -> str | None:
    """A spend file that cannot be read at all arrives as one pseudo-row carrying the cause."""
    cause = row.get("_bad_file")
    return f"bad file: {cause}" if cause else None


def _malformed_csv(row: Mapping[str, Any]) -> str | None:
    """A spend line with more or fewer fields than its file's header carries what the reader counted."""
    cause = row.get("_malformed_csv")
    return f"malformed CSV: {cause}" if cause else None


SPEND_CONTRACT = Contract(
    "marketing_files",
    "spend",
    required=("spend_date", "channel", "campaign"),
    types={"spend_date": "date", "impressions": "int", "clicks": "int", "conversions": "int", "spend": MONEY},
    non_negative=("spend",),
    key=("_file_name", "_file_line"),
    first_checks=(_bad_file, _malformed_csv),
)
