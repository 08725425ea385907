"""One value of dlt's secrets (`.dlt/secrets.toml` in the project root, or in DLT_PROJECT_DIR when set).

A missing key is None; a secrets file that cannot be read is an error of the caller's kind, never "not
set": read as unset, a broken file would silently send the run to the defaults (the demo's SQLite shop,
a localhost warehouse) instead of production."""

from __future__ import annotations

import dlt
from dlt.common.configuration.exceptions import ConfigProviderException


class SecretsError(Exception):
    """dlt's config or secrets file cannot be read."""


def secret(key: str, error: type[Exception] = SecretsError) -> str | None:
    """`key` (dotted, e.g. `sources.shop_db.credentials`) from dlt's secrets as text, None when absent;
    `error` with the reason when dlt's files cannot be read (dlt reads `.dlt/config.toml` and
    `.dlt/secrets.toml` together: a broken config.toml fails a secret's lookup too; dlt's reason names
    the file)."""
    try:
        value = dlt.secrets.get(key)
    except ConfigProviderException as exc:
        reason = " ".join(str(exc).split())
        raise error(f"dlt's config/secrets cannot be read (looking for {key}): {reason}") from None
    return None if value is None else str(value)
