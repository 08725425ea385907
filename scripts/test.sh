#!/usr/bin/env bash
# The test suite: ruff, then pytest. pytest's exit 5 (nothing collected) is a failure, said plainly.
set -uo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check el shopsim tests/python bench || exit 1
.venv/bin/pytest "$@"
status=$?
if [ "$status" -eq 5 ]; then
    echo "test: pytest collected no tests - failing" >&2
    exit 1
fi
exit "$status"
