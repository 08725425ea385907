"""An independent oracle of the marts: every mart row computed in plain Python from the sources' final state.

Written from the specification only (the column descriptions in models/**/_*.yml and the semantics of issue
#10), never from the dbt SQL. Inputs are the simulated sources as they are at the end of a scenario:

- the shop database (SQLite): every current row, plus copies of rows that were hard-deleted (they stay in the
  dims and facts flagged `is_deleted`, detected by key reconciliation);
- the events store: every delivery the API has served (duplicates included; the first delivery by
  `received_at` is the event);
- the spend CSV files in the drop folder, with the order in which their current versions were loaded.

`expected_marts` returns {mart: {key: row}}; `compare_marts` diffs them against the warehouse; `check_accounting`
checks that every source row is either a staging input or a reject with a reason, exactly once.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from typing import Any

import duckdb

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
CENT = Decimal("0.01")
SHARE = Decimal("0.000001")
SESSION_INACTIVITY_SECONDS = 30 * 60
MAX_LATENESS = dt.timedelta(days=30)  # SHOP_EVENTS_MAX_LATENESS_DAYS default
MAX_CLOCK_SKEW = dt.timedelta(minutes=60)  # SHOP_EVENTS_MAX_CLOCK_SKEW_MINUTES default
SHOP_TABLES = ("customers", "products", "orders", "order_items", "payments")
PRIMARY_KEYS = {
    "customers": "customer_id",
    "products": "product_id",
    "orders": "order_id",
    "order_items": "order_item_id",
    "payments": "payment_id",
}
# keys a row cannot be used without (primary keys, foreign keys, the version cursor): null -> null_key
REQUIRED = {
    "customers": ("customer_id", "updated_at"),
    "products": ("product_id", "updated_at"),
    "orders": ("order_id", "customer_id", "updated_at"),
    "order_items": ("order_item_id", "order_id", "product_id", "updated_at"),
    "payments": ("payment_id", "order_id", "updated_at"),
}
AMOUNTS = {"products": ("price",), "order_items": ("quantity", "unit_price"), "payments": ("amount",)}
SPEND_KEY = ("spend_date", "channel", "campaign")

Row = dict[str, Any]
Marts = dict[str, dict[tuple[Any, ...], Row]]


# ---------------------------------------------------------------------------------------------- value checks


def parse_timestamp(value: Any) -> dt.datetime | None:
    """An ISO timestamp as naive UTC, or None when it does not parse."""
    if isinstance(value, dt.datetime):
        stamp = value
    elif isinstance(value, str) and value.strip():
        text = value.strip().replace("Z", "+00:00")
        try:
            stamp = dt.datetime.fromisoformat(text)
        except ValueError:
            return None
    else:
        return None
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(dt.UTC).replace(tzinfo=None)
    return stamp


def _integer(value: Any) -> tuple[int | None, str | None]:
    """(value, None) for an integer within int64; (None, reason code) otherwise."""
    if isinstance(value, bool):
        return None, "type_drift"
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        number = int(value.strip())
    else:
        return None, "type_drift"
    if not INT64_MIN <= number <= INT64_MAX:
        return None, "out_of_range"
    return number, None


def _decimal(value: Any, precision: int = 12, scale: int = 2) -> tuple[Decimal | None, str | None]:
    """(value, None) for a number that fits numeric(precision, scale); (None, reason code) otherwise."""
    if isinstance(value, bool):
        return None, "type_drift"
    try:
        number = Decimal(str(value).strip()) if isinstance(value, int | float | str | Decimal) else None
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite():
        return None, "type_drift"
    if abs(number.quantize(Decimal(1).scaleb(-scale))) >= Decimal(10) ** (precision - scale):
        return None, "out_of_range"
    return number, None


def cents(value: Decimal | Fraction | int | float) -> Decimal:
    if isinstance(value, Fraction):
        value = Decimal(value.numerator) / Decimal(value.denominator)
    return Decimal(str(value)).quantize(CENT)


# ---------------------------------------------------------------------------------------------- shop source


@dataclass
class ShopTable:
    declared: dict[str, str]  # column -> declared SQLite type (lower case)
    rows: list[Row]  # current source rows
    deleted: list[Row] = field(default_factory=list)  # hard-deleted rows (last version), flagged at load


def read_shop(path: Path, hard_deleted: Mapping[str, list[Row]] | None = None) -> dict[str, ShopTable]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        tables = {}
        for table in SHOP_TABLES:
            declared = {r["name"]: r["type"].lower() for r in conn.execute(f"pragma table_info({table})")}
            rows = [dict(r) for r in conn.execute(f"select * from {table}")]
            tables[table] = ShopTable(declared, rows, list((hard_deleted or {}).get(table, [])))
        return tables
    finally:
        conn.close()


def shop_violations(table: str, declared: Mapping[str, str], row: Mapping[str, Any]) -> set[str]:
    """Reason codes of every rule a shop row breaks (empty when it is fit)."""
    codes: set[str] = set()
    for column in REQUIRED[table]:
        value = row.get(column)
        if value is None or (isinstance(value, str) and not value.strip()):
            codes.add("null_key")
    for column, kind in declared.items():
        value = row.get(column)
        if value is None:
            continue
        if kind.startswith("int"):
            number, code = _integer(value)
        elif kind.startswith(("numeric", "decimal")):
            inside = kind[kind.find("(") + 1 : kind.find(")")] if "(" in kind else "38,9"
            precision, scale = (int(p) for p in inside.split(","))
            number, code = _decimal(value, precision, scale)
        elif kind.startswith(("datetime", "timestamp")):
            number, code = (None, None) if parse_timestamp(value) else (None, "type_drift")
        else:
            number, code = None, None
        if code:
            codes.add(code)
        elif column in AMOUNTS.get(table, ()) and number is not None and number < 0:
            codes.add("negative_amount")
    return codes


def _typed_shop(table: str, declared: Mapping[str, str], row: Mapping[str, Any]) -> Row:
    typed: Row = {}
    for column, kind in declared.items():
        value = row.get(column)
        if value is None:
            typed[column] = None
        elif kind.startswith("int"):
            typed[column] = _integer(value)[0]
        elif kind.startswith(("numeric", "decimal")):
            typed[column] = cents(_decimal(value)[0] or 0)
        elif kind.startswith(("datetime", "timestamp")):
            typed[column] = parse_timestamp(value)
        else:
            typed[column] = value
    return typed


@dataclass
class ShopStaging:
    """Per table: the fit rows by primary key (hard-deleted ones included, flagged), the rejected ones."""

    fit: dict[str, dict[int, Row]]
    rejected: dict[str, list[tuple[Row, set[str]]]]


def shop_staging(tables: Mapping[str, ShopTable]) -> ShopStaging:
    fit: dict[str, dict[int, Row]] = {}
    rejected: dict[str, list[tuple[Row, set[str]]]] = {}
    for table, source in tables.items():
        key = PRIMARY_KEYS[table]
        fit[table], rejected[table] = {}, []
        for row, hard in [(r, False) for r in source.rows] + [(r, True) for r in source.deleted]:
            codes = shop_violations(table, source.declared, row)
            if codes:
                if not hard:
                    rejected[table].append((row, codes))
                continue
            typed = _typed_shop(table, source.declared, row)
            typed["is_deleted"] = hard or typed.get("deleted_at") is not None
            fit[table][typed[key]] = typed
    return ShopStaging(fit, rejected)


# ---------------------------------------------------------------------------------------------- events source


def read_served_events(path: Path) -> list[Row]:
    """Every delivery the API has served, as stored (the API's payload is derived from it)."""
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        until = conn.execute("select value from meta where key = 'served_until'").fetchone()
        rows = conn.execute("select * from events where received_at <= ? order by received_at, seq", [until[0]])
        return [dict(r) for r in rows]
    finally:
        conn.close()


def event_violations(row: Mapping[str, Any], event_types: frozenset[str]) -> set[str]:
    codes: set[str] = set()
    for column in ("event_id", "user_id", "event_timestamp", "received_at"):
        value = row.get(column)
        if value is None or (isinstance(value, str) and not value.strip()):
            codes.add("null_key")
    if row.get("user_id") is not None:
        code = _integer(row["user_id"])[1] if str(row["user_id"]).strip().isdigit() else "type_drift"
        if code:
            codes.add(code)
    if row.get("event_type") not in event_types:
        codes.add("unknown_value")
    properties: Any = row.get("properties")
    if properties is not None:
        try:
            properties = json.loads(properties)
        except (TypeError, ValueError):
            properties = None
            codes.add("malformed_JSON")
        if properties is not None and not isinstance(properties, dict):
            codes.add("malformed_JSON")
        if isinstance(properties, dict):
            product = properties.get("product_id")
            if product is not None and (not isinstance(product, int) or isinstance(product, bool)):
                codes.add("type_drift")
            elif product is not None and not INT64_MIN <= product <= INT64_MAX:
                codes.add("out_of_range")
            value = properties.get("value")
            if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
                codes.add("type_drift")
    happened, received = parse_timestamp(row.get("event_timestamp")), parse_timestamp(row.get("received_at"))
    if row.get("event_timestamp") is not None and happened is None:
        codes.add("type_drift")
    if row.get("received_at") is not None and received is None:
        codes.add("type_drift")
    if happened and received and not received - MAX_LATENESS <= happened <= received + MAX_CLOCK_SKEW:
        codes.add("out_of_range")
    return codes


@dataclass
class EventStaging:
    events: dict[str, Row]  # event_id -> first fit delivery, typed
    rejected: list[tuple[Row, set[str]]]


def event_staging(deliveries: Iterable[Row], event_types: frozenset[str]) -> EventStaging:
    events: dict[str, Row] = {}
    rejected = []
    for row in deliveries:
        codes = event_violations(row, event_types)
        if codes:
            rejected.append((row, codes))
            continue
        received = parse_timestamp(row["received_at"])
        current = events.get(row["event_id"])
        if current is not None and current["received_at"] <= received:
            continue
        happened = parse_timestamp(row["event_timestamp"])
        assert happened is not None and received is not None
        events[row["event_id"]] = {
            "event_id": row["event_id"],
            "user_id": int(row["user_id"]),
            "event_type": row["event_type"],
            "event_at": happened,
            "event_date": happened.date(),
            "received_at": received,
        }
    return EventStaging(events, rejected)


# ---------------------------------------------------------------------------------------------- spend source


@dataclass(frozen=True)
class SpendLine:
    file_name: str
    line: int  # CSV line number (header is line 1)
    values: Row  # column -> text or None


def read_spend_files(directory: Path) -> list[SpendLine]:
    lines = []
    for path in sorted(directory.glob("spend_*.csv")):
        with path.open(newline="", encoding="utf-8") as handle:
            for number, row in enumerate(csv.DictReader(handle), start=2):
                values = {k: (v if v != "" else None) for k, v in row.items() if k is not None}
                lines.append(SpendLine(path.name, number, values))
    return lines


def spend_violations(values: Mapping[str, Any]) -> set[str]:
    codes: set[str] = set()
    for column in SPEND_KEY:
        value = values.get(column)
        if value is None or not str(value).strip():
            codes.add("null_key")
    if values.get("spend_date") is not None:
        try:
            dt.date.fromisoformat(str(values["spend_date"]).strip())
        except ValueError:
            codes.add("type_drift")
    for column in ("impressions", "clicks", "conversions"):
        if values.get(column) is not None:
            code = _integer(values[column])[1]
            if code:
                codes.add(code)
    if values.get("spend") is not None:
        number, code = _decimal(values["spend"])
        if code:
            codes.add(code)
        elif number is not None and number < 0:
            codes.add("negative_amount")
    return codes


@dataclass
class SpendStaging:
    spend: dict[tuple[Any, ...], Row]  # (spend_date, channel, campaign) -> winning row
    rejected: list[tuple[SpendLine, set[str]]]
    fit: list[SpendLine]


def spend_staging(lines: Iterable[SpendLine], load_order: Mapping[str, int]) -> SpendStaging:
    """Newest version of each file; within a file the last line wins; across files the latest loaded file."""
    winners: dict[tuple[Any, ...], tuple[tuple[int, int], Row]] = {}
    rejected, fit = [], []
    for line in lines:
        codes = spend_violations(line.values)
        if codes:
            rejected.append((line, codes))
            continue
        fit.append(line)
        v = line.values
        key = (dt.date.fromisoformat(v["spend_date"].strip()), v["channel"], v["campaign"])
        rank = (load_order[line.file_name], line.line)
        conversions = v.get("conversions")
        row = {
            "spend_date": key[0],
            "channel": key[1],
            "campaign": key[2],
            "spend_amount": cents(Decimal(v["spend"])) if v.get("spend") is not None else None,
            "impressions": int(v["impressions"]) if v.get("impressions") is not None else None,
            "clicks": int(v["clicks"]) if v.get("clicks") is not None else None,
            "conversions": int(conversions) if conversions is not None else None,
            "file_name": line.file_name,
        }
        if key not in winners or winners[key][0] < rank:
            winners[key] = (rank, row)
    return SpendStaging({k: r for k, (_, r) in winners.items()}, rejected, fit)


# ---------------------------------------------------------------------------------------------- seeds


def read_seed(project_root: Path, name: str) -> list[Row]:
    with (project_root / "seeds" / f"{name}.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# ---------------------------------------------------------------------------------------------- the oracle


@dataclass
class Sources:
    """The sources' final state, everything the oracle reads."""

    shop: dict[str, ShopTable]
    deliveries: list[Row]
    spend_lines: list[SpendLine]
    spend_load_order: dict[str, int]  # file name -> sequence number of the run that loaded its current version

    @classmethod
    def read(cls, root: Path, hard_deleted: Mapping[str, list[Row]], spend_load_order: Mapping[str, int]) -> Sources:
        return cls(
            read_shop(root / "shop.sqlite", hard_deleted),
            read_served_events(root / "events.sqlite"),
            read_spend_files(root / "marketing"),
            dict(spend_load_order),
        )


@dataclass
class Staged:
    shop: ShopStaging
    events: EventStaging
    spend: SpendStaging
    quarantined_orders: set[int]  # order ids rejected and absent from staging
    children_quarantined: dict[str, set[int]]  # order_items / payments keys whose order is quarantined


def stage(sources: Sources, project_root: Path) -> Staged:
    event_types = frozenset(r["event_type"] for r in read_seed(project_root, "event_types"))
    shop = shop_staging(sources.shop)
    rejected_orders = {r["order_id"] for r, _ in shop.rejected["orders"]}
    quarantined = {o for o in rejected_orders if o not in shop.fit["orders"]}
    children = {
        table: {k for k, r in shop.fit[table].items() if r["order_id"] in quarantined}
        for table in ("order_items", "payments")
    }
    return Staged(
        shop,
        event_staging(sources.deliveries, event_types),
        spend_staging(sources.spend_lines, sources.spend_load_order),
        quarantined,
        children,
    )


def _orders(staged: Staged) -> dict[int, Row]:
    fit = staged.shop.fit
    items_by_order: dict[int, list[Row]] = defaultdict(list)
    for item in fit["order_items"].values():
        items_by_order[item["order_id"]].append(item)
    payments_by_order: dict[int, list[Row]] = defaultdict(list)
    for payment in fit["payments"].values():
        payments_by_order[payment["order_id"]].append(payment)
    orders = {}
    for order_id, o in fit["orders"].items():
        items, payments = items_by_order[order_id], payments_by_order[order_id]
        orders[order_id] = {
            "order_id": order_id,
            "customer_id": o["customer_id"],
            "order_date": o["ordered_at"].date(),
            "ordered_at": o["ordered_at"],
            "order_status": o["status"],
            "currency_code": o["currency"].upper() if o["currency"] is not None else None,
            "item_count": len(items),
            "items_quantity": sum(i["quantity"] for i in items),
            "order_amount": cents(sum((i["quantity"] * i["unit_price"] for i in items), Decimal(0))),
            "paid_amount": cents(sum((p["amount"] for p in payments if p["status"] == "paid"), Decimal(0))),
            "refunded_amount": cents(sum((p["amount"] for p in payments if p["status"] == "refunded"), Decimal(0))),
            "is_cancelled": o["status"] == "cancelled",
            "is_deleted": o["is_deleted"],
            "updated_at": o["updated_at"],
        }
    return orders


def _order_items(staged: Staged, orders: Mapping[int, Row]) -> dict[int, Row]:
    products = staged.shop.fit["products"]
    rows = {}
    for item_id, i in staged.shop.fit["order_items"].items():
        order = orders.get(i["order_id"])
        if order is None:  # parent quarantined (or a real orphan): not a fact
            continue
        product = products.get(i["product_id"])
        rows[item_id] = {
            "order_item_id": item_id,
            "order_id": i["order_id"],
            "customer_id": order["customer_id"],
            "product_id": i["product_id"],
            "product_category": product["category"] if product else None,
            "order_date": order["order_date"],
            "order_status": order["order_status"],
            "quantity": i["quantity"],
            "unit_price": i["unit_price"],
            "line_amount": cents(i["quantity"] * i["unit_price"]),
            "is_deleted": order["is_deleted"],  # a line of a deleted order stays, flagged
        }
    return rows


def _dim_customers(staged: Staged, live_orders: list[Row], project_root: Path) -> dict[int, Row]:
    countries = {r["country_code"]: r for r in read_seed(project_root, "countries")}
    by_customer: dict[int, list[Row]] = defaultdict(list)
    for order in live_orders:
        by_customer[order["customer_id"]].append(order)
    rows = {}
    for customer_id, c in staged.shop.fit["customers"].items():
        orders = by_customer[customer_id]
        country = countries.get(c["country_code"], {})
        rows[customer_id] = {
            "customer_id": customer_id,
            "email": c["email"].lower() if c["email"] is not None else None,
            "first_name": c["first_name"],
            "last_name": c["last_name"],
            "country_code": c["country_code"],
            "country_name": country.get("country_name"),
            "region": country.get("region"),
            "customer_tier": c["tier"],
            "loyalty_points": c.get("loyalty_points"),
            "created_at": c["created_at"],
            "is_deleted": c["is_deleted"],
            "first_order_at": min((o["ordered_at"] for o in orders), default=None),
            "last_order_at": max((o["ordered_at"] for o in orders), default=None),
            "lifetime_orders": len(orders),
            "lifetime_revenue": cents(sum((o["order_amount"] for o in orders if not o["is_cancelled"]), Decimal(0))),
        }
    return rows


def _dim_products(staged: Staged) -> dict[int, Row]:
    return {
        product_id: {
            "product_id": product_id,
            "sku": p["sku"],
            "product_name": p["name"],
            "product_category": p["category"],
            "unit_price": p["price"],
            "created_at": p["created_at"],
            "is_deleted": p["is_deleted"],
        }
        for product_id, p in staged.shop.fit["products"].items()
    }


def sessions(events: Iterable[Row]) -> dict[tuple[int, int], Row]:
    by_user: dict[int, list[Row]] = defaultdict(list)
    for event in events:
        by_user[event["user_id"]].append(event)
    rows = {}
    for user_id, user_events in by_user.items():
        user_events.sort(key=lambda e: (e["event_at"], e["event_id"]))
        groups: list[list[Row]] = []
        for event in user_events:
            gap = (event["event_at"] - groups[-1][-1]["event_at"]).total_seconds() if groups else math.inf
            if gap >= SESSION_INACTIVITY_SECONDS:
                groups.append([])
            groups[-1].append(event)
        for number, group in enumerate(groups, start=1):
            start, end = group[0]["event_at"], group[-1]["event_at"]
            types = [e["event_type"] for e in group]
            rows[(user_id, number)] = {
                "user_id": user_id,
                "session_number": number,
                "session_start_at": start,
                "session_end_at": end,
                "session_date": start.date(),
                "duration_seconds": math.floor((end - start) / dt.timedelta(microseconds=1) / 1_000_000),
                "event_count": len(group),
                "page_views": types.count("page_view"),
                "add_to_carts": types.count("add_to_cart"),
                "purchases": types.count("purchase"),
                "has_purchase": "purchase" in types,
            }
    return rows


def _user_daily_activity(events: Iterable[Row]) -> dict[tuple[int, dt.date], Row]:
    by_day: dict[tuple[int, dt.date], list[Row]] = defaultdict(list)
    for event in events:
        by_day[(event["user_id"], event["event_date"])].append(event)
    rows = {}
    for (user_id, day), group in by_day.items():
        types = [e["event_type"] for e in group]
        rows[(user_id, day)] = {
            "user_id": user_id,
            "activity_date": day,
            "event_count": len(group),
            "page_views": types.count("page_view"),
            "clicks": types.count("click"),
            "add_to_carts": types.count("add_to_cart"),
            "purchases": types.count("purchase"),
            "first_event_at": min(e["event_at"] for e in group),
            "last_event_at": max(e["event_at"] for e in group),
        }
    return rows


def _net_revenue(orders: Iterable[Row]) -> Decimal:
    return cents(sum((o["order_amount"] for o in orders if not o["is_cancelled"]), Decimal(0)))


def _daily_revenue(live_orders: list[Row]) -> dict[tuple[dt.date], Row]:
    by_date: dict[dt.date, list[Row]] = defaultdict(list)
    for order in live_orders:
        by_date[order["order_date"]].append(order)
    rows = {}
    for day, orders in by_date.items():
        kept = [o for o in orders if not o["is_cancelled"]]
        net = _net_revenue(orders)
        rows[(day,)] = {
            "revenue_date": day,
            "orders_placed": len(orders),
            "orders_cancelled": len(orders) - len(kept),
            "customers": len({o["customer_id"] for o in orders}),
            "units_sold": sum(o["items_quantity"] for o in orders),
            "gross_revenue": cents(sum((o["order_amount"] for o in orders), Decimal(0))),
            "net_revenue": net,
            "paid_amount": cents(sum((o["paid_amount"] for o in orders), Decimal(0))),
            "average_order_value": Rounded(Fraction(net) / len(kept), CENT) if kept else None,
        }
    return rows


@dataclass(frozen=True)
class Rounded:
    """A value the warehouse rounds to `unit`: any value within half a unit of one of `exact` is right."""

    exact: Fraction | tuple[Fraction, ...]
    unit: Decimal

    def matches(self, actual: Any) -> bool:
        if actual is None:
            return False
        candidates = self.exact if isinstance(self.exact, tuple) else (self.exact,)
        got = Fraction(Decimal(str(actual)))
        half = Fraction(self.unit) / 2
        return Decimal(str(actual)) == Decimal(str(actual)).quantize(self.unit) and any(
            abs(got - c) <= half for c in candidates
        )

    def __repr__(self) -> str:
        candidates = self.exact if isinstance(self.exact, tuple) else (self.exact,)
        return " or ".join(f"~{float(c):.8f}" for c in candidates)


def _marketing_daily(staged: Staged, live_orders: list[Row], project_root: Path) -> dict[tuple[Any, ...], Row]:
    groups = {r["channel"]: r["channel_group"] for r in read_seed(project_root, "marketing_channels")}
    by_channel: dict[tuple[dt.date, str], list[Row]] = defaultdict(list)
    for row in staged.spend.spend.values():
        by_channel[(row["spend_date"], row["channel"])].append(row)
    day_spend: dict[dt.date, Decimal] = defaultdict(Decimal)
    for (day, _), rows in by_channel.items():
        day_spend[day] += sum((r["spend_amount"] or Decimal(0) for r in rows), Decimal(0))
    net_by_day: dict[dt.date, list[Row]] = defaultdict(list)
    for order in live_orders:
        net_by_day[order["order_date"]].append(order)
    out = {}
    for (day, channel), rows in by_channel.items():
        spend = sum((r["spend_amount"] or Decimal(0) for r in rows), Decimal(0))
        net = _net_revenue(net_by_day.get(day, []))
        share = Fraction(spend) / Fraction(day_spend[day]) if day_spend[day] else None
        conversions = [r["conversions"] for r in rows if r["conversions"] is not None]
        allocated: Rounded | None = None
        if share is not None:
            rounded_share = Fraction(Decimal(share.numerator) / Decimal(share.denominator)).limit_denominator(10**6)
            allocated = Rounded((Fraction(net) * share, Fraction(net) * rounded_share), CENT)
        out[(day, channel)] = {
            "spend_date": day,
            "channel": channel,
            "channel_group": groups.get(channel),
            "spend_amount": cents(spend),
            "impressions": sum(r["impressions"] or 0 for r in rows),
            "clicks": sum(r["clicks"] or 0 for r in rows),
            "conversions": sum(conversions) if conversions else None,
            "day_net_revenue": net,
            "spend_share": Rounded(share, SHARE) if share is not None else None,
            "allocated_revenue": allocated,
        }
    return out


def _customer_features(
    customers: Mapping[int, Row], live_orders: list[Row], events: Iterable[Row]
) -> dict[tuple[int], Row]:
    as_of = max((o["order_date"] for o in live_orders), default=None)
    orders_by: dict[int, list[Row]] = defaultdict(list)
    for order in live_orders:
        orders_by[order["customer_id"]].append(order)
    events_by: dict[int, list[Row]] = defaultdict(list)
    for event in events:
        events_by[event["user_id"]].append(event)

    def within(day: dt.date, days: int) -> bool:
        return as_of is not None and as_of - dt.timedelta(days=days) < day <= as_of

    rows = {}
    for customer_id, c in customers.items():
        if c["is_deleted"]:  # a deleted account is no subject of churn or propensity models
            continue
        orders, user_events = orders_by[customer_id], events_by[customer_id]
        last = max((o["order_date"] for o in orders), default=None)
        rows[(customer_id,)] = {
            "customer_id": customer_id,
            "as_of_date": as_of,
            "customer_tier": c["customer_tier"],
            "country_code": c["country_code"],
            "orders_7d": sum(1 for o in orders if within(o["order_date"], 7)),
            "orders_30d": sum(1 for o in orders if within(o["order_date"], 30)),
            "revenue_30d": _net_revenue(o for o in orders if within(o["order_date"], 30)),
            "lifetime_orders": len(orders),
            "events_7d": sum(1 for e in user_events if within(e["event_date"], 7)),
            "events_30d": sum(1 for e in user_events if within(e["event_date"], 30)),
            "add_to_carts_30d": sum(
                1 for e in user_events if e["event_type"] == "add_to_cart" and within(e["event_date"], 30)
            ),
            "days_since_last_order": (as_of - last).days if last is not None and as_of is not None else None,
        }
    return rows


MART_KEYS: dict[str, tuple[str, ...]] = {
    "dim_customers": ("customer_id",),
    "dim_products": ("product_id",),
    "fct_orders": ("order_id",),
    "fct_order_items": ("order_item_id",),
    "fct_sessions": ("user_id", "session_number"),
    "fct_user_daily_activity": ("user_id", "activity_date"),
    "fct_daily_revenue": ("revenue_date",),
    "fct_marketing_daily": ("spend_date", "channel"),
    "fct_customer_features": ("customer_id",),
}
IGNORED_COLUMNS = {"_watermark", "session_key"}  # build bookkeeping; sessions compare on (user_id, session_number)


def expected_marts(staged: Staged, project_root: Path) -> Marts:
    orders = _orders(staged)
    live = [o for o in orders.values() if not o["is_deleted"]]
    events = list(staged.events.events.values())
    customers = _dim_customers(staged, live, project_root)
    marts: dict[str, dict[Any, Row]] = {
        "dim_customers": customers,
        "dim_products": _dim_products(staged),
        "fct_orders": orders,
        "fct_order_items": _order_items(staged, orders),
        "fct_sessions": sessions(events),
        "fct_user_daily_activity": _user_daily_activity(events),
        "fct_daily_revenue": _daily_revenue(live),
        "fct_marketing_daily": _marketing_daily(staged, live, project_root),
        "fct_customer_features": _customer_features(customers, live, events),
    }
    return {
        mart: {tuple(row[k] for k in MART_KEYS[mart]): row for row in rows.values()} for mart, rows in marts.items()
    }


# ---------------------------------------------------------------------------------------------- comparison


def normalise(value: Any) -> Any:
    """Warehouse values in the oracle's types: Decimal with exact cents, naive UTC timestamps."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    if isinstance(value, float):
        return Decimal(repr(value))
    return value


def _same(expected: Any, actual: Any) -> bool:
    if isinstance(expected, Rounded):
        return expected.matches(actual)
    if isinstance(expected, Decimal) and isinstance(actual, Decimal | int):
        return expected == actual
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual or (expected == actual and type(expected) is type(actual))
    return expected == actual and (expected is None) == (actual is None)


def warehouse_marts(warehouse: Path, schema: str = "main_marts") -> Marts:
    """Every mart of the warehouse by its key; a mart that cannot be read is one row saying why."""
    marts: Marts = {mart: {} for mart in MART_KEYS}
    try:
        conn = duckdb.connect(str(warehouse), read_only=True)
    except duckdb.Error as exc:
        return {mart: {("<unreadable>",): {"error": str(exc).splitlines()[0]}} for mart in MART_KEYS}
    with conn:
        for mart, key in MART_KEYS.items():
            try:
                cursor = conn.execute(f"select * from {schema}.{mart}")
            except duckdb.Error as exc:
                marts[mart] = {("<unreadable>",): {"error": str(exc).splitlines()[0]}}
                continue
            names = [d[0] for d in cursor.description]
            rows = [dict(zip(names, (normalise(v) for v in values), strict=True)) for values in cursor.fetchall()]
            for row in rows:
                marts[mart].setdefault(tuple(row[k] for k in key), row)
            duplicates = len(rows) - len(marts[mart])
            if duplicates:
                marts[mart][("<duplicate keys>",)] = {"count": duplicates}
    return marts


def _show(row: Mapping[str, Any] | None, columns: Iterable[str]) -> str:
    if row is None:
        return "(missing)"
    return ", ".join(f"{c}={row.get(c, '<no column>')!r}" for c in columns)


def diff_mart(mart: str, expected: Mapping[Any, Row], actual: Mapping[Any, Row], limit: int = 20) -> list[str]:
    """Readable differences of one mart: the first `limit` differing keys with both versions."""
    if ("<unreadable>",) in actual:
        return [f"  {mart} cannot be read: {actual[('<unreadable>',)]['error']}"]
    columns = sorted({c for r in expected.values() for c in r} | {c for r in actual.values() for c in r})
    columns = [c for c in columns if c not in IGNORED_COLUMNS]
    problems = []
    for key in sorted(set(expected) | set(actual), key=repr):
        want, got = expected.get(key), actual.get(key)
        if want is not None and got is not None:
            bad = [c for c in columns if c not in want or c not in got or not _same(want[c], got[c])]
            if not bad:
                continue
            pad = " " * len(mart)
            problems.append(f"  {mart} {key}: oracle {_show(want, bad)}\n  {pad} {key}: mart   {_show(got, bad)}")
        elif want is None:
            problems.append(f"  {mart} {key}: only in the mart: {_show(got, columns)}")
        else:
            problems.append(f"  {mart} {key}: missing from the mart; oracle: {_show(want, columns)}")
    if len(problems) > limit:
        problems = [*problems[:limit], f"  ... and {len(problems) - limit} more differing keys in {mart}"]
    return problems


def compare_marts(expected: Marts, actual: Marts) -> dict[str, list[str]]:
    """{mart: readable differences} for every mart that differs."""
    out = {}
    for mart in MART_KEYS:
        problems = diff_mart(mart, expected[mart], actual.get(mart, {}))
        if problems:
            out[mart] = problems
    return out


def summarise(differences: Mapping[str, list[str]]) -> str:
    if not differences:
        return "every mart equals the oracle"
    lines = [f"{len(differences)} mart(s) differ from the oracle:"]
    for mart, problems in differences.items():
        lines.append(f"{mart}:")
        lines.extend(problems)
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- accounting

REJECT_COLUMNS = (
    "reject_id",
    "source_name",
    "source_table",
    "reason_code",
    "reason",
    "raw_record",
    "source_location",
    "first_extracted_at",
    "last_extracted_at",
    "times_extracted",
)


def _record(text: Any) -> Row:
    try:
        value = json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _stamp_of(value: Any) -> dt.datetime | None:
    return parse_timestamp(value)


def _int_or_none(value: Any) -> int | None:
    number, code = _integer(value) if value is not None else (None, "null")
    return number if code is None else None


@dataclass
class Account:
    """What one source row must look like in staging and rejects."""

    label: str
    codes: set[str]  # expected reject codes (empty: the row is fit)
    staged: bool  # its key must be in the staging model


def _reject_identity(source: str, table: str, record: Row, location: str) -> tuple[Any, ...]:
    if source == "shop_db":
        key = PRIMARY_KEYS.get(table)
        return (table, _int_or_none(record.get(key)), _stamp_of(record.get("updated_at")))
    if source == "events_api":
        return (record.get("event_id"), _stamp_of(record.get("received_at")), _stamp_of(record.get("event_timestamp")))
    name = record.get("_file_name") or location.rsplit("/", 1)[-1]
    return (name, _int_or_none(record.get("_file_line")))


def check_accounting(warehouse: Path, staged: Staged, sources: Sources) -> list[str]:
    """Every source row is a staging input (its key in main_staging.stg_*) or a reject with a reason, exactly once."""
    problems: list[str] = []
    if not warehouse.exists():
        return [f"no warehouse at {warehouse}"]
    with duckdb.connect(str(warehouse), read_only=True) as conn:

        def keys(sql: str) -> set[Any] | None:
            try:
                return {r[0] if len(r) == 1 else r for r in conn.execute(sql).fetchall()}
            except duckdb.Error as exc:
                problems.append(f"staging cannot be read: {str(exc).splitlines()[0]}")
                return None

        stg = {t: keys(f"select {PRIMARY_KEYS[t]} from main_staging.stg_shop__{t}") for t in SHOP_TABLES}
        stg_events = keys("select event_id from main_staging.stg_events__events")
        stg_spend = keys("select spend_date, channel, campaign from main_staging.stg_marketing__spend")
        try:
            cursor = conn.execute(f"select {', '.join(REJECT_COLUMNS)} from main_marts.fct_rejects")
            rejects = [dict(zip(REJECT_COLUMNS, r, strict=True)) for r in cursor.fetchall()]
            readable = True
        except duckdb.Error as exc:  # staging is still checked
            problems.append(f"main_marts.fct_rejects cannot be read: {str(exc).splitlines()[0]}")
            rejects, readable = [], False

    seen: dict[tuple[Any, ...], int] = defaultdict(int)
    by_identity: dict[tuple[Any, ...], list[Row]] = defaultdict(list)
    for r in rejects:
        seen[(r["source_name"], r["source_table"], r["reason_code"], r["raw_record"])] += 1
        identity = _reject_identity(r["source_name"], r["source_table"], _record(r["raw_record"]), r["source_location"])
        by_identity[(r["source_name"], *identity)].append(r)
        if not r["reason"] or not r["reason_code"]:
            problems.append(f"reject without a reason: {r}")
        if not r["times_extracted"] or r["times_extracted"] < 1 or r["first_extracted_at"] > r["last_extracted_at"]:
            problems.append(f"reject with bad extraction bookkeeping: {r}")
    for key, count in seen.items():
        if count > 1:
            problems.append(f"reject listed {count} times (rejects must be deduplicated): {key[:3]} {key[3][:200]}")
    matched: set[int] = set()

    def expect(identity: tuple[Any, ...], account: Account, in_stg: bool) -> None:
        found = by_identity.get(identity, [])
        matched.update(id(r) for r in found)
        codes = [r["reason_code"] for r in found]
        if account.staged != in_stg:
            where = "missing from" if account.staged else "unexpectedly in"
            problems.append(f"{account.label}: {where} staging")
        if not readable:
            return
        if not account.codes and codes:
            problems.append(f"{account.label}: fit, yet rejected with {codes}")
        if account.codes and not codes:
            problems.append(f"{account.label}: breaks {sorted(account.codes)}, yet not in fct_rejects")
        if account.codes and codes and not set(codes) <= account.codes:
            problems.append(f"{account.label}: rejected with {codes}, expected one of {sorted(account.codes)}")
        if len(codes) != len(set(codes)):
            problems.append(f"{account.label}: listed {len(codes)} times in fct_rejects: {codes}")

    # shop: every current row, by key and version
    rejected_rows = {(table, id(row)): codes for table, items in staged.shop.rejected.items() for row, codes in items}
    for table, source in sources.shop.items():
        key = PRIMARY_KEYS[table]
        table_keys = stg[table]
        if table_keys is None:
            continue
        for row in source.rows:
            codes = rejected_rows.get((table, id(row)), set())
            pk = _int_or_none(row.get(key))
            child = table in staged.children_quarantined and pk in staged.children_quarantined[table]
            label = f"shop_db.{table} {key}={pk}"
            if child:
                codes = codes | {"parent_quarantined"}
            account = Account(label, codes, staged=(not codes) or child)
            expect(("shop_db", table, pk, _stamp_of(row.get("updated_at"))), account, pk in table_keys)
        for row in source.deleted:
            pk = row[key]
            if pk not in table_keys:
                problems.append(f"shop_db.{table} {key}={pk}: hard-deleted, must stay in staging flagged deleted")

    # events: every served delivery (immutable records: rejects match deliveries one to one)
    rejected_events = {id(row): codes for row, codes in staged.events.rejected}
    for row in sources.deliveries if stg_events is not None else []:
        codes = rejected_events.get(id(row), set())
        label = f"events_api.events event_id={row.get('event_id')} received_at={row.get('received_at')}"
        identity = (
            "events_api",
            row.get("event_id"),
            _stamp_of(row.get("received_at")),
            _stamp_of(row.get("event_timestamp")),
        )
        fit_elsewhere = row.get("event_id") in staged.events.events
        account = Account(label, codes, staged=not codes or fit_elsewhere)
        expect(identity, account, row.get("event_id") in (stg_events or set()))

    # spend: every line of the current version of every file
    rejected_lines = {id(line): codes for line, codes in staged.spend.rejected}
    for line in sources.spend_lines if stg_spend is not None else []:
        codes = rejected_lines.get(id(line), set())
        v = line.values
        label = f"marketing_files {line.file_name} line {line.line}"
        try:
            key = (dt.date.fromisoformat(str(v.get("spend_date"))), v.get("channel"), v.get("campaign"))
        except ValueError:
            key = None
        found = by_identity.get(("marketing_files", line.file_name, line.line), [])
        current = [r for r in found if _record(r["raw_record"]).get("spend") == v.get("spend")]
        matched.update(id(r) for r in found)
        if not codes and key not in (stg_spend or set()):
            problems.append(f"{label}: fit, yet {key} missing from stg_marketing__spend")
        if not readable:
            continue
        if codes and not current:
            problems.append(f"{label}: breaks {sorted(codes)}, yet not in fct_rejects")
        if codes and current and not {r["reason_code"] for r in current} <= codes:
            problems.append(f"{label}: rejected with {[r['reason_code'] for r in current]}, expected {sorted(codes)}")
        if not codes and current:
            problems.append(f"{label}: fit, yet rejected with {[r['reason_code'] for r in current]}")

    # rejects that belong to no source row at all (shop and spend rejects may be earlier versions of a row)
    files = {line.file_name for line in sources.spend_lines}
    shop_keys = {
        (t, _int_or_none(r.get(PRIMARY_KEYS[t]))) for t, s in sources.shop.items() for r in [*s.rows, *s.deleted]
    }
    for r in rejects:
        if id(r) in matched:
            continue
        record = _record(r["raw_record"])
        identity = _reject_identity(r["source_name"], r["source_table"], record, r["source_location"])
        known = (r["source_name"] == "shop_db" and identity[:2] in shop_keys) or (
            r["source_name"] == "marketing_files" and identity[0] in files
        )
        if not known:
            problems.append(f"reject of no source row: {r['source_name']}.{r['source_table']} {r['reason_code']} "
                            f"{str(r['raw_record'])[:200]}")  # fmt: skip
    return problems


# ---------------------------------------------------------------------------------------------- entry point


def oracle_problems(
    warehouse: Path, project_root: Path, sources: Sources, check: Callable[[Path, Staged, Sources], list[str]] | None
) -> tuple[dict[str, list[str]], list[str]]:
    staged = stage(sources, project_root)
    differences = compare_marts(expected_marts(staged, project_root), warehouse_marts(warehouse))
    accounting = (check or check_accounting)(warehouse, staged, sources)
    return differences, accounting
