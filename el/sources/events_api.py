"""The clickstream events API via dlt rest_api: cursor pages, incremental on received_at, retries."""

from __future__ import annotations

import datetime as dt

from dlt.extract.resource import DltResource
from dlt.sources.helpers.requests import Client
from dlt.sources.rest_api import rest_api_resources

from el.contracts import EVENTS_CONTRACT, Contract
from el.sources.guard import split

INITIAL_RECEIVED_AT = "1970-01-01T00:00:00Z"


def events_resource(
    base_url: str,
    extracted_at: dt.datetime,
    lag_seconds: float,
    page_size: int = 500,
    max_attempts: int = 8,
    backoff_factor: float = 0.5,
    contract: Contract = EVENTS_CONTRACT,
    arrow_rows: bool = False,
) -> list[DltResource]:
    """The events and their rejects; `arrow_rows`: fit rows go to dlt as Arrow tables typed as dlt's row
    path types them (el/sources/guard.py, `RowsAsArrow`), so normalize need not type them row by row."""
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
                                "cursor_path": "received_at",
                                "initial_value": INITIAL_RECEIVED_AT,
                                "lag": lag_seconds,
                            },
                        },
                    },
                }
            ],
        }
    )
    return split(resource, "events", contract, extracted_at, "events_api", arrow_rows)
