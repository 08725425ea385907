"""Extract-load (dlt) and the commands that drive the dbt project."""

import os

# With Airflow installed (the `airflow` extra), dlt imports it and asks Airflow's Variable store for every
# configuration key it resolves: about 3 s per process here. The project's configuration comes from the
# environment and `.dlt/secrets.toml` only (README, Configuration), so that provider is off unless
# PROVIDERS__ENABLE_AIRFLOW_SECRETS=true is set.
os.environ.setdefault("PROVIDERS__ENABLE_AIRFLOW_SECRETS", "false")
