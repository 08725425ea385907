"""Marketing spend file drops: files tracked by name and content hash (sha256) in dlt resource state.

A file is loaded when its name is new or its content changed (a restated file reloads in full; staging
keeps the newest version of each file); an unchanged file is skipped - without hashing when its size and
modification time are unchanged. The state is committed with the data in the same load package, so a
failed load reloads the same files. A file that cannot be read (not UTF-8, a header without the required
columns) becomes one `bad_file` reject and is not rejected again until it changes; a line with more or
fewer fields than the header (an unquoted comma, a file cut short) is a `malformed_CSV` reject with all
its fields. A UTF-8 byte order mark (Excel's "CSV UTF-8") is not part of the first column's name.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import dlt
from dlt.extract.resource import DltResource

from el.contracts import SPEND_CONTRACT
from el.sources.guard import split

BAD_FILE = "_bad_file"  # a pseudo-row standing for a whole unreadable file (see SPEND_CONTRACT.first_checks)
MALFORMED = "_malformed_csv"  # a line the header cannot split: how many fields it has (SPEND_CONTRACT.first_checks)
EXTRA = "_extra_fields"  # the fields of a line beyond its header's, kept in the reject's record
REQUIRED = SPEND_CONTRACT.required


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _bad(name: str, cause: str, data: bytes) -> dict[str, Any]:
    return {BAD_FILE: f"{name}: {cause}", "file": name, "first_bytes": data[:200].decode("latin-1")}


def read_rows(name: str, data: bytes, file_hash: str, modified_at: dt.datetime) -> list[dict[str, Any]]:
    """Rows of one spend CSV (values as text), or one bad-file pseudo-row saying why it cannot be read."""
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        return [_bad(name, f"not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})", data)]
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, [])
        missing = [column for column in REQUIRED if column not in header]
        if missing:
            found = ";".join(header) if header else "nothing"
            return [_bad(name, f"header has no column {missing[0]} (found: {found}) - wrong delimiter?", data)]
        repeated = sorted({column for column in header if header.count(column) > 1})
        if repeated:  # which of the two values is the column's?
            return [_bad(name, f"header has column {repeated[0]!r} more than once", data)]
        return list(_records(reader, header, name, file_hash, modified_at))
    except csv.Error as exc:  # an unterminated quote swallowing the rest of the file, say
        return [_bad(name, f"not readable as CSV at line {reader.line_num}: {exc}", data)]


def _records(
    reader: Any, header: list[str], name: str, file_hash: str, modified_at: dt.datetime
) -> Iterator[dict[str, Any]]:
    """The lines after the header as rows keyed by it; `_file_line` is the physical line a record starts
    on. A line with more fields than the header (but for empty ones at its end) or fewer is marked
    malformed, its fields past the header kept under EXTRA."""
    end = reader.line_num
    for record in reader:
        start, end = end + 1, reader.line_num
        if not record:
            continue  # a blank line
        extra = record[len(header) :]
        if not any(extra):
            extra = []  # a trailing comma: nothing is lost
        values = [*record[: len(header)], *[""] * (len(header) - len(record))]  # a field it lacks: empty
        row: dict[str, Any] = {column: value or None for column, value in zip(header, values, strict=True)}
        fields = min(len(record), len(header)) + len(extra)
        if fields != len(header):
            row[MALFORMED] = f"line {start} has {fields} fields, the header {len(header)}"
        if extra:
            row[EXTRA] = extra
        row["_file_name"] = name
        row["_file_line"] = start
        row["_file_modified_at"] = modified_at
        row["_file_hash"] = file_hash
        yield row


def _folder(directory: str) -> Path:
    parsed = urlparse(directory)
    return Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(directory)


def spend_files(directory: str, file_glob: str = "spend_*.csv") -> DltResource:
    @dlt.resource(name="spend_files")
    def files() -> Iterator[list[dict[str, Any]]]:
        seen: dict[str, dict[str, Any]] = dlt.current.resource_state().setdefault("files", {})
        for path in sorted(_folder(directory).glob(file_glob)):
            stat = path.stat()
            known = seen.get(path.name)
            if known and known["size"] == stat.st_size and known["mtime_ns"] == stat.st_mtime_ns:
                continue  # unchanged: not even hashed
            data = path.read_bytes()
            file_hash = _sha256(data)
            seen[path.name] = {"sha256": file_hash, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
            if known and known["sha256"] == file_hash:
                continue  # touched, same content
            modified_at = dt.datetime.fromtimestamp(stat.st_mtime, dt.UTC)
            yield read_rows(path.name, data, file_hash, modified_at)

    return files()


def spend_resource(directory: str, extracted_at: dt.datetime, file_glob: str = "spend_*.csv") -> list[DltResource]:
    return split(
        spend_files(directory, file_glob),
        "spend",
        SPEND_CONTRACT,
        extracted_at,
        lambda row: f"marketing_files/{row.get('_file_name') or row.get('file')}",
    )
