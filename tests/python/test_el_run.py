"""`el run`: one run id across steps and metrics, clear failures, refusal of a second run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

from el import observe
from el.dbt import DbtRunner
from el.lock import exclusive
from el.mode import ELEMENTARY_OFF_ON_SPARK, Mode, detect
from el.pipeline import EDR_PACKAGES, PipelineRun, RunOptions, elementary_not_built, report_path
from el.prom import metrics_dir
from el.settings import Settings
from shopsim import SimConfig, Simulator
from shopsim.api import EventsApi
from tests.python.el_helpers import (
    demo_events_url,
    env_for,
    load_sources,
    run_el,
    served_fit_events,
    settings_for,
    warehouse_held_elsewhere,
    wh,
)

pytestmark = pytest.mark.slow


def test_run_records_every_step_under_one_run_id(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    Simulator(settings.sources_root, SimConfig(scale=20)).advance(1)
    with demo_events_url(settings) as url:
        options = RunOptions(quiet=True, events_url=url)
        run = PipelineRun(settings, detect(settings.project_root), "test-run-1", options)
        results = {r.step: r.status for r in run.execute()}
    assert results["load"] == "ok" and results["dbt build"] == "ok" and results["source freshness"] == "ok"
    expected_report = "ok" if run.mode.full else "skipped"
    assert results["elementary report"] == expected_report
    steps = wh(settings, "select step, status from el_meta.pipeline_runs where run_id = 'test-run-1'")
    assert dict(steps) == {**results, "run": "ok"}  # step `run`: the whole run, recorded as started first
    metric_runs = wh(settings, "select distinct run_id from el_meta.load_metrics")
    assert metric_runs == [("test-run-1",)]
    assert wh(settings, "select count(*) from main_marts.fct_orders")[0][0] > 0
    assert "result: ok" in run.summary()


def test_failed_load_stops_the_run_with_a_clear_summary(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    Simulator(settings.sources_root, SimConfig(scale=5)).advance(1)
    done = run_el(
        settings,
        "run",
        "--run-id",
        "broken-1",
        SHOP_DB_URL="postgresql://postgres@127.0.0.1:1/nothing",
        SHOP_EVENTS_URL="http://127.0.0.1:1",  # never reached: the shop database fails first
    )
    assert done.returncode == 1
    assert "load               failed" in done.stdout and "source database unreachable" in done.stdout
    assert "dbt build          skipped" in done.stdout
    assert "result: FAILED at load" in done.stdout
    assert wh(settings, "select status from el_meta.pipeline_runs where step = 'load'") == [("failed",)]


def test_a_warehouse_locked_by_another_process_fails_the_load_and_the_run_is_still_exported(
    tmp_path: Path,
) -> None:
    """A DuckDB session elsewhere (a notebook, DBeaver) holds the file: the load step fails with the lock's
    message and the run ends as any failed run - summary, exit 1, metrics for the alert - instead of
    escaping `el run` with no metrics."""
    settings = settings_for(tmp_path)
    Simulator(settings.sources_root, SimConfig(scale=5)).advance(1)
    settings.warehouse.parent.mkdir(parents=True, exist_ok=True)
    duckdb.connect(str(settings.warehouse)).close()  # the file exists
    with warehouse_held_elsewhere(settings):
        done = run_el(settings, "run", "--run-id", "locked-1", "--source", "marketing_files")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "load               failed" in done.stdout and "locked" in done.stdout
    assert "result: FAILED at load" in done.stdout
    metrics = (metrics_dir(settings) / "shop_elt.prom").read_text()
    assert 'shop_run_info{run_id="locked-1"} 1.0' in metrics
    assert "shop_run_failed 1.0" in metrics


class _LoadRaises(PipelineRun):
    """`el run` whose load step raises what no step expects: a bug, or Ctrl-C / SIGTERM mid-step."""

    error: BaseException = RuntimeError("boom")

    def load(self) -> str:
        raise self.error


@pytest.mark.parametrize(
    ("error", "load_detail"),
    [(RuntimeError("boom\nsecond line"), "RuntimeError: boom"), (KeyboardInterrupt(), None)],
)
def test_an_unforeseen_error_or_an_interruption_still_ends_the_run_recorded_and_exported(
    tmp_path: Path, error: BaseException, load_detail: str | None
) -> None:
    settings = settings_for(tmp_path)
    run = _LoadRaises(settings, Mode("core", reason="test"), "raises-1", RunOptions(quiet=True))
    run.error = error
    if load_detail:  # a failed step: the run goes on to its summary
        results = {r.step: (r.status, r.detail) for r in run.execute()}
        assert results["load"] == ("failed", load_detail)
        assert results["dbt build"] == ("skipped", "load failed")
    else:  # an interruption stops the run, after recording it
        with pytest.raises(KeyboardInterrupt):
            run.execute()
        results = {r.step: (r.status, r.detail) for r in run.results}
        assert results["interrupted"] == ("failed", "stopped by KeyboardInterrupt")
    steps = dict(wh(settings, "select step, status from el_meta.pipeline_runs where run_id = 'raises-1'"))
    assert steps["run"] == "failed"
    metrics = (metrics_dir(settings) / "shop_elt.prom").read_text()
    assert 'shop_run_info{run_id="raises-1"} 1.0' in metrics and "shop_run_failed 1.0" in metrics


@pytest.mark.parametrize("when", ["while dbt starts", "while dbt writes models", "ctrl-c in a terminal"])
def test_sigterm_during_dbt_build_stops_dbt_records_the_run_and_frees_the_warehouse(tmp_path: Path, when: str) -> None:
    """A scheduler's stop (`timeout`, systemd, a killed task) is SIGTERM: el interrupts its dbt child and
    waits for it before the run and its warehouse lock end (it used to die at once, the lock with it, while
    dbt went on writing) - whether dbt is still importing and parsing or already building. Ctrl-C in a
    terminal reaches the whole process group, dbt included: el waits for dbt without a second interrupt."""
    settings = settings_for(tmp_path)
    Simulator(settings.sources_root, SimConfig(scale=20)).advance(1)
    run = subprocess.Popen(
        [sys.executable, "-m", "el.cli", "run", "--run-id", "stopped-1", "--source", "marketing_files"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_for(settings),
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    assert run.stdout is not None
    mark = "dbt build ..." if when == "while dbt starts" else " OK created "
    seen = []
    for line in run.stdout:
        seen.append(line)
        if mark in line:
            break
    assert mark in "".join(seen), "".join(seen)
    if when == "while dbt starts":
        time.sleep(1.0)  # the dbt child is importing dbt or parsing
    if when == "ctrl-c in a terminal":
        os.killpg(run.pid, signal.SIGINT)
    else:
        run.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    out, err = run.communicate(timeout=120)
    assert run.returncode == 130, out + err
    # interrupted and gone, not killed after the 30 s grace
    assert time.monotonic() - signalled < 25, out + err
    assert "el run: stopped" in err and "Traceback" not in err, err
    assert "interrupted        failed" in out and "result: FAILED" in out
    assert "elementary alerts skipped - the run was stopped" in out
    duckdb.connect(str(settings.warehouse)).close()  # writable at once: no dbt left holding it
    steps = dict(wh(settings, "select step, status from el_meta.pipeline_runs where run_id = 'stopped-1'"))
    assert steps["run"] == "failed" and steps["interrupted"] == "failed" and steps["load"] == "ok"
    assert "shop_run_failed 1.0" in (metrics_dir(settings) / "shop_elt.prom").read_text()


def _sigterm_while_paging(settings: Settings, api: EventsApi, *el_args: str) -> tuple[int, str, str]:
    """`el ARGS` against a slow events API, sent SIGTERM once it has fetched 5 pages (mid-extract); the API
    is fast again afterwards. Returns the exit code, stdout and stderr."""
    api.server.delay = 0.05
    started = api.server.requests
    proc = subprocess.Popen(
        [sys.executable, "-m", "el.cli", *el_args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_for(settings, SHOP_EVENTS_URL=api.url, SHOP_EVENTS_PAGE_SIZE="10"),
    )
    try:
        deadline = time.monotonic() + 60
        while api.server.requests < started + 5:
            assert time.monotonic() < deadline and proc.poll() is None, "el ended or hung before its 5th page"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:  # a failed wait must not leave el running with the warehouse lock, nor the API slow
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        api.server.delay = 0.0
    return proc.returncode, out, err


def test_sigterm_during_the_load_stops_the_run_as_stopped_not_as_a_failed_load(tmp_path: Path) -> None:
    """dlt wraps what stops it mid-load (Ctrl-C, SIGTERM; its own signal handler while it normalizes and
    loads) in a step failure: el still ends the run as stopped - exit 130, step `interrupted`, no dbt -
    rather than as a failed load that goes on to alerts."""
    settings = settings_for(tmp_path)
    sim = Simulator(settings.sources_root, SimConfig(scale=40))  # ~36 pages of 10: the stop lands mid-extract
    sim.advance(1)
    with EventsApi(sim.paths.events_db) as api:
        code, out, err = _sigterm_while_paging(settings, api, "run", "--run-id", "stopped-2", "--source", "events_api")
    assert code == 130, out + err
    assert "el run: stopped" in err and "Traceback" not in err, err
    steps = dict(wh(settings, "select step, status from el_meta.pipeline_runs where run_id = 'stopped-2'"))
    assert steps == {"run": "failed", "interrupted": "failed"}, steps  # no dbt step ran
    assert "elementary alerts skipped - the run was stopped" in out


def test_sigterm_during_el_load_stops_it_and_the_next_load_takes_every_row(tmp_path: Path) -> None:
    """`el load` stopped mid-extract: exit 130 with one line, no traceback, the warehouse free at once, and
    nothing committed that the next load would then skip - it loads every served event exactly once."""
    settings = settings_for(tmp_path)
    sim = Simulator(settings.sources_root, SimConfig(scale=40))
    sim.advance(1)
    with EventsApi(sim.paths.events_db) as api:
        code, out, err = _sigterm_while_paging(settings, api, "load", "events_api")
        assert code == 130, out + err
        assert err.strip().splitlines()[-1] == "el load: stopped" and "Traceback" not in err, err
        duckdb.connect(str(settings.warehouse)).close()  # writable at once
        again = run_el(settings, "load", "events_api", SHOP_EVENTS_URL=api.url)
    assert again.returncode == 0, again.stdout + again.stderr
    fit, distinct = served_fit_events(sim.paths.events_db)
    assert fit > 0
    assert wh(settings, "select count(*), count(distinct event_id) from raw_events.events") == [(fit, distinct)]


def test_sigterm_during_el_dbt_interrupts_dbt_instead_of_killing_it(tmp_path: Path) -> None:
    """`el dbt build` stopped: dbt gets Ctrl-C's interrupt (it cancels its queries; on PostgreSQL a killed
    client leaves them running) and el waits for it, then releases the warehouse."""
    settings = settings_for(tmp_path)
    Simulator(settings.sources_root, SimConfig(scale=20)).advance(1)
    load_sources(settings)
    build = subprocess.Popen(
        [sys.executable, "-m", "el.cli", "dbt", "build"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_for(settings),
    )
    assert build.stdout is not None
    for line in build.stdout:
        if " OK created " in line:
            break
    build.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    out, err = build.communicate(timeout=120)
    assert build.returncode == 130 and "el dbt: stopped" in err, out[-2000:] + err
    assert time.monotonic() - signalled < 25, "dbt was not interrupted: killed after the grace period"
    assert "KeyboardInterrupt" in out  # dbt's own report of the interrupt: a SIGKILLed dbt says nothing
    duckdb.connect(str(settings.warehouse)).close()


def test_a_build_that_fails_before_writing_results_reports_no_earlier_runs_results(tmp_path: Path) -> None:
    """dbt writes run_results.json / sources.json only when it gets to run: when it cannot open the
    warehouse, the files of the run before must not be reported (metrics, lineage) as this run's."""
    settings = settings_for(tmp_path)
    Simulator(settings.sources_root, SimConfig(scale=5)).advance(1)
    load_sources(settings)
    first = PipelineRun(settings, detect(settings.project_root), "results-1", RunOptions(quiet=True))
    first.dbt_steps()
    assert [r.status for r in first.results] == ["ok", "ok"]
    assert (settings.target_dir / "run_results.json").is_file() and (settings.target_dir / "sources.json").is_file()
    with warehouse_held_elsewhere(settings):  # dbt cannot open the warehouse
        second = PipelineRun(settings, detect(settings.project_root), "results-2", RunOptions(quiet=True))
        second.dbt_steps()
    assert [r.status for r in second.results] == ["failed", "failed"]
    for artifact in ("run_results.json", "sources.json"):
        path = settings.target_dir / artifact
        assert not path.exists(), f"{artifact} of the run before is still there"


def test_second_run_is_refused_and_bad_dates_rejected(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    with exclusive(settings.warehouse, "another el run"):
        done = run_el(settings, "run")
    assert done.returncode == 2 and "refused: another el run" in done.stderr
    bad = run_el(settings, "run", "--from", "2026-02-01", "--to", "2026-01-01")
    assert bad.returncode == 2 and "--to is before --from" in bad.stderr


def test_run_without_events_url_says_how_to_set_it(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    Simulator(settings.sources_root, SimConfig(scale=5)).advance(1)
    env = {k: v for k, v in env_for(settings).items() if k != "SHOP_EVENTS_URL"}
    cmd = [sys.executable, "-m", "el.cli", "load"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 2
    assert "SHOP_EVENTS_URL is not set" in done.stderr and "shopsim serve" in done.stderr
    assert not settings.warehouse.exists(), "nothing is loaded before the configuration is known to work"


def test_partial_parse_survives_a_new_run_id(tmp_path: Path) -> None:
    """The run id reaches dbt through the environment: two runs' dbt calls reuse the parsed project."""
    settings = settings_for(tmp_path)
    mode = detect(settings.project_root)
    for run_id in ("parse-1", "parse-2"):
        PipelineRun(settings, mode, run_id, RunOptions(quiet=True))._dbt(["parse"])
    log = (settings.log_dir / "dbt.log").read_text()
    assert log.count("Unable to do partial parsing") == 1, "only the very first parse may be a full one"
    assert "config vars" not in log


def test_report_is_skipped_in_one_line_when_edr_packages_are_missing_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(tmp_path)
    monkeypatch.setenv("SHOP_EDR_PACKAGES_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("SHOP_DBT_HUB_URL", "http://127.0.0.1:1")  # unreachable
    run = PipelineRun(settings, Mode("full"), "edr-1", RunOptions())
    result = run.step("elementary report", run.report)
    assert result.status == "skipped"
    assert "dbt_utils, elementary" in result.detail and "dbt deps" in result.detail
    assert str(tmp_path / "empty") in result.detail and "\n" not in result.detail
    assert not report_path(settings).exists() and str(report_path(settings)) not in result.detail


def test_report_and_alerts_are_skipped_on_spark_even_in_full_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Elementary is off on a spark target (dbt_project.yml): the report step says so, not what edr lacks
    (its packages are missing and the hub unreachable here), and `edr monitor` is not started."""
    settings = replace(settings_for(tmp_path), target="spark", lake=tmp_path / "lake")
    monkeypatch.setenv("SHOP_EDR_PACKAGES_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("SHOP_DBT_HUB_URL", "http://127.0.0.1:1")  # unreachable
    monkeypatch.setenv("SHOP_ALERT_WEBHOOK_URL", "http://127.0.0.1:1/hook")
    run = PipelineRun(settings, Mode("full"), "edr-spark", RunOptions())
    result = run.step("elementary report", run.report)
    assert (result.status, result.detail) == ("skipped", ELEMENTARY_OFF_ON_SPARK)
    assert observe.edr_monitor(settings, full_mode=True) is False
    assert f"elementary alerts skipped - {ELEMENTARY_OFF_ON_SPARK}" in capsys.readouterr().out
    assert not (settings.target_dir / "edr").exists(), "edr never ran"


def test_report_is_skipped_in_one_line_while_no_build_has_made_elementarys_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that failed before any dbt build (the Airflow report task runs anyway, ALL_DONE) has no
    Elementary results to report: the step is skipped saying so (edr failed on the missing table). Once the
    table exists, nothing stops the step before edr."""
    settings = settings_for(tmp_path)
    packages = tmp_path / "edr_packages"  # edr's own packages present, so only the warehouse decides
    for name in EDR_PACKAGES:
        (packages / name).mkdir(parents=True)
        (packages / name / "dbt_project.yml").write_text(f"name: {name}\n")
    monkeypatch.setenv("SHOP_EDR_PACKAGES_DIR", str(packages))
    run = PipelineRun(settings, Mode("full"), "edr-2", RunOptions())
    assert run.step("elementary report", run.report).detail == "the warehouse does not exist yet"
    settings.warehouse.parent.mkdir(parents=True)
    with duckdb.connect(str(settings.warehouse)) as conn:
        conn.execute("create schema main_staging; create table main_staging.stg_shop__orders (order_id integer)")
    result = run.step("elementary report", run.report)
    assert result.status == "skipped" and "\n" not in result.detail
    assert result.detail.startswith("no Elementary results in the warehouse yet"), result.detail
    with duckdb.connect(str(settings.warehouse)) as conn:
        conn.execute("create schema main_elementary; create table main_elementary.elementary_test_results (id text)")
    assert elementary_not_built(settings) is None


def test_build_and_freshness_run_in_one_dbt_process_each_step_on_its_own(tmp_path: Path) -> None:
    """A failed build still runs freshness; each step keeps its own status, and freshness's comes from
    dbt (a stale source is an error in sources.json), both from one dbt process that parsed once."""
    settings = settings_for(tmp_path)
    Simulator(settings.sources_root, SimConfig(scale=20)).advance(1)
    mode = detect(settings.project_root)
    with demo_events_url(settings) as url:
        first = PipelineRun(settings, mode, "one-1", RunOptions(quiet=True, events_url=url)).execute()
    assert {r.step: r.status for r in first}["source freshness"] == "ok"
    with duckdb.connect(str(settings.warehouse)) as conn:
        # an event type not in the catalog (the load would reject it): the build's relationships test fails
        conn.execute(
            "insert into raw_events.events by name select * replace ('bad-1' as event_id, 'no_such_type' as "
            "event_type, now() as _extracted_at) from raw_events.events limit 1"
        )
        conn.execute("update raw_shop.orders set _extracted_at = _extracted_at - interval 3 day")  # stale
    log = settings.log_dir / "dbt.log"
    log.unlink()
    run = PipelineRun(settings, mode, "one-2", RunOptions(quiet=True))
    run.begin()
    run.dbt_steps()
    run.record()
    steps = {r.step: r for r in run.results}
    assert steps["dbt build"].status == "failed" and steps["source freshness"].status == "failed"
    assert steps["dbt build"].detail == "`dbt build --quiet` exited 1"
    assert steps["source freshness"].detail == "`dbt source freshness --quiet` exited 1"
    assert "FAILED at dbt build, source freshness" in run.summary()
    recorded = wh(settings, "select step, status from el_meta.pipeline_runs where run_id = 'one-2'")
    assert dict(recorded) == {"run": "failed", "dbt build": "failed", "source freshness": "failed"}
    build = json.loads((settings.target_dir / "run_results.json").read_text())["results"]
    failed = [r["unique_id"] for r in build if r["status"] == "fail"]
    assert len(failed) == 1 and "relationships_stg_events__events_event_type" in failed[0]
    sources = json.loads((settings.target_dir / "sources.json").read_text())["results"]
    status = {r["unique_id"].split(".")[-1]: r["status"] for r in sources if ".shop." in r["unique_id"]}
    assert status["orders"] == "error" and status["customers"] == "pass"
    text = log.read_text()  # dbt's three invocations (parse, build, freshness); the project parsed once
    assert text.count("Running with dbt=") == 3 and text.count("Partial parsing enabled:") == 1


def test_the_shared_parse_prints_no_banner_of_its_own_but_its_errors(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Without --quiet, the one dbt process of two commands shows one "Running with dbt=" block per command,
    as one process per command did, none more for the shared parse (dbt.log keeps all three); an error of
    the parse still reaches the terminal, before each command's own."""
    settings = settings_for(tmp_path)
    runner = DbtRunner(settings, detect(settings.project_root))
    listed = ["ls", "--select", "stg_shop__orders"]
    for target, exit_code in (("dev", 0), ("nope", 2)):
        batch = runner.batch([listed, listed], extra_env={"DBT_TARGET": target})
        try:
            results = [batch.next_result(), batch.next_result()]
        finally:
            batch.close()
        assert [r.exit_code for r in results] == [exit_code, exit_code], results
        out = capfd.readouterr().out
        assert out.count("Running with dbt=") == 2, out[-3000:]
        if exit_code:  # the parse's error, then each command's
            assert out.count("The profile 'shop' does not have a target named 'nope'") == 3, out[-3000:]
        else:
            assert out.count("shop.staging.shop.stg_shop__orders\n") == 2, out[-3000:]
    assert (settings.log_dir / "dbt.log").read_text().count("Running with dbt=") == 6
    # a log level the user set applies to the shared parse too: its banner shows again
    batch = runner.batch([listed, listed], extra_env={"DBT_LOG_LEVEL": "info"})
    try:
        assert [batch.next_result().exit_code, batch.next_result().exit_code] == [0, 0]
    finally:
        batch.close()
    assert capfd.readouterr().out.count("Running with dbt=") == 3
