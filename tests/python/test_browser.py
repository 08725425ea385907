"""Headless Chromium renders the generated dbt docs site (and the Elementary report in full mode)."""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

import pytest

from el.dbt import DbtRunner
from el.mode import detect
from el.pipeline import PipelineRun, RunOptions, report_path
from el.settings import Settings
from shopsim import SimConfig, Simulator
from tests.python.el_helpers import chromium, load_sources, settings_for

pytestmark = pytest.mark.slow


def render(page: Path, fragment: str = "") -> str:
    """The DOM after the page's JavaScript ran, as headless Chromium sees it, without script bodies
    (the static docs page embeds the manifest as JSON: text found there proves nothing rendered)."""
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [
                chromium(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=15000",
                "--dump-dom",
                page.as_uri() + fragment,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    return re.sub(r"<(script|style)[^>]*>.*?</\1>", "", done.stdout, flags=re.DOTALL)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = settings_for(tmp_path_factory.mktemp("docs"))
    Simulator(settings.sources_root, SimConfig(scale=20)).advance(1)
    load_sources(settings)
    runner = DbtRunner(settings, detect(settings.project_root))
    for args in (["build", "--quiet"], ["docs", "generate", "--static", "--quiet"]):
        done = runner.run(args, capture=True)
        assert done.returncode == 0, done.stdout[-2000:]
    return settings


@pytest.fixture(scope="module")
def docs_site(built: Settings) -> Path:
    return built.target_dir / "static_index.html"


def test_dbt_docs_site_renders_models_and_descriptions(docs_site: Path) -> None:
    dom = render(docs_site, "#!/model/model.shop.fct_daily_revenue")
    assert "ng-scope" in dom, "the Angular docs app did not start"
    # the model page: its description and its contract's columns with their descriptions
    assert "Orders and revenue per day" in dom
    for column in ("revenue_date", "net_revenue", "average_order_value"):
        assert column in dom, f"column {column} not rendered"
    assert "orders that are neither cancelled nor deleted" in dom
    overview = render(docs_site)
    assert "Sources" in overview and "Exposures" in overview


def test_elementary_report_renders_where_full_mode_ran(built: Settings) -> None:
    mode = detect(built.project_root)
    if not mode.full:
        pytest.skip("core mode: the Elementary report is only built in full mode (dbt packages not installed)")
    PipelineRun(built, mode, "browser-test", RunOptions()).report()
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", render(report_path(built))))
    assert "Test results breakdown" in text and "Tables health" in text
    tests = re.search(r"Test results breakdown (\d+) Tests", text)
    assert tests and int(tests.group(1)) > 50, "the report must show this project's test results"
