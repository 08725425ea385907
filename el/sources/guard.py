"""The step every raw row passes: contract breakers are quarantined in `rejects`, fit rows get lineage.

`split` checks every batch of one extracted resource once (`check_items`) and forks the result into two
transformers loaded in the same load package (so a reject can never be lost while the cursor advances):
the fit rows, with `_extracted_at` and `_source`, and the rejects, with source, table, reason and the
raw record.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import dlt
import pyarrow as pa
import pyarrow.compute as pc
from dlt.common.configuration.container import Container
from dlt.common.destination.capabilities import DestinationCapabilitiesContext
from dlt.common.json import json
from dlt.common.libs.pyarrow import columns_to_arrow
from dlt.common.normalizers.utils import generate_dlt_ids
from dlt.common.schema.typing import C_DLT_ID, C_DLT_LOAD_ID
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


def _checked_table(
    table: pa.Table, contract: Contract, extracted_at: dt.datetime, origin: Origin, decimals: Decimals,
    load_id: str | None,
) -> Checked:  # fmt: skip
    """An Arrow batch checked with one vectorised mask; only the candidate rows it picks are checked row by
    row. The mask may pick more than breaks the contract: a candidate with no violation stays fit."""
    mask = contract.candidate_mask(table)
    rejects = []
    if pc.any(mask).as_py():
        fit_again = []
        candidates = table.filter(mask).to_pylist()
        for index, row in zip(pc.indices_nonzero(mask).to_pylist(), candidates, strict=True):
            reason = contract.violation(row)
            if reason is None:
                fit_again.append(index)
            else:
                rejects.append(contract.reject(row, reason, extracted_at, _origin(origin, row)))
        if fit_again:
            flags = mask.to_pylist()
            for index in fit_again:
                flags[index] = False
            mask = pa.array(flags, pa.bool_())
    table = table.filter(pc.invert(mask))
    table = _declared_decimals(table, decimals)
    rows = table.num_rows
    table = table.append_column("_extracted_at", _constant(extracted_at, pa.timestamp("us", "UTC"), rows))
    source = origin if isinstance(origin, str) else contract.source
    table = table.append_column("_source", _constant(source, pa.string(), rows))
    if load_id is not None:
        table = table.append_column("_dlt_load_id", _constant(load_id, pa.string(), rows))
    return Checked(table, rejects)


# Python types of the values dlt's row path stores unchanged in a column of each dlt type (no coercion,
# no variant column; None is null); json values are dicts, serialized as dlt's parquet writer does
JSON_VALUE_TYPES = frozenset({dict, type(None)})
ROW_VALUE_TYPES: dict[str, frozenset[type]] = {
    "text": frozenset({str, type(None)}),
    "bigint": frozenset({int, type(None)}),
    "double": frozenset({float, type(None)}),
    "bool": frozenset({bool, type(None)}),
    "timestamp": frozenset({dt.datetime, type(None)}),
    "json": JSON_VALUE_TYPES,
}


class _KeptJsonHint(logging.Filter):
    """dlt warns on every Arrow batch whose string column the table's json hint overrides (`properties`):
    that override is the point (json text into a json column, as the row path writes it), so not logged."""

    def __init__(self, table: str) -> None:
        super().__init__()
        self.table = table
        self.prefix = f"In resource: {table}, when merging arrow schema with dlt schema, several column hints"

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefix)


class RowsAsArrow:
    """Fit rows as one Arrow table typed and ordered exactly as dlt's row path writes its parquet load
    file (dlt's own `columns_to_arrow` over the table's stored columns, json as dlt's json text, the
    `_dlt_load_id` and `_dlt_id` dlt would add), so dlt's normalize only moves the file. The columns are
    the table's as stored when the load starts, frozen for the load: every Arrow batch of it has one
    schema (dlt concatenates buffered Arrow tables and fails when they differ). A batch with a row that
    would change the table - a column it does not have yet (a drift column, a nested value dlt would
    flatten), a value of another type than its column's - returns None: it goes through dlt's row path,
    which types it as always. So does every batch of a load whose table is not stored yet (the first)."""

    def __init__(self, table: str, hints: Mapping[str, Mapping[str, Any]]) -> None:
        self.table = table
        self.load_id: str | None = None
        self.schema: pa.Schema | None = None
        self.value_types: dict[str, frozenset[type]] = {}
        # dlt compares an Arrow batch's types with the column hints the resource declares only: when those
        # are all json hints, its warning can only be about them (the json text), so it is not logged
        dlt_logger = logging.getLogger("dlt")
        only_json = all(hint.get("data_type") == "json" for hint in hints.values())
        if only_json and not any(isinstance(f, _KeptJsonHint) and f.table == table for f in dlt_logger.filters):
            dlt_logger.addFilter(_KeptJsonHint(table))

    def _freeze(self, load_id: str) -> None:
        self.load_id, self.schema, self.value_types = load_id, None, {}
        schema = dlt.current.source_schema()
        if self.table not in schema.tables or schema.get_table(self.table).get("write_disposition") != "append":
            return  # not stored yet (the first load), or not append-only: `_dlt_id` below is a new random id
        columns = schema.get_table_columns(self.table)
        value_types = {}
        for name, column in columns.items():
            if name in (C_DLT_LOAD_ID, C_DLT_ID):
                continue
            kinds = ROW_VALUE_TYPES.get(column["data_type"])
            if column["data_type"] == "bigint":
                plain = column.get("precision") in (None, 64)
            else:
                # every other type (text, double, bool, json, timestamp; a type not in ROW_VALUE_TYPES sends
                # the whole load by rows below) is plain unless it has one of two hints: `timezone` false - a
                # timestamp without time zone, whose values dlt's row path converts and this would not -
                # or `x-nested-type` - a json column dlt stores as a nested Arrow type, not as json text.
                # Neither hint is set on text, double or bool columns, so those are always plain.
                plain = column.get("timezone", True) and not column.get("x-nested-type")
            if kinds is None or not plain or not column.get("nullable", True):
                return  # a column this conversion does not type as dlt would: the whole load goes by rows
            value_types[name] = kinds
        if C_DLT_LOAD_ID not in columns or C_DLT_ID not in columns:
            return
        caps = Container()[DestinationCapabilitiesContext]
        self.schema, self.value_types = columns_to_arrow(columns, caps, "UTC"), value_types

    def __call__(self, rows: list[dict[str, Any]], load_id: str) -> pa.Table | None:
        if load_id != self.load_id:
            self._freeze(load_id)
        if self.schema is None or not rows:
            return None
        value_types = self.value_types
        if not all(value_types.keys() >= row.keys() for row in rows):
            return None  # a column the table does not have (yet)
        arrays = []
        for field in self.schema:
            if field.name == C_DLT_LOAD_ID:
                arrays.append(_constant(load_id, field.type, len(rows)))
                continue
            if field.name == C_DLT_ID:
                arrays.append(pa.array(generate_dlt_ids(len(rows)), field.type))
                continue
            values = [row.get(field.name) for row in rows]
            if not value_types[field.name].issuperset(map(type, values)):
                return None  # a value dlt would coerce or put in a variant column
            if value_types[field.name] is JSON_VALUE_TYPES:
                values = [None if value is None else json.dumps(value) for value in values]
            try:
                arrays.append(pa.array(values, field.type))
            except (pa.ArrowInvalid, OverflowError):  # e.g. an integer beyond int64: as dlt's row path fails it
                return None
        return pa.Table.from_arrays(arrays, schema=self.schema)


def check_items(
    items: Items,
    contract: Contract,
    extracted_at: dt.datetime,
    origin: Origin,
    decimals: Decimals | None = None,
    load_id: str | None = None,
    as_arrow: RowsAsArrow | None = None,
) -> Checked:
    """Rows that keep the contract, typed, with lineage columns (Arrow stays Arrow), and one reject record
    per row that breaks it, with the reason and the raw record. dlt adds its load id to row items itself;
    Arrow tables get it here (`load_id`), so dlt need not rewrite their files. With `as_arrow` (and a load
    id), fit rows are handed to dlt as Arrow where that types them as dlt's row path would."""
    items = _typed_or_rows(items, contract)
    if isinstance(items, pa.Table | pa.RecordBatch):
        table = pa.table(items) if isinstance(items, pa.RecordBatch) else items
        return _checked_table(table, contract, extracted_at, origin, decimals or {}, load_id)
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
    if as_arrow is not None and load_id is not None:
        table = as_arrow(fit, load_id)
        if table is not None:
            return Checked(table, rejects)
    return Checked(fit, rejects)


def split(
    parent: DltResource,
    table: str,
    contract: Contract,
    extracted_at: dt.datetime,
    origin: Origin,
    arrow_rows: bool = False,
    prepare: Callable[[Any], Any] | None = None,
) -> list[DltResource]:
    """[fit rows -> `table`, rejects -> `rejects`], both fed by one evaluation of `parent`; with
    `arrow_rows`, fit row batches go to dlt as Arrow where that is exact (`RowsAsArrow`); `prepare` maps
    each row (not Arrow batches) before the check (el/sources/events_api.py, `cursor_guards`)."""
    declared = parent.columns if isinstance(parent.columns, dict) else {}
    decimals = {
        name: (column["precision"], column["scale"])
        for name, column in declared.items()
        if column.get("data_type") == "decimal" and column.get("precision") and column.get("scale") is not None
    }
    as_arrow = RowsAsArrow(table, declared) if arrow_rows else None

    @dlt.transformer(name=f"{table}__checked")
    def check(items: Items) -> Iterator[Checked]:
        load_id = dlt.current.load_package_state()["load_id"]
        if prepare is not None and not isinstance(items, pa.Table | pa.RecordBatch):
            items = [prepare(item) for item in (items if isinstance(items, list) else [items])]
        yield check_items(items, contract, extracted_at, origin, decimals, load_id, as_arrow)

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
