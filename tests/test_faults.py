"""Faults with real processes: a worker process killed (SIGKILL) or stopped (SIGTERM) with hundreds of
monitors in flight, a scheduler process killed and restarted on its state file.

Every monitor watches a job that never finishes, so its exact check count is its schedule's; the deadline
grace is long so that only a lost or doubled check could change a count, not a slow machine. The tests wait
on observed state, with overall limits that only guard against hangs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from test_durability import wait_for_the_clock
from test_scheduler import free_port

from monitoring.client.monitors import MonitorClient
from monitoring.client.snapshots import MonitorSnapshot
from monitoring.core.models import MonitorRequest
from monitoring.core.payloads import from_iso
from monitoring.core.schedule import LATE_TOLERANCE_SECONDS
from monitoring.runtime.connection import local_connection
from monitoring.scheduler import process
from monitoring.worker import start_worker, stop_worker

NEVER = 10**6
MONITORS = 300


def request(interval: float, timeout: float) -> MonitorRequest:
    return MonitorRequest(
        job_id=f"job-{uuid.uuid4().hex[:8]}",
        polling_interval_seconds=interval,
        timeout_seconds=timeout,
        job_duration_seconds=NEVER,
        deadline_grace_seconds=600,
    )


class Stack:
    """A scheduler process on a free port and worker processes on it, each with its own log file."""

    def __init__(self, logs: Path) -> None:
        self.port = free_port()
        self.address = f"http://127.0.0.1:{self.port}"
        self.logs = logs
        self.workers: list[subprocess.Popen[bytes]] = []
        self.scheduler_pid = process.spawn_scheduler_process(self.port)

    def restart_scheduler(self) -> None:
        """``kill -9`` the scheduler process, then start a new one on the same port (and state file)."""
        os.kill(self.scheduler_pid, signal.SIGKILL)
        self.scheduler_pid = process.spawn_scheduler_process(self.port)

    def start_worker(self) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"worker-{len(self.workers) + 1}.log", "wb")  # noqa: SIM115 (closed by the child)
        worker = subprocess.Popen(
            [sys.executable, "-m", "monitoring", "worker"],
            env={**os.environ, "ENDPOINT": self.address},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.workers.append(worker)
        return worker

    def worker_log(self, number: int) -> str:
        return (self.logs / f"worker-{number}.log").read_text(errors="replace")

    def stop(self) -> None:
        process.stop_processes(self.workers)
        process.stop_scheduler_process(self.port)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    running = Stack(tmp_path)
    try:
        yield running
    finally:
        running.stop()


def start_monitors(monitors: MonitorClient, plan: MonitorRequest, count: int) -> str:
    """Start ``count`` monitors of ``plan`` with one id prefix; returns the prefix."""
    prefix = f"fault-{uuid.uuid4().hex[:8]}-"
    for n in range(count):
        monitors.start(plan, instance_id=f"{prefix}{n:04d}")
    return prefix


def wait_until(
    monitors: MonitorClient, prefix: str, done: Callable[[list[MonitorSnapshot]], bool], limit: float
) -> list[MonitorSnapshot]:
    deadline = time.monotonic() + limit
    while True:
        seen = monitors.snapshots(prefix)
        if done(seen):
            return seen
        assert time.monotonic() < deadline, f"not reached within {limit} s: {outcomes(seen).most_common(5)}"
        time.sleep(0.25)


def checks(snapshot: MonitorSnapshot) -> int:
    return snapshot.custom_status.check_count if snapshot.custom_status else 0


def outcomes(seen: list[MonitorSnapshot]) -> Counter[tuple[str, int]]:
    return Counter(
        (s.result.final_status, s.result.checks_performed) if s.result else (s.runtime_status, checks(s))
        for s in seen
    )


@pytest.mark.heavy
@pytest.mark.parametrize("stop_signal", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_a_worker_process_killed_mid_run_loses_no_check_and_doubles_none(
    stack: Stack, stop_signal: signal.Signals
) -> None:
    plan = request(interval=0.5, timeout=4.0)
    planned = plan.schedule().planned_check_count  # 9
    first = stack.start_worker()
    with MonitorClient(local_connection(stack.address)) as monitors:
        prefix = start_monitors(monitors, plan, MONITORS)
        in_flight = wait_until(
            monitors, prefix, lambda s: len(s) == MONITORS and min(map(checks, s)) >= 2, 300
        )
        assert not any(s.is_terminal for s in in_flight), "the worker goes while every monitor is mid-run"
        first.send_signal(stop_signal)
        stack.start_worker()
        first.wait(60)
        final = wait_until(monitors, prefix, lambda s: all(x.is_terminal for x in s), 600)
    assert outcomes(final) == Counter({("Timeout", planned): MONITORS})
    log = stack.worker_log(1)
    assert "Traceback" not in log, "the stopped worker's rejected results are single lines"


@pytest.mark.heavy
def test_a_scheduler_killed_mid_run_and_restarted_on_its_state_continues_every_monitor_exactly(
    stack: Stack,
) -> None:
    plan = request(interval=0.5, timeout=6.0)
    planned = plan.schedule().planned_check_count  # 13
    stack.start_worker()
    with MonitorClient(local_connection(stack.address)) as monitors:
        prefix = start_monitors(monitors, plan, 200)
        in_flight = wait_until(monitors, prefix, lambda s: len(s) == 200 and min(map(checks, s)) >= 2, 300)
        assert not any(s.is_terminal for s in in_flight)
        stack.restart_scheduler()
        # The worker and this client reconnect by themselves; the checks that came due meanwhile catch up.
        final = wait_until(monitors, prefix, lambda s: all(x.is_terminal for x in s), 600)
    assert outcomes(final) == Counter({("Timeout", planned): 200})
    log = stack.worker_log(1)
    assert f"scheduler unavailable at {stack.address}, retrying" in log
    assert f"scheduler reachable again at {stack.address}" in log
    assert "Traceback" not in log


def test_an_outage_past_deadline_plus_grace_counts_only_checks_that_ran_and_names_the_outage(
    monitors: MonitorClient,
) -> None:
    plan = replace(request(interval=0.5, timeout=2.0), deadline_grace_seconds=0.5)
    instance_id = monitors.start(plan)
    monitors.wait_for(instance_id, lambda s: checks(s) >= 2, timeout=60)
    assert stop_worker()
    try:
        stopped = monitors.snapshot(instance_id)
        assert stopped.custom_status is not None and stopped.custom_status.deadline is not None
        deadline = from_iso(stopped.custom_status.deadline)
        # Past the deadline, its grace and the 2 s the monitor allows a late guard, with no worker.
        wait_for_the_clock(deadline + timedelta(seconds=0.5 + LATE_TOLERANCE_SECONDS + 1))
        done = checks(monitors.snapshot(instance_id))
    finally:
        assert start_worker(monitors.connection)
    final = monitors.follow(instance_id, timeout=60)
    assert final.result is not None and final.result.final_status == "Timeout"
    assert final.result.checks_performed == done < plan.schedule().planned_check_count
    reason = final.result.reason or ""
    assert reason.startswith("no worker for ") and " (none connected, or all busy): check" in reason
    assert f"could not run before the deadline ({stopped.custom_status.deadline}) plus 0.5 s" in reason
