"""Marketing spend file drops via dlt's filesystem source: incremental on modification time.

A re-dropped (restated) file has a newer modification time, so it is loaded again in full; staging
keeps the rows of the newest file version per day, channel and campaign.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from typing import Any

import dlt
from dlt.extract.resource import DltResource
from dlt.sources.filesystem import FileItemDict, filesystem

from el.contracts import SPEND_CONTRACT
from el.sources.guard import split


@dlt.transformer(name="spend")
def read_spend(items: list[FileItemDict]) -> Iterator[list[dict[str, Any]]]:
    """Rows of each spend CSV, all values as text, tagged with their file and its version."""
    for item in items:
        with item.open() as handle:
            text = io.TextIOWrapper(handle, encoding="utf-8", newline="")
            rows = []
            for line_number, row in enumerate(csv.DictReader(text), start=2):
                row = {key: (value if value != "" else None) for key, value in row.items() if key is not None}
                row["_file_name"] = item["file_name"]
                row["_file_line"] = line_number
                row["_file_modified_at"] = item["modification_date"]
                rows.append(row)
            yield rows


def spend_resource(directory: str, extracted_at: dt.datetime, file_glob: str = "spend_*.csv") -> list[DltResource]:
    files = filesystem(bucket_url=directory, file_glob=file_glob)
    files.apply_hints(incremental=dlt.sources.incremental("modification_date"))
    return split(
        files | read_spend, "spend", SPEND_CONTRACT, extracted_at, lambda row: f"marketing_files/{row['_file_name']}"
    )
