"""The smallest honest monitor (notebook 01 shows it): a real orchestration on the real local scheduler."""

from __future__ import annotations

import json
import time
from collections import Counter

from monitoring.client.monitors import MonitorClient
from monitoring.core import minimal
from monitoring.core.minimal import minimal_check, minimal_monitor
from monitoring.notebook.source import PACKAGE_ROOT, lines_of, production_tour, source_of


def run_minimal(monitors: MonitorClient, **job: object) -> tuple[dict, list[dict], Counter[str]]:
    """Schedule ``minimal_monitor``; its output, the custom statuses seen, its history counted by kind."""
    instance_id = monitors.client.schedule_new_orchestration(
        minimal_monitor, input={"job_id": "job-m", **job}
    )
    statuses: list[dict] = []
    deadline = time.monotonic() + 120  # only guards against a hang
    while True:
        state = monitors.client.get_orchestration_state(instance_id)
        if state is not None and state.serialized_custom_status:
            status = json.loads(state.serialized_custom_status)
            if not statuses or statuses[-1] != status:
                statuses.append(status)
        if state is not None and state.runtime_status.name not in ("PENDING", "RUNNING"):
            break
        assert time.monotonic() < deadline, "minimal_monitor did not finish"
        time.sleep(0.02)
    assert state.runtime_status.name == "COMPLETED", state.failure_details
    history = Counter(type(event).__name__.removesuffix("Event") for event in monitors.history(instance_id))
    return json.loads(state.serialized_output), statuses, history


def test_it_sees_the_job_finish(monitors: MonitorClient) -> None:
    output, statuses, history = run_minimal(
        monitors, polling_interval_seconds=1, timeout_seconds=10, job_duration_seconds=2.5
    )
    checks = output["checks_performed"]
    assert output == {"job_id": "job-m", "final_status": "Completed", "checks_performed": checks}
    # Check k runs no earlier than (k - 1) intervals after the start: the 4th always sees the job done. The
    # first sees it running unless it came 2.5 s late.
    assert 2 <= checks <= 4
    assert statuses[-1] == {"job_id": "job-m", "status": "Completed", "check_count": checks}
    assert all(status["status"] == "Running" for status in statuses[:-1])
    counts = [status["check_count"] for status in statuses]
    assert counts == sorted(counts)
    # One activity per check, one durable timer between two checks, nothing else scheduled.
    assert history["TaskScheduled"] == history["TaskCompleted"] == checks
    assert history["TimerCreated"] == history["TimerFired"] == checks - 1
    # The orchestrator ran once per check result and once per timer (each time replaying from the top).
    assert history["OrchestratorStarted"] == 1 + checks + (checks - 1)


def test_it_gives_up_at_the_timeout_without_a_final_check(monitors: MonitorClient) -> None:
    output, statuses, history = run_minimal(
        monitors, polling_interval_seconds=1, timeout_seconds=3, job_duration_seconds=1000
    )
    # Checks at 0 s, then at least 1 s after the previous one finished: the next past 3 s is not made.
    assert output["final_status"] == "Timeout" and 2 <= output["checks_performed"] <= 4
    assert statuses[-1]["status"] == "Running" and statuses[-1]["check_count"] == output["checks_performed"]
    assert history["TimerCreated"] == output["checks_performed"] - 1


def test_the_minimal_monitor_is_small_and_keeps_the_orchestrator_rules() -> None:
    shown = source_of(minimal_check, minimal_monitor)
    code = [line for line in shown.text.splitlines() if line.strip() and not line.strip().startswith('"""')]
    assert 15 <= len(code) <= 30, len(code)  # about twenty lines a person reads in a minute
    assert shown.path == "monitoring/core/minimal.py" and shown.where.startswith("monitoring/core/minimal.py")
    orchestrator = source_of(minimal_monitor).text
    assert "datetime.now" not in orchestrator and "time.sleep" not in orchestrator
    assert "ctx.create_timer" in orchestrator and "ctx.current_utc_datetime" in orchestrator
    assert lines_of(minimal_monitor, "ctx.create_timer") > lines_of(minimal_monitor, "set_custom_status")
    assert minimal.__doc__ and "notebook 01" in minimal.__doc__


def test_the_tour_of_the_production_orchestrator_points_at_real_lines() -> None:
    tour = production_tour()
    assert len(tour) == 6
    for stop in tour:
        line = (PACKAGE_ROOT / stop.path).read_text().splitlines()[stop.line - 1]
        assert line.strip() == stop.code and stop.code
    assert "`monitoring/core/orchestration.py:" in tour._repr_markdown_()
