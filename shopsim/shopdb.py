"""The shop's operational database (SQLite in the demo): schema and one day of activity."""

from __future__ import annotations

import datetime as dt
import random
import sqlite3
from pathlib import Path

from shopsim.clock import day_start, fmt, random_time
from shopsim.config import SimConfig

SCHEMA = """
create table if not exists customers (
    customer_id integer primary key,
    email text,
    first_name text,
    last_name text,
    country_code text,
    tier text,
    created_at datetime not null,
    updated_at datetime not null,
    deleted_at datetime
);
create table if not exists products (
    product_id integer primary key,
    sku text,
    name text,
    category text,
    price numeric(12, 2),
    created_at datetime not null,
    updated_at datetime not null,
    deleted_at datetime
);
create table if not exists orders (
    order_id integer primary key,
    customer_id integer,
    status text,
    currency text,
    ordered_at datetime not null,
    created_at datetime not null,
    updated_at datetime not null,
    deleted_at datetime
);
create table if not exists order_items (
    order_item_id integer primary key,
    order_id integer,
    product_id integer,
    quantity integer,
    unit_price numeric(12, 2),
    created_at datetime not null,
    updated_at datetime not null,
    deleted_at datetime
);
create table if not exists payments (
    payment_id integer primary key,
    order_id integer,
    method text,
    amount numeric(12, 2),
    status text,
    created_at datetime not null,
    updated_at datetime not null,
    deleted_at datetime
);
"""

COUNTRIES = ["US", "GB", "DE", "FR", "NL", "ES", "IT", "PL", "SE", "CA", "AU", "JP"]
FIRST_NAMES = ["Ada", "Ben", "Cleo", "Dan", "Eva", "Finn", "Gia", "Hugo", "Ines", "Jon", "Kai", "Lea"]
LAST_NAMES = ["Smith", "Jones", "Brown", "Garcia", "Muller", "Rossi", "Novak", "Berg", "Kim", "Sato"]
CATEGORIES = ["apparel", "shoes", "accessories", "home", "beauty", "electronics"]
TIERS = ["bronze", "silver", "gold", "platinum"]
METHODS = ["card", "paypal", "bank_transfer", "gift_card"]
NEXT_STATUS = {"placed": "shipped", "shipped": "delivered"}
INITIAL_PRODUCTS = 40


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    return conn


def _next_id(conn: sqlite3.Connection, table: str, key: str) -> int:
    (current,) = conn.execute(f"select coalesce(max({key}), 0) from {table}").fetchone()
    return int(current) + 1


def _update_time(rng: random.Random, day: dt.date, created_at: dt.datetime, late_rate: float) -> dt.datetime:
    """When an update is stamped: during the day, or back-dated before the day (late update)."""
    if rng.random() < late_rate:
        stamped = day_start(day) - dt.timedelta(seconds=rng.uniform(60, 3 * 3600))
    else:
        stamped = random_time(rng, day)
    return max(stamped, created_at + dt.timedelta(seconds=1))


def _ensure_drift_column(conn: sqlite3.Connection) -> None:
    columns = {row[1] for row in conn.execute("pragma table_info(customers)")}
    if "loyalty_points" not in columns:
        conn.execute("alter table customers add column loyalty_points integer")


def generate_day(conn: sqlite3.Connection, config: SimConfig, day_index: int, rng: random.Random) -> None:
    """Write one simulated day of shop activity: new rows, updates, soft deletes, bad rows."""
    day = config.start_date + dt.timedelta(days=day_index)
    drifted = day_index >= config.drift_day
    if drifted:
        _ensure_drift_column(conn)

    _new_products(conn, rng, day, INITIAL_PRODUCTS if day_index == 0 else max(1, config.scale // 100))
    _new_customers(conn, rng, day, max(2, config.scale // 4), drifted)
    _update_customers(conn, rng, day, config, drifted)
    _update_products(conn, rng, day, config)
    _update_orders(conn, rng, day, config)
    _new_orders(conn, rng, day, config)
    conn.commit()


def _new_products(conn: sqlite3.Connection, rng: random.Random, day: dt.date, count: int) -> None:
    first = _next_id(conn, "products", "product_id")
    rows = []
    for product_id in range(first, first + count):
        created = random_time(rng, day)
        category = rng.choice(CATEGORIES)
        rows.append(
            (
                product_id,
                f"SKU-{product_id:06d}",
                f"{category.title()} item {product_id}",
                category,
                round(rng.uniform(5, 250), 2),
                fmt(created),
                fmt(created),
            )
        )
    conn.executemany(
        "insert into products (product_id, sku, name, category, price, created_at, updated_at) "
        "values (?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


def _new_customers(conn: sqlite3.Connection, rng: random.Random, day: dt.date, count: int, drifted: bool) -> None:
    first = _next_id(conn, "customers", "customer_id")
    for customer_id in range(first, first + count):
        created = random_time(rng, day)
        values = {
            "customer_id": customer_id,
            "email": f"customer{customer_id}@example.com",
            "first_name": rng.choice(FIRST_NAMES),
            "last_name": rng.choice(LAST_NAMES),
            "country_code": rng.choice(COUNTRIES),
            "tier": "bronze",
            "created_at": fmt(created),
            "updated_at": fmt(created),
        }
        if drifted:
            values["loyalty_points"] = rng.randint(0, 500)
        names = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        conn.execute(f"insert into customers ({names}) values ({marks})", list(values.values()))


def _live_rows(conn: sqlite3.Connection, table: str, key: str, where: str = "1 = 1") -> list[tuple[int, str]]:
    return conn.execute(
        f"select {key}, created_at from {table} where deleted_at is null and {where} order by {key}"
    ).fetchall()


def _update_customers(
    conn: sqlite3.Connection, rng: random.Random, day: dt.date, config: SimConfig, drifted: bool
) -> None:
    rates = config.rates
    for customer_id, created_text in _live_rows(conn, "customers", "customer_id", f"created_at < '{day}'"):
        created = dt.datetime.fromisoformat(created_text)
        if rng.random() < rates.soft_delete:
            stamp = fmt(_update_time(rng, day, created, rates.late_update))
            conn.execute(
                "update customers set deleted_at = ?, updated_at = ? where customer_id = ?",
                (stamp, stamp, customer_id),
            )
        elif rng.random() < rates.update:
            stamp = fmt(_update_time(rng, day, created, rates.late_update))
            tier = rng.choice(TIERS)
            points = rng.randint(0, 5000) if drifted else None
            if drifted:
                conn.execute(
                    "update customers set tier = ?, loyalty_points = ?, updated_at = ? where customer_id = ?",
                    (tier, points, stamp, customer_id),
                )
            else:
                conn.execute(
                    "update customers set tier = ?, updated_at = ? where customer_id = ?",
                    (tier, stamp, customer_id),
                )


def _update_products(conn: sqlite3.Connection, rng: random.Random, day: dt.date, config: SimConfig) -> None:
    rates = config.rates
    for product_id, created_text in _live_rows(conn, "products", "product_id", f"created_at < '{day}'"):
        created = dt.datetime.fromisoformat(created_text)
        if rng.random() < rates.soft_delete:
            stamp = fmt(_update_time(rng, day, created, rates.late_update))
            conn.execute(
                "update products set deleted_at = ?, updated_at = ? where product_id = ?",
                (stamp, stamp, product_id),
            )
        elif rng.random() < rates.update:
            stamp = fmt(_update_time(rng, day, created, rates.late_update))
            conn.execute(
                "update products set price = round(price * ?, 2), updated_at = ? where product_id = ?",
                (rng.uniform(0.8, 1.2), stamp, product_id),
            )


def _update_orders(conn: sqlite3.Connection, rng: random.Random, day: dt.date, config: SimConfig) -> None:
    rates = config.rates
    open_orders = conn.execute(
        "select order_id, status, created_at from orders "
        "where status in ('placed', 'shipped') and deleted_at is null and created_at < ? order by order_id",
        (str(day),),
    ).fetchall()
    for order_id, status, created_text in open_orders:
        if rng.random() >= rates.update:
            continue
        created = dt.datetime.fromisoformat(created_text)
        stamp = fmt(_update_time(rng, day, created, rates.late_update))
        new_status = "cancelled" if status == "placed" and rng.random() < 0.1 else NEXT_STATUS[status]
        conn.execute("update orders set status = ?, updated_at = ? where order_id = ?", (new_status, stamp, order_id))
        if new_status == "cancelled":
            conn.execute(
                "update payments set status = 'refunded', updated_at = ? where order_id = ?", (stamp, order_id)
            )


def _new_orders(conn: sqlite3.Connection, rng: random.Random, day: dt.date, config: SimConfig) -> None:
    bad = config.rates.bad_row
    customers = [row[0] for row in _live_rows(conn, "customers", "customer_id")]
    products = conn.execute("select product_id, price from products where deleted_at is null").fetchall()
    order_id = _next_id(conn, "orders", "order_id")
    item_id = _next_id(conn, "order_items", "order_item_id")
    payment_id = _next_id(conn, "payments", "payment_id")
    orders, items, payments = [], [], []
    for _ in range(config.scale):
        ordered = random_time(rng, day)
        stamp = fmt(ordered)
        customer_id: int | None = rng.choice(customers)
        if rng.random() < bad:
            customer_id = None  # bad row: null foreign key
        orders.append((order_id, customer_id, "placed", "USD", stamp, stamp, stamp))
        total = 0.0
        for _ in range(rng.randint(1, 4)):
            product_id, price = rng.choice(products)
            quantity: int | str = rng.randint(1, 3)
            total += float(price) * int(quantity)
            if rng.random() < bad:
                quantity = "two"  # bad row: type drift in an integer column
            items.append((item_id, order_id, product_id, quantity, price, stamp, stamp))
            item_id += 1
        amount = round(total, 2)
        if rng.random() < bad:
            amount = -amount  # bad row: negative amount
        payments.append((payment_id, order_id, rng.choice(METHODS), amount, "paid", stamp, stamp))
        payment_id += 1
        order_id += 1
    conn.executemany(
        "insert into orders (order_id, customer_id, status, currency, ordered_at, created_at, updated_at) "
        "values (?, ?, ?, ?, ?, ?, ?)",
        orders,
    )
    conn.executemany(
        "insert into order_items (order_item_id, order_id, product_id, quantity, unit_price, created_at, updated_at) "
        "values (?, ?, ?, ?, ?, ?, ?)",
        items,
    )
    conn.executemany(
        "insert into payments (payment_id, order_id, method, amount, status, created_at, updated_at) "
        "values (?, ?, ?, ?, ?, ?, ?)",
        payments,
    )
