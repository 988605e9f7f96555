"""The suite in parallel: pytest-xdist, ``-n 3 --dist loadfile --no-loadscope-reorder`` (``run.py test``).

Each test file and each notebook runs whole in one worker process, in its own order, so module fixtures stay
one per module. Nothing two workers run can meet on the local scheduler's default port 8080: the tests that
use it run in private network namespaces, and so do the notebooks' kernels (``tests/netns.py``). The
longest files start first, so that none of them starts last. The check that nothing this run started is
left running happens once every worker has ended (:func:`check_left_behind`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

# Measured with --durations (longest first); every other file starts after these, in collection order.
LONGEST_FIRST = (
    "tests/test_notebooks_browser.py",
    "tests/test_quickstart.py",
    "tests/test_oldest_sdk.py",
    "tests/test_durability.py",
    "tests/test_bench.py",
    "notebooks/03_durability_and_control.ipynb",
    "tests/test_faults.py",
    "notebooks/04_scale.ipynb",
    "tests/test_notebook_try_it.py",
    "tests/test_cli_processes.py",
    "tests/test_scheduler.py",
    "notebooks/01_monitoring_pattern.ipynb",
    "notebooks/02_scenarios.ipynb",
    "notebooks/05_monitor_your_own_job.ipynb",
    "notebooks/06_many_jobs_at_once.ipynb",
    "tests/test_cli.py",
    "tests/test_dashboard_browser.py",
)
LEFT_BEHIND_TEST = "tests/test_zz_no_leftovers.py::test_no_process_left_behind"
MARKER_KEY = "monitoring_run_marker"


def scope(nodeid: str) -> str:
    """The unit one worker runs whole: the test's file (a notebook, for its cells)."""
    return nodeid.split("::", 1)[0]


def rank(nodeid: str) -> int:
    """Sort key: the longest files first, the left-behind check last, the rest in between."""
    if nodeid == LEFT_BEHIND_TEST:
        return len(LONGEST_FIRST) + 1
    path = scope(nodeid)
    return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)


def give_each_its_own_nodeid(items: list[pytest.Item]) -> None:
    """Schemathesis gives every API operation's item the test function's node id; xdist hands out work by
    node id, so it would run one operation per test. Each such item gets its own (its name, as shown)."""
    counts = Counter(item.nodeid for item in items)
    for item in items:
        if counts[item.nodeid] > 1:
            item._id = item._id.parse(f"{item.nodeid.rsplit('::', 1)[0]}::{item.name}")  # pytest 9's node id


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def is_controller(config: pytest.Config) -> bool:
    """This process hands tests to xdist workers (and runs none itself)."""
    return not is_worker(config) and config.getoption("dist", "no") != "no"


def check_left_behind(session: pytest.Session, left_behind: Callable[[], list[int]]) -> None:
    """In the controller, after every worker has ended: report the left-behind check as that test's result."""
    pids = left_behind()
    path, name = LEFT_BEHIND_TEST.split("::")
    longrepr = None
    if pids:
        lines = [f"{pid}: {_command_line(pid)}" for pid in pids]
        longrepr = "processes this run started are still running after every worker ended:\n" + "\n".join(
            lines
        )
    report = pytest.TestReport(
        nodeid=LEFT_BEHIND_TEST,
        location=(path, None, name),
        keywords={name: 1},
        outcome="failed" if pids else "passed",
        longrepr=longrepr,
        when="call",
    )
    session.testscollected += 1  # the workers left it out of their collection
    session.config.hook.pytest_runtest_logreport(report=report)


def _command_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "(ended)"
