"""shop_elt: the `el run` chain as an Airflow 3 DAG.

load (one task per source) -> dbt project rendered by astronomer-cosmos (one task per model with its
tests, seeds, snapshots) -> source freshness -> Elementary report (full mode) -> record the run.
Configuration: environment variables (docs/operations.md, "Airflow"). The product code is `el`;
this file only wires it into Airflow.
"""

from __future__ import annotations

import datetime as dt
import os

from airflow.sdk import DAG, DeadlineAlert, DeadlineReference, SyncCallback, TriggerRule, task
from airflow.sdk.definitions.timetables.interval import CronDataIntervalTimetable
from airflow.sdk.exceptions import AirflowSkipException
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import ExecutionMode, InvocationMode, LoadMode, TestBehavior, TestIndirectSelection

from el.config import SOURCES
from el.dbt import DbtRunner
from el.mode import detect
from el.orchestration import (
    TaskRun,
    backfill_window,
    deadline_missed,
    hold_warehouse,
    release_warehouse,
    run_id_for,
    task_failed,
)
from el.pipeline import RUN_ID_ENV
from el.prom import cosmos_node_counts
from el.settings import Settings

DAG_ID = os.environ.get("SHOP_AIRFLOW_DAG_ID", "shop_elt")
SCHEDULE = os.environ.get("SHOP_AIRFLOW_SCHEDULE", "0 0 * * *")  # cron, UTC
START = dt.datetime.fromisoformat(os.environ.get("SHOP_AIRFLOW_START", "2026-01-01")).replace(tzinfo=dt.UTC)
CATCHUP = os.environ.get("SHOP_AIRFLOW_CATCHUP", "false").lower() in ("1", "true", "yes", "on")
RETRIES = int(os.environ.get("SHOP_AIRFLOW_RETRIES", "3"))
RETRY_DELAY = dt.timedelta(seconds=float(os.environ.get("SHOP_AIRFLOW_RETRY_DELAY_SECONDS", "60")))
MAX_RETRY_DELAY = dt.timedelta(seconds=float(os.environ.get("SHOP_AIRFLOW_MAX_RETRY_DELAY_SECONDS", "1800")))
DEADLINE = dt.timedelta(minutes=float(os.environ.get("SHOP_AIRFLOW_DEADLINE_MINUTES", "180")))

settings = Settings.from_env()
mode = detect(settings.project_root)
runner = DbtRunner(settings, mode)

# Backfill runs (`airflow dags backfill`, or a run triggered with conf {"recompute": true}) recompute the
# dates of their data interval (`el run --from --to`); scheduled runs need no dates: the marts recompute
# exactly the dates that newly loaded rows touch. The Cosmos tasks get the same values through templates.
RECOMPUTE = "(dag_run.run_type == 'backfill' or (dag_run.conf or {}).get('recompute'))"
RUN_ID = "airflow-{{ dag_run.run_id }}"
FROM = "{{ data_interval_start.strftime('%Y-%m-%d') if " + RECOMPUTE + " else '' }}"
TO = (
    "{{ (data_interval_end - macros.timedelta(microseconds=1) if data_interval_end > data_interval_start "
    "else data_interval_start).strftime('%Y-%m-%d') if " + RECOMPUTE + " else '' }}"
)


def task_run(context: dict) -> TaskRun:
    dag_run = context["dag_run"]
    run = TaskRun(settings, run_id_for(dag_run.run_id))
    if dag_run.run_type == "backfill" or (dag_run.conf or {}).get("recompute"):
        date_from, date_to = backfill_window(context["data_interval_start"], context["data_interval_end"])
        run = TaskRun(settings, run.run_id, date_from, date_to)
    return run


with DAG(
    dag_id=DAG_ID,
    description="shop ELT: load every source, dbt (Cosmos), source freshness, Elementary report",
    schedule=CronDataIntervalTimetable(SCHEDULE, timezone="UTC"),
    start_date=START,
    catchup=CATCHUP,
    max_active_runs=1,  # one writer: the DuckDB warehouse
    max_active_tasks=1,  # and one task at a time: parallel tasks would only be refused by the warehouse lock
    default_args={
        "retries": RETRIES,
        "retry_delay": RETRY_DELAY,
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": MAX_RETRY_DELAY,
        "on_failure_callback": task_failed,
    },
    deadline=DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=DEADLINE,
        callback=SyncCallback(deadline_missed),
    )
    if DEADLINE
    else None,  # SHOP_AIRFLOW_DEADLINE_MINUTES=0: no deadline alert
    tags=["shop", "dbt", "dlt"],
) as dag:

    @task(retries=0)
    def begin(**context) -> None:
        """Record the run as started in el_meta.pipeline_runs (step `run`), as `el run` does."""
        run = task_run(context)
        print(f"run {run.run_id}: dates {run.date_from} to {run.date_to}", flush=True)
        run.begin()

    @task
    def load(source: str, **context) -> str:
        """Extract-load one source with the existing el code; retried with exponential backoff."""
        return task_run(context).load(source).detail

    dbt = DbtTaskGroup(
        group_id="dbt",
        project_config=ProjectConfig(
            dbt_project_path=runner.project_dir,
            dbt_vars=runner.vars(),
            # packages are installed once at deploy (`dbt deps`), never while parsing or running the DAG:
            # Cosmos' default would reach the package hub on every parse and fail offline in full mode
            install_dbt_deps=False,
        ),
        profile_config=ProfileConfig(
            profile_name="shop",
            target_name=os.environ.get("DBT_TARGET", "dev"),
            profiles_yml_filepath=settings.project_root / "profiles.yml",
        ),
        execution_config=ExecutionConfig(
            execution_mode=ExecutionMode.LOCAL,
            invocation_mode=InvocationMode.DBT_RUNNER,  # dbt in-process: no interpreter start per task
            # a model's task runs the tests on that model alone; tests spanning models run after all of them
            test_indirect_selection=TestIndirectSelection.CAUTIOUS,
        ),
        render_config=RenderConfig(
            load_method=LoadMode.DBT_LS,
            test_behavior=TestBehavior.BUILD,  # one task per model: `dbt build` of the model with its tests
            invocation_mode=InvocationMode.DBT_RUNNER,
            enable_mock_profile=False,
            emit_datasets=False,  # no downstream DAG consumes them; saves work in every dbt task
            should_detach_multiple_parents_tests=True,
        ),
        operator_args={
            "install_deps": False,
            "append_env": True,
            "env": {
                RUN_ID_ENV: RUN_ID,
                "SHOP_WAREHOUSE": str(settings.warehouse),
                "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            },
            "vars": {**runner.vars(), "backfill_from": FROM, "backfill_to": TO},
            "pre_execute": hold_warehouse,
            "on_success_callback": release_warehouse,
            "on_retry_callback": release_warehouse,
        },
    )

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def source_freshness(**context) -> str:
        return task_run(context).freshness().detail

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def elementary_report(**context) -> str:
        """The Elementary report in full mode; in core mode, or before any dbt build made Elementary's
        tables, the task ends `skipped`, its log saying why."""
        result = task_run(context).report()
        if result.status == "skipped":
            raise AirflowSkipException(f"elementary report skipped: {result.detail}")
        return f"{result.status}: {result.detail}"

    @task(trigger_rule=TriggerRule.ALL_DONE, retries=0)
    def finish(**context) -> None:
        """Close the run in el_meta.pipeline_runs; fail the DAG run when any task failed."""
        ti = context["ti"]
        states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {})
        failed = [task_id for task_id, state in states.items() if state in ("failed", "upstream_failed")]
        status = task_run(context).finish(failed, cosmos_node_counts(states))
        if failed:
            raise RuntimeError(f"run {status}: failed tasks {', '.join(sorted(failed))}")

    started = begin()
    loads = [load.override(task_id=f"load_{source}")(source) for source in SOURCES]
    started >> loads
    loads >> dbt >> source_freshness() >> elementary_report() >> finish()
