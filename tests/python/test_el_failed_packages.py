"""A package that failed before the load step never blocks later runs: set aside, then re-extracted."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from el.load import Loader, failed_packages_dir
from el.sources.file_drops import spend_resource
from shopsim import SimConfig, Simulator
from tests.python.el_helpers import load_sources, settings_for, wh


def test_package_that_cannot_be_normalized_is_set_aside_and_the_run_loads_everything_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SHOP_FILES_DIR", raising=False)
    settings = settings_for(tmp_path)
    sim = Simulator(settings.sources_root, SimConfig(scale=5))
    sim.advance(2)
    lines = sum(len(p.read_text().splitlines()) - 1 for p in sim.paths.marketing_dir.glob("spend_*.csv"))
    pipeline = Loader(settings, "extract-only").pipeline("marketing_files")
    pipeline.extract(spend_resource(sim.paths.marketing_dir.resolve().as_uri(), Loader(settings, "x").extracted_at))
    (load_id,) = pipeline.list_extracted_load_packages()
    working = Path(pipeline.working_dir)
    jobs = [p for p in working.glob(f"normalize/extracted/{load_id}/new_jobs/*") if p.name.startswith("spend.")]
    assert jobs
    for job in jobs:  # bad input: the extracted file cannot be normalized
        job.write_bytes(b"\x00garbage{")
    with pytest.raises(PipelineStepFailed, match="step=normalize"):
        pipeline.normalize()
    # on main this package failed every later run in normalize ("pending package")
    metrics = load_sources(settings, ["marketing_files"])
    assert [m.status for m in metrics] == ["ok"]
    assert (failed_packages_dir(working) / load_id).is_dir(), "kept for inspection"
    # another warehouse in the same folder takes the pipeline folder over (dlt wipes it: no local state of
    # that warehouse): the copy kept for inspection is outside and stays
    other = replace(settings, warehouse=settings.warehouse.with_name("other.duckdb"))
    assert [m.status for m in load_sources(other, ["marketing_files"])] == ["ok"]
    assert (failed_packages_dir(working) / load_id).is_dir(), "still kept after a switch of warehouse"
    assert list(pipeline.list_extracted_load_packages()) == []
    assert wh(settings, "select count(*), count(distinct (_file_name, _file_line)) from raw_marketing.spend") == [
        (lines, lines)
    ]
