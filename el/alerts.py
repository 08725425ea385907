"""Failure and missed-deadline alerts: a Slack-compatible JSON message POSTed to a webhook.

The URL comes from SHOP_ALERT_WEBHOOK_URL or `alerts.webhook_url` in `.dlt/secrets.toml`; without one
the alert is printed as a warning and nothing fails. A webhook that cannot be reached is logged too:
an alert must never hide (or replace) the failure it reports.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any

WEBHOOK_ENV = "SHOP_ALERT_WEBHOOK_URL"


def _say(text: str) -> None:
    """To stderr, like every el message (Airflow keeps it in the task log)."""
    print(f"el alerts: {text}", file=sys.stderr, flush=True)


def webhook_url() -> str | None:
    url = os.environ.get(WEBHOOK_ENV)
    if url:
        return url
    from el.secrets import SecretsError, secret

    try:
        return secret("alerts.webhook_url") or None
    except SecretsError as exc:  # an alert must still be printed: say why it is not sent
        _say(f"{exc}; no webhook")
        return None


def message(kind: str, dag: str, task: str | None, run_id: str, error: str, log_url: str | None) -> dict[str, Any]:
    """Slack's incoming-webhook shape (`text`) plus the same facts as fields for other receivers."""
    where = f"{dag}.{task}" if task else dag
    text = f":red_circle: {kind}: {where} (run {run_id}): {error}" + (f"\nlog: {log_url}" if log_url else "")
    return {
        "text": text,
        "kind": kind,
        "dag": dag,
        "task": task,
        "run_id": run_id,
        "error": error,
        "log_url": log_url,
    }


def post(payload: dict[str, Any], url: str | None = None, timeout: float = 10.0) -> bool:
    """POST the payload; True when the webhook accepted it. Never raises."""
    url = url or webhook_url()
    if not url:
        _say(f"warning: alert not sent (set {WEBHOOK_ENV} to receive it): {payload['text']}")
        return False
    request = urllib.request.Request(
        url, json.dumps(payload).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            ok = 200 <= response.status < 300
    except (urllib.error.URLError, OSError) as exc:
        _say(f"error: alert webhook {url} failed: {exc}; alert was: {payload['text']}")
        return False
    if not ok:
        _say(f"error: alert webhook {url} answered {response.status}; alert was: {payload['text']}")
    return ok
