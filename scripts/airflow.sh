#!/usr/bin/env bash
# `make airflow`: install the airflow extra into .venv, then start Airflow standalone on loopback with the
# shop_elt DAG loaded (SQLite metadata DB under data/airflow), and print the URL and the login.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh airflow
root="$(pwd)"
venv="$(cd "${VENV:-.venv}" && pwd)"
export PATH="$venv/bin:$PATH" PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" SHOP_PROJECT_ROOT="$root"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$root/data/airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="${AIRFLOW__CORE__DAGS_FOLDER:-$root/orchestration/dags}"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__COSMOS__ENABLE_TELEMETRY=False
# the first parse renders the dbt project with `dbt ls` (cached afterwards): more than the default 30 s on a slow box
export AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT="${AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT:-180}"
export AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT="${AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT:-180}"
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__PORT="${SHOP_AIRFLOW_PORT:-8080}"
mkdir -p "$AIRFLOW_HOME"

# the demo's events API: served from data/sources when no SHOP_EVENTS_URL is set (make demo creates it)
if [ -z "${SHOP_EVENTS_URL:-}" ]; then
    if [ -f data/sources/events.sqlite ]; then
        shopsim serve --root data/sources --port 8765 >"$AIRFLOW_HOME/events_api.log" 2>&1 &
        export SHOP_EVENTS_URL=http://127.0.0.1:8765
        echo "airflow: serving the demo events API of data/sources at $SHOP_EVENTS_URL"
    else
        echo "airflow: no data/sources and no SHOP_EVENTS_URL: run \`make demo\` first, or the events load fails"
    fi
fi

airflow standalone >"$AIRFLOW_HOME/standalone.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; kill $(jobs -p) 2>/dev/null' EXIT INT TERM
url="http://127.0.0.1:$AIRFLOW__API__PORT"
for _ in $(seq 1 180); do
    if curl -fsS "$url/api/v2/monitor/health" >/dev/null 2>&1; then break; fi
    if ! kill -0 "$pid" 2>/dev/null; then tail -30 "$AIRFLOW_HOME/standalone.log"; exit 1; fi
    sleep 1
done
passwords="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
echo "airflow: UI at $url (DAG shop_elt), log $AIRFLOW_HOME/standalone.log"
echo "airflow: login admin / $(python -c "import json,sys; print(json.load(open(sys.argv[1]))['admin'])" "$passwords")"
echo "airflow: Ctrl-C stops it"
wait "$pid"
