"""The step every raw row passes: contract breakers are quarantined in `rejects`, fit rows get lineage.

`split` forks one extracted resource into two transformers loaded in the same load package (so a
reject can never be lost while the cursor advances): the fit rows, with `_extracted_at` and
`_source`, and the rejects, with source, table, reason and the raw record.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping
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


def fit_items(
    items: Items,
    contract: Contract,
    extracted_at: dt.datetime,
    origin: Origin,
    decimals: Decimals | None = None,
    load_id: str | None = None,
) -> Any:
    """Rows that keep the contract, typed, with lineage columns; Arrow stays Arrow. dlt adds its load id
    to row items itself; Arrow tables get it here (`load_id`), so dlt need not rewrite their files."""
    items = _typed_or_rows(items, contract)
    if isinstance(items, pa.Table | pa.RecordBatch):
        table = pa.table(items) if isinstance(items, pa.RecordBatch) else items
        table = table.filter(pc.invert(contract.candidate_mask(table)))
        table = _declared_decimals(table, decimals or {})
        rows = table.num_rows
        table = table.append_column("_extracted_at", _constant(extracted_at, pa.timestamp("us", "UTC"), rows))
        source = origin if isinstance(origin, str) else contract.source
        table = table.append_column("_source", _constant(source, pa.string(), rows))
        if load_id is not None:
            table = table.append_column("_dlt_load_id", _constant(load_id, pa.string(), rows))
        return table
    fit = []
    for item in _rows(items):
        if contract.violation(item) is None:
            row = contract.coerce(dict(item))
            row["_extracted_at"] = extracted_at
            row["_source"] = _origin(origin, item)
            fit.append(row)
    return fit


def reject_items(items: Items, contract: Contract, extracted_at: dt.datetime, origin: Origin) -> list[dict[str, Any]]:
    """One reject record per row that breaks the contract, with the reason and the raw record."""
    items = _typed_or_rows(items, contract)
    if isinstance(items, pa.Table | pa.RecordBatch):
        table = pa.table(items) if isinstance(items, pa.RecordBatch) else items
        mask = contract.candidate_mask(table)
        if not pc.any(mask).as_py():
            return []
        candidates = table.filter(mask).to_pylist()
    else:
        candidates = _rows(items)
    rejects = []
    for row in candidates:
        reason = contract.violation(row)
        if reason is not None:
            rejects.append(contract.reject(row, reason, extracted_at, _origin(origin, row)))
    return rejects


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

    @dlt.transformer(name=table, write_disposition="append")
    def fit(items: Items) -> Iterator[Any]:
        load_id = dlt.current.load_package_state()["load_id"]
        yield fit_items(items, contract, extracted_at, origin, decimals, load_id)

    @dlt.transformer(
        name=f"{table}__rejects", table_name=REJECTS_TABLE, write_disposition="append", columns=REJECT_COLUMNS
    )
    def rejects(items: Items) -> Iterator[Any]:
        found = reject_items(items, contract, extracted_at, origin)
        # an empty batch still creates the table, so dbt's `rejects` sources always exist
        yield found if found else dlt.mark.materialize_table_schema()

    # the parent must not share a name with a transformer, or dlt would extract it once per branch
    parent = parent.with_name(f"{table}__extract")
    fit_resource = parent | fit
    if parent.columns:
        fit_resource.apply_hints(columns=parent.columns)  # keep reflected types, e.g. all-null columns
    return [fit_resource, parent | rejects]
