"""Shared fixtures: a real local scheduler on a free loopback port, a real worker, a real client."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import netns
import parallel
import pytest
from gates import GatedJob, gated_job
from netns import PrivateNetwork, private_network_or_skip

from monitoring.client.monitors import MonitorClient
from monitoring.runtime.connection import Connection, local_connection
from monitoring.scheduler.server import LocalScheduler
from monitoring.web.serving import BackgroundServer
from monitoring.worker import create_worker, start_worker, stop_worker

# Every process the tests start inherits this marker, so the last check can find any left behind. Under
# xdist the controller's marker is handed to every worker (pytest_configure_node, pytest_configure).
RUN_MARKER = f"monitoring-tests-{uuid.uuid4().hex}"


def processes_with_marker() -> list[int]:
    """Pids of live processes (other than this one) started by this test run."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if RUN_MARKER.encode() in (proc / "environ").read_bytes():
                stat = (proc / "stat").read_text()
                if not stat.split(") ", 1)[1].startswith("Z"):
                    found.append(int(proc.name))
        except OSError:
            continue
    return found


def processes_left_behind(grace: float = 5.0) -> list[int]:
    """Marked processes still running after ``grace`` seconds (time for the last ones to finish exiting)."""
    deadline = time.monotonic() + grace
    while processes_with_marker() and time.monotonic() < deadline:
        time.sleep(0.1)
    return processes_with_marker()


@pytest.fixture(scope="session")
def scheduler() -> Iterator[LocalScheduler]:
    with LocalScheduler(0) as running:
        yield running


@pytest.fixture(scope="session")
def connection(scheduler: LocalScheduler) -> Connection:
    return local_connection(scheduler.address)


@pytest.fixture(scope="session")
def worker(connection: Connection) -> Iterator[Connection]:
    start_worker(connection)
    yield connection
    stop_worker()


@pytest.fixture(scope="session")
def monitors(worker: Connection) -> Iterator[MonitorClient]:
    with MonitorClient(worker) as client:
        yield client


@contextlib.contextmanager
def running_worker(connection: Connection, worker: Any = None) -> Iterator[MonitorClient]:
    """``worker`` (by default this package's) on ``connection``, started; yields a client of it; stops both
    after."""
    worker = worker or create_worker(connection)
    worker.start()
    try:
        with MonitorClient(connection) as monitors:
            yield monitors
    finally:
        worker.stop()


@pytest.fixture(scope="session")
def api_server(monitors: MonitorClient) -> Iterator[BackgroundServer]:
    """The HTTP API over real HTTP on a free loopback port, against the session's scheduler and worker."""
    from monitoring.web.api import create_app

    with BackgroundServer(create_app(monitors)) as server:
        yield server


@pytest.fixture(scope="session")
def dashboard_server(monitors: MonitorClient) -> Iterator[BackgroundServer]:
    """The dashboard on a free loopback port, reading the session's task hub."""
    from monitoring.web.dashboard import create_dashboard_app

    with BackgroundServer(create_dashboard_app(monitors)) as server:
        yield server


@pytest.fixture(scope="module")
def private_network() -> Iterator[PrivateNetwork]:
    """A network namespace of the module's own: the default ports, free and private (``tests/netns.py``)."""
    network = private_network_or_skip()
    yield network
    network.close()


@pytest.fixture
def gate() -> Iterator[GatedJob]:
    """A job source whose checks answer only when the test releases them (see ``tests/gates.py``)."""
    yield from gated_job()


def new_job_id() -> str:
    return f"job-{uuid.uuid4().hex[:8]}"


# --- a real browser: Debian's Chromium driven by Playwright (no browser download) -------------------------

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    for candidate in ("chromium", "chromium-browser"):
        found = shutil.which(candidate)
        if found:
            return found
    return None


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where browser tests keep screenshots (uploaded/inspected after a run)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def browser_page() -> Iterator[Any]:
    """A Playwright page in headless Chromium. Skipped locally without Chromium; in CI it must exist."""
    executable = chromium_path()
    if executable is None:
        message = "Chromium is not installed (apt-get install chromium); .ci/run installs it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            args=CHROMIUM_FLAGS,
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            yield page
        finally:
            browser.close()


# --- in parallel: pytest-xdist (tests/parallel.py) ----------------------------------------------------------


_ISOLATION_KEYS = ("MONITORING_STATE_DIR", "MONITORING_TEST_RUN", "ENDPOINT", "TASKHUB")
_before_isolation: dict[str, str | None] = {}
_state_dir: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    """In every process that runs tests (not an xdist controller), before the first test or notebook cell:
    scheduler records in a temporary folder, every child process marked, no ENDPOINT or TASKHUB, and the
    notebooks' kernels (nbval) in a private network (``tests/netns.py``)."""
    global RUN_MARKER, _state_dir
    if parallel.is_worker(config):
        RUN_MARKER = config.workerinput[parallel.MARKER_KEY]  # type: ignore[attr-defined]
    if parallel.is_controller(config):
        return
    _before_isolation.update({key: os.environ.get(key) for key in _ISOLATION_KEYS})
    _state_dir = tempfile.mkdtemp(prefix="monitoring-tests-state-")
    os.environ["MONITORING_STATE_DIR"] = _state_dir
    os.environ["MONITORING_TEST_RUN"] = RUN_MARKER
    for key in ("ENDPOINT", "TASKHUB"):
        os.environ.pop(key, None)
    if config.pluginmanager.has_plugin("nbval"):
        netns.run_nbval_kernels_in_private_networks()


def pytest_unconfigure(config: pytest.Config) -> None:
    if _state_dir is None:
        return
    shutil.rmtree(_state_dir, ignore_errors=True)
    for key, value in _before_isolation.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    node.workerinput[parallel.MARKER_KEY] = RUN_MARKER


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The longest files first; the left-behind-process check after everything else, notebooks included.

    An xdist worker leaves that check out: the controller runs it once every worker has ended.
    """
    parallel.give_each_its_own_nodeid(items)
    items.sort(key=lambda item: parallel.rank(item.nodeid))
    if parallel.is_worker(config):
        last = [item for item in items if item.nodeid == parallel.LEFT_BEHIND_TEST]
        items[:] = [item for item in items if item not in last]
        if last:
            config.hook.pytest_deselected(items=last)


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session: pytest.Session) -> Iterator[object]:
    finished = yield
    if parallel.is_controller(session.config):
        parallel.check_left_behind(session, processes_left_behind)
    return finished


# A skip that CI=true allows: the quick-start test's own nested run of this suite skips that test by design.
SKIPS_ALLOWED_IN_CI = ("already inside a quick-start run",)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under CI=true every test must run: a skip (a missing tool, a taken port) is reported as a failure."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if not os.environ.get("CI") or not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if not reason.removeprefix("Skipped: ").startswith(SKIPS_ALLOWED_IN_CI):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, where every test must run: {reason}"
