"""OpenLineage run events (START, then COMPLETE/FAIL) for the EL loads and the dbt build of a run.

Loads: job `load.<source>.<table>`, input the source table (namespace `shop-source://<source>`), output
the raw table with its row count and bytes (outputStatistics). dbt: one job per model, seed and snapshot
of the build (`dbt.<name>`, built from manifest.json + run_results.json), inputs its parents (sources,
models, seeds), output its relation; one job per exposure (`exposure.<name>`) reading its models and
writing the dataset `exposure/<name>`. Warehouse datasets are named `<schema>.<table>` in the
warehouse's namespace, so a raw table written by a load is the very dataset a dbt source reads.

Every event carries a ParentRunFacet naming the pipeline run (job `shop_elt`, run id derived from the
el run id) and a `shop_run_id` tag: one run id across EL and dbt. Events go to a file (JSON lines,
SHOP_LINEAGE_FILE, default `lineage/openlineage.jsonl` next to the warehouse) or, when
SHOP_OPENLINEAGE_URL is set, to that HTTP endpoint (`/api/v1/lineage`). Emitting never fails the run.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

from el.metrics import LoadMetric
from el.settings import Settings

FILE_ENV = "SHOP_LINEAGE_FILE"
URL_ENV = "SHOP_OPENLINEAGE_URL"
JOB_NAMESPACE = "shop_elt"
PARENT_JOB = "shop_elt"
PRODUCER = "https://github.com/shop-elt/shop-elt/el"
RUN_NAMESPACE = uuid.UUID("6f1b6d3c-3a55-4c44-9a53-6c1f4b1f2e61")
DBT_BUILT = ("model", "seed", "snapshot")


def _say(text: str) -> None:
    print(f"el lineage: {text}", file=sys.stderr, flush=True)


def run_uuid(run_id: str, job: str = PARENT_JOB) -> str:
    """OpenLineage run ids are UUIDs: derived from the el run id (and the job), so reproducible."""
    return str(uuid.uuid5(RUN_NAMESPACE, f"{run_id}/{job}"))


def lineage_file(settings: Settings) -> Path:
    override = os.environ.get(FILE_ENV)
    return Path(override) if override else settings.warehouse.parent / "lineage" / "openlineage.jsonl"


def warehouse_namespace(settings: Settings) -> str:
    if settings.postgres:
        pg = settings.postgres
        return f"postgres://{pg.host}:{pg.port}/{pg.dbname}"
    if settings.lake:  # spark: raw is the lake's folders (<dataset>.<table> names <lake>/<dataset>/<table>/)
        return f"file://{settings.lake}"
    return f"duckdb://{settings.warehouse}"


def source_namespace(source: str) -> str:
    return f"shop-source://{source}"


class Emitter:
    """Builds and emits the events of one el run id."""

    def __init__(self, settings: Settings, run_id: str) -> None:
        from openlineage.client import OpenLineageClient
        from openlineage.client.transport.file import FileConfig, FileTransport
        from openlineage.client.transport.http import HttpConfig, HttpTransport

        self.settings = settings
        self.run_id = run_id
        url = os.environ.get(URL_ENV)
        if url:
            transport: Any = HttpTransport(HttpConfig(url=url))
            self.where = url
        else:
            path = lineage_file(settings)
            path.parent.mkdir(parents=True, exist_ok=True)
            transport = FileTransport(FileConfig(log_file_path=str(path), append=True))
            self.where = str(path)
        self.client = OpenLineageClient(transport=transport)

    def _run_facets(self, error: str | None = None) -> dict[str, Any]:
        from openlineage.client.facet_v2 import error_message_run, parent_run, tags_run

        facets: dict[str, Any] = {
            "parent": parent_run.ParentRunFacet(
                run=parent_run.Run(runId=run_uuid(self.run_id)),
                job=parent_run.Job(namespace=JOB_NAMESPACE, name=PARENT_JOB),
            ),
            "tags": tags_run.TagsRunFacet(
                tags=[tags_run.TagsRunFacetFields(key="shop_run_id", value=self.run_id, source="el")]
            ),
        }
        if error:
            facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=error[:4000], programmingLanguage="python"
            )
        return facets

    def job(
        self,
        name: str,
        started: dt.datetime,
        finished: dt.datetime,
        outcome: str,  # COMPLETE, FAIL or ABORT
        inputs: list[Any],
        outputs: list[Any],
        error: str | None = None,
    ) -> None:
        """A START and the closing event of one job run."""
        from openlineage.client.event_v2 import Job, Run, RunEvent, RunState

        run_id = run_uuid(self.run_id, name)
        for state, when, facets in (
            (RunState.START, started, self._run_facets()),
            (RunState[outcome], finished, self._run_facets(error)),
        ):
            self.client.emit(
                RunEvent(
                    eventType=state,
                    eventTime=when.isoformat(),
                    run=Run(runId=run_id, facets=facets),
                    job=Job(namespace=JOB_NAMESPACE, name=name),
                    producer=PRODUCER,
                    inputs=inputs,
                    outputs=outputs,
                )
            )

    def loads(self, metrics: list[LoadMetric]) -> int:
        """One job per loaded table: source table -> raw table, with rows and bytes."""
        from openlineage.client.event_v2 import InputDataset, OutputDataset
        from openlineage.client.facet_v2 import output_statistics_output_dataset as stats

        from el.load import DATASETS

        for m in metrics:
            raw = OutputDataset(
                namespace=warehouse_namespace(self.settings),
                name=f"{DATASETS.get(m.pipeline_name, m.pipeline_name)}.{m.table_name}",
                outputFacets={
                    "outputStatistics": stats.OutputStatisticsOutputDatasetFacet(rowCount=m.rows_loaded, size=m.bytes)
                },
            )
            self.job(
                f"load.{m.pipeline_name}.{m.table_name}",
                m.started_at,
                m.finished_at,
                "COMPLETE" if m.status == "ok" else "FAIL",
                [InputDataset(namespace=source_namespace(m.pipeline_name), name=m.table_name)],
                [raw],
                m.error,
            )
        return len(metrics)

    def failed_step(self, step: str, started: dt.datetime, finished: dt.datetime, error: str) -> None:
        self.job(step.replace(" ", "_"), started, finished, "FAIL", [], [], error)

    def dbt_build(self, target_dir: Path) -> int:
        """Events of the dbt nodes in run_results.json, and of the exposures whose models were built."""
        from openlineage.client.event_v2 import InputDataset, OutputDataset

        manifest = json.loads((target_dir / "manifest.json").read_text())
        results = json.loads((target_dir / "run_results.json").read_text())["results"]
        nodes = {**manifest["nodes"], **manifest["sources"]}
        namespace = warehouse_namespace(self.settings)

        def dataset_name(unique_id: str) -> str | None:
            node = nodes.get(unique_id)
            if node is None or node["resource_type"] not in (*DBT_BUILT, "source"):
                return None
            table = node.get("identifier") if node["resource_type"] == "source" else node.get("alias")
            return f"{node['schema']}.{table or node['name']}"

        def inputs(depends_on: list[str]) -> list[Any]:
            names = sorted({n for n in map(dataset_name, depends_on) if n})
            return [InputDataset(namespace=namespace, name=n) for n in names]

        emitted, built = 0, set()
        for result in results:
            unique_id = result["unique_id"]
            node = nodes.get(unique_id)
            if node is None or node["resource_type"] not in DBT_BUILT:
                continue
            timing = {t["name"]: t for t in result.get("timing") or []}
            execute = timing.get("execute") or timing.get("compile") or {}
            finished = _time(execute.get("completed_at"))
            started = _time(execute.get("started_at"), finished)
            status = str(result["status"])
            outcome = {"success": "COMPLETE", "error": "FAIL"}.get(status, "ABORT")
            if outcome == "COMPLETE":
                built.add(unique_id)
            output = OutputDataset(namespace=namespace, name=dataset_name(unique_id) or node["name"])
            error = result.get("message") if outcome == "FAIL" else None
            parents = inputs(node.get("depends_on", {}).get("nodes", []))
            self.job(f"dbt.{node['name']}", started, finished, outcome, parents, [output], error)
            emitted += 1
        now = dt.datetime.now(dt.UTC)
        for exposure in manifest.get("exposures", {}).values():
            parents = exposure.get("depends_on", {}).get("nodes", [])
            if not parents or not set(parents) <= built:
                continue
            name = exposure["name"]
            output = OutputDataset(namespace="exposure", name=name)
            self.job(f"exposure.{name}", now, now, "COMPLETE", inputs(parents), [output])
            emitted += 1
        return emitted

    def pipeline(self, started: dt.datetime, failed: bool) -> None:
        """The parent run itself (job `shop_elt`, run id run_uuid(el run id))."""
        from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
        from openlineage.client.facet_v2 import tags_run

        tags = {"tags": tags_run.TagsRunFacet(tags=[tags_run.TagsRunFacetFields("shop_run_id", self.run_id, "el")])}
        for state, when in ((RunState.START, started), (RunState.FAIL if failed else RunState.COMPLETE, None)):
            self.client.emit(
                RunEvent(
                    eventType=state,
                    eventTime=(when or dt.datetime.now(dt.UTC)).isoformat(),
                    run=Run(runId=run_uuid(self.run_id), facets=tags),
                    job=Job(namespace=JOB_NAMESPACE, name=PARENT_JOB),
                    producer=PRODUCER,
                )
            )


def _time(text: str | None, default: dt.datetime | None = None) -> dt.datetime:
    if not text:
        return default or dt.datetime.now(dt.UTC)
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def emitter(settings: Settings, run_id: str) -> Emitter | None:
    try:
        return Emitter(settings, run_id)
    except Exception as exc:
        _say(f"warning: lineage not emitted: {exc}")
        return None
