"""The suite in parallel (pytest-xdist, ``--dist loadfile``, as ``python3 run.py test`` runs it).

Each test file runs whole in one worker process, in its own order, so module fixtures stay one per module.
The tests and notebooks that use the local scheduler's default port 8080 on this machine's own loopback (a
notebook with nothing set starts it on demand, and notebook 03 kills it on purpose) share one worker, one
after another. The longest files start first, so that none of them starts last. The check that nothing
this run started is left running happens once every worker has ended (:func:`check_left_behind`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

DEFAULT_PORT_GROUP = "default port 8080"
DEFAULT_PORT_USERS = ("notebooks/", "tests/test_notebooks_browser.py", "tests/test_notebook_try_it.py")
# Measured with --durations (longest first); every other file starts after these, in collection order.
LONGEST_FIRST = (
    DEFAULT_PORT_GROUP,
    "tests/test_quickstart.py",
    "tests/test_durability.py",
    "tests/test_faults.py",
    "tests/test_bench.py",
    "tests/test_scheduler.py",
    "tests/test_cli_processes.py",
    "tests/test_cli.py",
    "tests/test_dashboard_browser.py",
    "tests/test_limits.py",
)
LEFT_BEHIND_TEST = "tests/test_zz_no_leftovers.py::test_no_process_left_behind"
MARKER_KEY = "monitoring_run_marker"


def scope(nodeid: str) -> str:
    """The unit one worker runs whole: the test's file, or the default-port group."""
    path = nodeid.split("::", 1)[0]
    return DEFAULT_PORT_GROUP if path.startswith(DEFAULT_PORT_USERS) else path


def rank(nodeid: str) -> int:
    """Sort key: the longest files first, the left-behind check last, the rest in between."""
    if nodeid == LEFT_BEHIND_TEST:
        return len(LONGEST_FIRST) + 1
    unit = scope(nodeid)
    return LONGEST_FIRST.index(unit) if unit in LONGEST_FIRST else len(LONGEST_FIRST)


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
    return config.pluginmanager.has_plugin("dsession")


def make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadfile`` with the default-port group as one unit, units started in :func:`rank` order."""
    from xdist.scheduler import LoadFileScheduling

    class ByFileLongestFirst(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return scope(nodeid)

    config.option.loadscopereorder = False  # keep the collection's order (see rank), not the largest first
    return ByFileLongestFirst(config, log)


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
