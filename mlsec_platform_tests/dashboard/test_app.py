"""The dashboard in a real browser: `mlsec dashboard --viewer ...` serving Streamlit against the
real broker on the session's curated data, driven in headless Chromium (the system's package;
Playwright only drives it, it downloads no browser).

Three viewers side by side: Brazil-wide, Sao Paulo's team (row scope: only SP) and support (no
grant on the KPI tables: refusals, no traceback).
Each chart's read is a broker audit event under the viewer's own subject.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from broker_api.server import BackgroundBroker
from mlsec_platform.dashboard.data import READS
from mlsec_platform.ops.dashboard import VIEWERS
from mlsec_platform.ops.services import service_states
from mlsec_platform.stack.ports import PortAllocator
from mlsec_platform_tests.helpers import audit_events, audit_head

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None, reason="no Chromium on this machine (Debian: apt-get install chromium)"
    ),
    # The first test's setup curates the session's data set when run alone (about 10 min on
    # a busy 2-core machine), then serves and reads a dashboard per viewer (about 2 min each).
    pytest.mark.timeout(1800),
]
REPO = Path(__file__).resolve().parents[2]
#: Charts on a page the broker answered: sales by month, state and category; delivery delay and
#: late rate by month; review score by month.
CHARTS = 6
#: How long Streamlit may take to start and the page to draw every chart (s).
START_TIMEOUT = 90


@dataclass
class Observed:
    """What a viewer's page showed, the broker's audit events of its reads, and how its
    `mlsec dashboard` process showed in `mlsec status` and ended on SIGTERM."""

    charts: int
    drawn: int
    states: list[str]
    revenue: float
    captions: list[str]
    errors: list[str]
    tracebacks: int
    events: list[dict]
    listed: bool
    streamlit_children: int
    exit_code: int
    children_left: int
    status_up_after: bool


@pytest.fixture(scope="module")
def broker(settings, curated):
    with BackgroundBroker(settings, PortAllocator().take()) as running:
        yield running


def _wait_for_port(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        assert process.poll() is None, f"`mlsec dashboard` ended with {process.returncode}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"the dashboard did not listen on {port} in {START_TIMEOUT} s")


#: The page is done when every chart is there, or every section shows a refusal, or a traceback.
PAGE_DONE = f"""() => {{
    const n = (selector) => document.querySelectorAll(selector).length;
    return n("[data-testid='stVegaLiteChart']") >= {CHARTS}
        || n("[data-testid='stAlert']") >= {len(READS)}
        || n("[data-testid='stException']") > 0;
}}"""
#: Vega draws each chart as a canvas (or SVG) once it has its data.
CHARTS_DRAWN = """() => [...document.querySelectorAll("[data-testid='stVegaLiteChart']")]
    .every((chart) => chart.querySelector("canvas, svg"))"""


STATE_ROWS = "[data-testid='stTable'] tbody tr th"


def _read_page(url: str) -> dict:
    from playwright.sync_api import Error, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page()
            page.goto(url)
            try:
                page.wait_for_function(PAGE_DONE, timeout=START_TIMEOUT * 1000)
                page.wait_for_function(CHARTS_DRAWN, timeout=START_TIMEOUT * 1000)
            except Error as exc:
                raise AssertionError(
                    f"{exc.message}; the page said:\n{page.inner_text('body')}"
                ) from exc
            # The state table may land after the charts; a refused viewer has none.
            with contextlib.suppress(Error):
                page.wait_for_selector(STATE_ROWS, timeout=10_000)
            table = page.locator(STATE_ROWS)
            metric = page.locator("[data-testid='stMetricValue']")
            return {
                "charts": page.locator("[data-testid='stVegaLiteChart']").count(),
                "drawn": page.locator("[data-testid='stVegaLiteChart'] :is(canvas, svg)").count(),
                "states": [s.strip() for s in table.all_inner_texts()],
                "revenue": float(metric.inner_text().replace(",", "")) if metric.count() else 0.0,
                "captions": page.locator("[data-testid='stCaptionContainer']").all_inner_texts(),
                "errors": page.locator("[data-testid='stAlert']").all_inner_texts(),
                "tracebacks": page.locator("[data-testid='stException']").count(),
            }
        finally:
            browser.close()


def _serve(viewer: str, broker_url: str) -> tuple[subprocess.Popen, str]:
    port = PortAllocator().take()
    command = [sys.executable, "-m", "mlsec_platform.cli", "dashboard", "--viewer", viewer]
    command += ["--port", str(port), "--broker", broker_url]
    process = subprocess.Popen(command, cwd=REPO, env=os.environ.copy())
    _wait_for_port(port, process)
    return process, f"http://127.0.0.1:{port}"


def _stop(process: subprocess.Popen, settings) -> dict:
    """SIGTERM the command as a service manager would; what it left behind."""
    children = psutil.Process(process.pid).children(recursive=True)
    process.send_signal(signal.SIGTERM)
    exit_code = process.wait(30)
    _, alive = psutil.wait_procs(children, timeout=15)
    return {
        "streamlit_children": len(children),
        "exit_code": exit_code,
        "children_left": len(alive),
        "status_up_after": _status(settings).up,
    }


def _status(settings):
    return {s.name: s for s in service_states(settings)}["dashboard"]


@pytest.fixture(scope="module")
def observed(broker, settings, superuser_dsn):
    """Each viewer's page, one dashboard at a time, each stopped by SIGTERM once read."""
    pages: dict[str, Observed] = {}
    for viewer in VIEWERS:
        head = audit_head(superuser_dsn)
        process, url = _serve(viewer, broker.url)
        try:
            page = _read_page(url)
            status = _status(settings)
            listed = status.up and status.pid == process.pid
            stopped = _stop(process, settings)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        subject = VIEWERS[viewer].subject
        events = [
            e
            for e in audit_events(superuser_dsn, "broker.request", head)
            if e.get("subject") == subject
        ]
        pages[viewer] = Observed(**page, **stopped, events=events, listed=listed)
    return pages


def test_charts_render_with_data(observed):
    page = observed["analyst"]
    assert page.charts == CHARTS and page.drawn >= CHARTS
    assert page.revenue > 0
    assert len(page.states) > 5 and "SP" in page.states
    assert any("gold/kpi_sales_monthly v" in c for c in page.captions)
    assert page.errors == [] and page.tracebacks == 0


def test_another_project_sees_only_its_rows(observed):
    brazil, sao_paulo = observed["analyst"], observed["analyst-sp"]
    assert sao_paulo.charts == CHARTS
    assert sao_paulo.states == ["SP"]
    assert 0 < sao_paulo.revenue < brazil.revenue


def test_a_refused_viewer_reads_the_reason_not_a_traceback(observed):
    support = observed["support"]
    assert support.charts == 0 and support.tracebacks == 0
    assert len(support.errors) == len(READS)
    assert all(e.startswith("The broker refused (403)") for e in support.errors), support.errors


def test_each_chart_read_is_audited_under_the_viewer(observed):
    datasets = {read.dataset for read in READS.values()}
    for viewer, page in observed.items():
        seen = {e.get("dataset") for e in page.events}
        assert datasets <= seen, (viewer, seen)
        outcomes = {e["outcome"] for e in page.events}
        assert outcomes == ({"denied"} if viewer == "support" else {"allowed"}), (viewer, outcomes)


def test_status_lists_it_and_sigterm_stops_it_with_streamlit(observed):
    for viewer, page in observed.items():
        assert page.listed, viewer
        assert page.streamlit_children >= 1, viewer
        assert page.exit_code == 128 + signal.SIGTERM, viewer
        assert page.children_left == 0 and not page.status_up_after, viewer
