"""The clickstream events API via dlt rest_api: cursor pages, incremental on received_at, retries."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from dlt.extract.resource import DltResource
from dlt.sources.helpers.requests import Client
from dlt.sources.rest_api import rest_api_resources

from el.contracts import EVENTS_CONTRACT, Contract, ReceivedBy, cursor_text
from el.sources.guard import split

INITIAL_RECEIVED_AT = "1970-01-01T00:00:00.000000Z"  # CURSOR_START written as `cursor_text` writes it
CURSOR = "received_at"
SET_ASIDE = "_el_received_at_set_aside"  # the row's own received_at while it goes round dlt's incremental
ABSENT = object()  # ... when the row had none


def cursor_guards(received_by: ReceivedBy | None) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """Two steps around dlt's incremental on received_at, which sees every row before the contract does:
    `set_aside` (before it) gives a row whose received_at the cursor must not take - none, not a
    timestamp, or one `received_by` does not admit - no cursor value, so the incremental lets it through
    (`on_cursor_value_missing="include"`) without taking it, and a timestamp in another form than
    `cursor_text`'s its instant in that form, since the incremental compares text with text; `put_back`
    (the contract check's first step) restores the row's own value, so the contract judges, and the row
    keeps, what the API sent. Without them, a null received_at failed every load, a blank one was dropped without
    a trace, a word or a time in the future became the cursor (the next load failed, or skipped every event
    received before it), and so did a past time in another form that sorted later than the usual one."""

    def set_aside(row: Any) -> Any:
        if not isinstance(row, dict):
            return row
        value = row.get(CURSOR, ABSENT)
        text = cursor_text(value, received_by)
        if text == value:
            return row  # the usual case: the API's own form
        kept = dict(row)
        kept[SET_ASIDE] = value
        kept[CURSOR] = text
        return kept

    def put_back(row: Any) -> Any:
        if isinstance(row, dict) and SET_ASIDE in row:
            value = row.pop(SET_ASIDE)
            if value is ABSENT:
                del row[CURSOR]
            else:
                row[CURSOR] = value
        return row

    return set_aside, put_back


def events_resource(
    base_url: str,
    extracted_at: dt.datetime,
    lag_seconds: float,
    page_size: int = 500,
    max_attempts: int = 8,
    backoff_factor: float = 0.5,
    contract: Contract = EVENTS_CONTRACT,
    arrow_rows: bool = False,
    received_by: ReceivedBy | None = None,
) -> list[DltResource]:
    """The events and their rejects; `arrow_rows`: fit rows go to dlt as Arrow tables typed as dlt's row
    path types them (el/sources/guard.py, `RowsAsArrow`), so normalize need not type them row by row;
    `received_by`: the latest received_at the cursor may take (`cursor_guards`)."""
    # dlt's requests client retries 429 and 5xx with exponential backoff, honouring Retry-After
    client = Client(
        request_max_attempts=max_attempts,
        request_backoff_factor=backoff_factor,
        request_max_retry_delay=30,
        respect_retry_after_header=True,
        raise_for_status=False,
    )
    (resource,) = rest_api_resources(
        {
            "client": {
                "base_url": base_url,
                "session": client.session,
                "paginator": {"type": "cursor", "cursor_path": "next_cursor", "cursor_param": "cursor"},
            },
            "resource_defaults": {"write_disposition": "append"},
            "resources": [
                {
                    "name": "events",
                    "columns": {"properties": {"data_type": "json"}},
                    "endpoint": {
                        "path": "events",
                        "data_selector": "data",
                        "params": {
                            "limit": page_size,
                            "received_since": {
                                "type": "incremental",
                                "cursor_path": CURSOR,
                                "initial_value": INITIAL_RECEIVED_AT,
                                "lag": lag_seconds,
                                "on_cursor_value_missing": "include",  # rows `cursor_guards` set aside
                            },
                        },
                    },
                }
            ],
        }
    )
    set_aside, put_back = cursor_guards(received_by)
    # dlt keeps its incremental the last step of the resource: a mapping added goes before it
    resource.add_map(set_aside)
    return split(resource, "events", contract, extracted_at, "events_api", arrow_rows, prepare=put_back)
