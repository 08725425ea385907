"""Extract-load (dlt) and the commands that drive the dbt project."""

import os
from pathlib import Path

# With Airflow installed (the `airflow` extra), dlt imports it and asks Airflow's Variable store for every
# configuration key it resolves: about 3 s per process here. The project's configuration comes from the
# environment and `.dlt/secrets.toml` only (README, Configuration), so that provider is off unless
# PROVIDERS__ENABLE_AIRFLOW_SECRETS=true is set.
os.environ.setdefault("PROVIDERS__ENABLE_AIRFLOW_SECRETS", "false")
# dlt reads `.dlt/secrets.toml` from its project folder, by default the working directory: `el` started
# from cron, a service or an Airflow worker elsewhere would ignore the project's secrets and fall back to
# the defaults. The project root it is (SHOP_PROJECT_ROOT, else this checkout), unless DLT_PROJECT_DIR is set.
os.environ.setdefault(
    "DLT_PROJECT_DIR", os.environ.get("SHOP_PROJECT_ROOT") or str(Path(__file__).resolve().parent.parent)
)
