"""The step every raw row passes: contract breakers are quarantined in `rejects`, fit rows get lineage.

`split` checks every batch of one extracted resource once (`check_items`) and forks the result into two
transformers loaded in the same load package (so a reject can never be lost while the cursor advances):
the fit rows, with `_extracted_at` and `_source`, and the rejects, with source, table, reason and the
raw record.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import dlt
import pyarrow as pa
import pyarrow.compute as pc
from dlt.extract.resource import DltResource

from el.contracts import REJECTS_TABLE, Contract

REJECT_COLUMNS: dict[str, Any] = {
    "source": {"data_type": "text", "nullable": False},
    "source_table": {"data_type": "text", "nullable": False},
    "reason_code": {"data_type": "text", "nullable": False},
    "reason": {"data_type": "text", "nullable": False},
    "record": {"data_type": "text", "nullable": False},
    "_extracted_at": {"data_type": "timestamp", "nullable": False},
    "_source": {"data_type": "text", "nullable": False},
}

Origin = Callable[[Mapping[str, Any]], str] | str
Items = list[Mapping[str, Any]] | pa.Table | pa.RecordBatch
Decimals = Mapping[str, tuple[int, int]]  # column -> (precision, scale) declared by the source


def _origin(origin: Origin, row: Mapping[str, Any]) -> str:
    return origin(row) if callable(origin) else origin


def _rows(items: Items) -> list[Mapping[str, Any]]:
    if isinstance(items, pa.Table | pa.RecordBatch):
        return items.to_pylist()
    return items if isinstance(items, list) else [items]


def _constant(value: Any, arrow_type: pa.DataType, rows: int) -> pa.Array:
    """One value repeated (lineage columns), without building a Python list per row."""
    return pa.repeat(pa.scalar(value, arrow_type), rows)


def _declared_decimals(table: pa.Table, decimals: Decimals) -> pa.Table:
    """connectorx reads numeric(12,2) as decimal(38,10): cast back to the declared type (exact)."""
    for column, (precision, scale) in decimals.items():
        if column in table.column_names:
            declared = pa.decimal128(precision, scale)
            if table.schema.field(column).type != declared:
                index = table.column_names.index(column)
                table = table.set_column(index, column, pc.cast(table[column], declared))
    return table


def _typed_or_rows(items: Items, contract: Contract) -> Items:
    """Arrow batches stay Arrow (typed by the database: no per-row Python) unless a column arrives in
    another type than the contract declares (the source changed it): then every row is checked."""
    if isinstance(items, pa.Table | pa.RecordBatch) and not contract.arrow_fits(items.schema):
        return items.to_pylist()
    return items


@dataclass(frozen=True)
class Checked:
    """One batch after the contract: the fit rows (typed, with lineage; Arrow stays Arrow) and the reject
    records. Every row is checked once, for both."""

    fit: Any
    rejects: list[dict[str, Any]]


def _fit_table(
    table: pa.Table, contract: Contract, extracted_at: dt.datetime, origin: Origin, decimals: Decimals,
    load_id: str | None,
) -> pa.Table:  # fmt: skip
    table = table.filter(pc.invert(contract.candidate_mask(table)))
    table = _declared_decimals(table, decimals)
    rows = table.num_rows
    table = table.append_column("_extracted_at", _constant(extracted_at, pa.timestamp("us", "UTC"), rows))
    source = origin if isinstance(origin, str) else contract.source
    table = table.append_column("_source", _constant(source, pa.string(), rows))
    if load_id is not None:
        table = table.append_column("_dlt_load_id", _constant(load_id, pa.string(), rows))
    return table


def _reject_table(
    table: pa.Table, contract: Contract, extracted_at: dt.datetime, origin: Origin
) -> list[dict[str, Any]]:
    mask = contract.candidate_mask(table)
    if not pc.any(mask).as_py():
        return []
    rejects = []
    for row in table.filter(mask).to_pylist():
        reason = contract.violation(row)
        if reason is not None:
            rejects.append(contract.reject(row, reason, extracted_at, _origin(origin, row)))
    return rejects


def check_items(
    items: Items,
    contract: Contract,
    extracted_at: dt.datetime,
    origin: Origin,
    decimals: Decimals | None = None,
    load_id: str | None = None,
) -> Checked:
    """Rows that keep the contract, typed, with lineage columns (Arrow stays Arrow), and one reject record
    per row that breaks it, with the reason and the raw record. dlt adds its load id to row items itself;
    Arrow tables get it here (`load_id`), so dlt need not rewrite their files."""
    items = _typed_or_rows(items, contract)
    if isinstance(items, pa.Table | pa.RecordBatch):
        table = pa.table(items) if isinstance(items, pa.RecordBatch) else items
        fit_table = _fit_table(table, contract, extracted_at, origin, decimals or {}, load_id)
        return Checked(fit_table, _reject_table(table, contract, extracted_at, origin))
    fit, rejects = [], []
    for item in _rows(items):
        reason = contract.violation(item)
        if reason is None:
            row = contract.coerce(dict(item))
            row["_extracted_at"] = extracted_at
            row["_source"] = _origin(origin, item)
            fit.append(row)
        else:
            rejects.append(contract.reject(item, reason, extracted_at, _origin(origin, item)))
    return Checked(fit, rejects)


def split(
    parent: DltResource, table: str, contract: Contract, extracted_at: dt.datetime, origin: Origin
) -> list[DltResource]:
    """[fit rows -> `table`, rejects -> `rejects`], both fed by one evaluation of `parent`."""
    declared = parent.columns if isinstance(parent.columns, dict) else {}
    decimals = {
        name: (column["precision"], column["scale"])
        for name, column in declared.items()
        if column.get("data_type") == "decimal" and column.get("precision") and column.get("scale") is not None
    }

    @dlt.transformer(name=f"{table}__checked")
    def check(items: Items) -> Iterator[Checked]:
        load_id = dlt.current.load_package_state()["load_id"]
        yield check_items(items, contract, extracted_at, origin, decimals, load_id)

    @dlt.transformer(name=table, write_disposition="append")
    def fit(batch: Checked) -> Iterator[Any]:
        yield batch.fit

    @dlt.transformer(
        name=f"{table}__rejects", table_name=REJECTS_TABLE, write_disposition="append", columns=REJECT_COLUMNS
    )
    def rejects(batch: Checked) -> Iterator[Any]:
        # an empty batch still creates the table, so dbt's `rejects` sources always exist
        yield batch.rejects if batch.rejects else dlt.mark.materialize_table_schema()

    # the parent must not share a name with a transformer, or dlt would extract it once per branch; the
    # check step is one pipe both branches fork from, so every batch is checked once
    checked = parent.with_name(f"{table}__extract") | check
    fit_resource = checked | fit
    if parent.columns:
        fit_resource.apply_hints(columns=parent.columns)  # keep reflected types, e.g. all-null columns
    return [fit_resource, checked | rejects]
