#!/usr/bin/env bash
# Creates or refreshes the project virtualenv (.venv) from pyproject.toml + constraints.txt.
# Re-installs only when those files change, so repeated runs start in seconds.
# Arguments name optional extras to add to `dev`, e.g. `scripts/bootstrap.sh airflow` or `scripts/bootstrap.sh spark`.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
extras="dev"
for extra in "$@"; do extras="$extras,$extra"; done
tag="${extras//,/-}"
stamp="$VENV/.installed-$tag-$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)"

if [ ! -x "$VENV/bin/python" ]; then
    echo "bootstrap: creating $VENV with $($PYTHON --version)"
    "$PYTHON" -m venv "$VENV"
fi
if [ ! -f "$stamp" ]; then
    echo "bootstrap: installing the project and its pinned dependencies ($extras; first run takes a few minutes)"
    # pip's and setuptools' chatter (build warnings, index notices) goes to a log, shown only on failure
    log="$VENV/bootstrap.log"
    if ! { "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip \
        && "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[$extras]"; \
        } >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "bootstrap: installation failed; the whole pip output is in $log" >&2
        exit 1
    fi
    # drop this set's older stamps only: the hash is 16 characters, so `dev-????...` never matches
    # `dev-airflow-...` (each set of extras keeps its own stamp; older checkouts' stamps had no tag)
    rm -f "$VENV"/.installed-"$tag"-???????????????? "$VENV"/.installed-????????????????
    touch "$stamp"
fi
