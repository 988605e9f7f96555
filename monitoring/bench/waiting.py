"""The waiting run (``--waiting N,N,...``): many monitors on one local scheduler, each waiting on a durable
timer most of the time, as monitors of a job that takes hours are.

For each size, in a subprocess of its own (``python -m monitoring.bench waiting N``, its state folder a
fresh temporary one): the scheduler process keeps its task hub in its state file, one worker process
(``python -m monitoring.bench worker``) runs the checks, and this process is the client. It starts the N
monitors as fast as a few threads of one client can (their first checks scheduled to begin once the starts
are done, evenly ``1 / first_checks_per_second`` apart, so the first checks are a steady load and not a
burst); every monitor makes its first check and then waits ``interval`` for its second. Once every monitor
has waited a tenth of its interval (a minute at most) it reads what the scheduler and the worker grew by,
the state file's size, and how late the first checks ran; then it stops the scheduler (SIGTERM), starts it
again on the same file and port, and times how long until a new monitor's first check has run (the worker
reconnecting by itself included).
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from typing import Any

from monitoring.bench.phases import run_bench_process
from monitoring.bench.records import (
    RECORDER,
    free_loopback_port,
    percentile,
    process_cpu_seconds,
    process_memory_mb,
)
from monitoring.bench.stacks import Stack
from monitoring.bench.worker_processes import WorkerProcesses
from monitoring.core.orchestration import ORCHESTRATOR_NAME
from monitoring.runtime.connection import create_client, local_connection
from monitoring.scheduler import process
from monitoring.scheduler.server import DEFAULT_TASKHUB

WAITING_PREFIX = "wait-"
PROBE_PREFIX = "probe-"


@dataclass(frozen=True)
class WaitingSettings:
    monitors: int
    interval: float = 600.0  # between a monitor's checks: the run ends long before the second
    checks: int = 3  # planned per monitor (a handful); only the first runs in the run
    first_checks_per_second: float = 250.0  # how the first checks are spread
    start_threads: int = 8  # client threads calling the scheduler's start at once
    planned_starts_per_second: float = 1000.0  # the first checks begin after N / this (and 1 s) have passed


@dataclass(frozen=True)
class WaitingResult:
    """One size of the waiting run (memory per monitor: growth from the idle process, over N)."""

    monitors: int
    interval_seconds: float
    start_seconds: float  # in the client's start calls, all threads together from first to last
    starts_per_second: float
    first_checks_done: int
    lateness_p50_seconds: float
    lateness_p99_seconds: float
    lateness_max_seconds: float
    scheduler_kb_per_monitor: float
    worker_kb_per_monitor: float
    state_file_kb_per_monitor: float
    restart_serving_seconds: float  # the scheduler started again on its file -> it answers calls
    restart_seconds: float  # -> a new monitor's first check ran (the worker reconnects by itself meanwhile)
    scheduler_kb_per_monitor_after_restart: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WaitingResult:
        return cls(**{f.name: data[f.name] for f in fields(cls)})


def _rss_kb(pid: int) -> float:
    return process_memory_mb(pid, "VmRSS") * 1024


def _wait_for(what: str, done: Any, timeout: float, poll: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout:g} s")
        time.sleep(poll)


def _state_file_bytes(port: int) -> int:
    path = process.state_file(port, DEFAULT_TASKHUB)
    return sum(p.stat().st_size for p in path.parent.glob(f"{path.name}*"))


def _settle(pid: int, quiet_seconds: float = 1.0) -> None:
    """Wait until ``pid`` has used no CPU for ``quiet_seconds``: the last episodes have been answered."""
    last = process_cpu_seconds(pid)
    while True:
        time.sleep(quiet_seconds)
        now = process_cpu_seconds(pid)
        if now - last < 0.02 * quiet_seconds:
            return
        last = now


def run_waiting(settings: WaitingSettings) -> WaitingResult:
    """Measure one size (see the module docstring); the scheduler and worker processes end with it."""
    port = free_loopback_port()
    room = settings.monitors + 100  # the probe after the restart is one more
    scheduler_pid = process.spawn_scheduler_process(port, max_active_instances=room)
    workers = WorkerProcesses(port)
    try:
        worker_pid = workers.start().pids[0]
        client = create_client(local_connection(f"http://127.0.0.1:{port}"))
        idle_scheduler, idle_worker = _rss_kb(scheduler_pid), _rss_kb(worker_pid)
        n = settings.monitors
        lead = 1.0 + n / settings.planned_starts_per_second
        first_due = time.time() + lead
        request = Stack().request

        def start(index: int) -> None:
            job_id = f"{WAITING_PREFIX}{index:06d}"
            due = first_due + index / settings.first_checks_per_second
            payload = request(job_id, settings.interval, settings.checks).to_payload()
            at = datetime.fromtimestamp(due, timezone.utc)
            client.schedule_new_orchestration(
                ORCHESTRATOR_NAME, input=payload, instance_id=job_id, start_at=at
            )

        began = time.monotonic()
        with ThreadPoolExecutor(settings.start_threads) as pool:
            list(pool.map(start, range(n)))
        start_seconds = time.monotonic() - began
        spread = n / settings.first_checks_per_second
        _wait_for("every first check", lambda: RECORDER.count(WAITING_PREFIX) >= n, lead + spread * 2 + 120)
        # Read once every monitor has waited a while, as it does for most of its interval (a history
        # whose instance waited 30 s lives in the state file only from the sweeper's next round on).
        records = RECORDER.records(WAITING_PREFIX)
        waited = min(60.0, settings.interval / 10)
        last_check = max(record.actual for record in records)
        _wait_for("the wait after the last check", lambda: time.time() > last_check + waited, waited + 60)
        _settle(scheduler_pid)
        lateness = [record.actual - record.due for record in records]
        scheduler_kb = (_rss_kb(scheduler_pid) - idle_scheduler) / n
        worker_kb = (_rss_kb(worker_pid) - idle_worker) / n
        file_kb = _state_file_bytes(port) / 1024 / n

        process.stop_scheduler_process(port, wait=60)
        restarting = time.monotonic()
        scheduler_pid = process.spawn_scheduler_process(port, wait=120, max_active_instances=room)
        serving_seconds = time.monotonic() - restarting
        probe = f"{PROBE_PREFIX}0"
        payload = request(probe, settings.interval, settings.checks).to_payload()
        client.schedule_new_orchestration(ORCHESTRATOR_NAME, input=payload, instance_id=probe)
        _wait_for("the check after the restart", lambda: RECORDER.count(PROBE_PREFIX) >= 1, 300, poll=0.02)
        restart_seconds = time.monotonic() - restarting
        _settle(scheduler_pid)
        after_restart_kb = (_rss_kb(scheduler_pid) - idle_scheduler) / n
        return WaitingResult(
            monitors=n,
            interval_seconds=settings.interval,
            start_seconds=start_seconds,
            starts_per_second=n / start_seconds,
            first_checks_done=len(records),
            lateness_p50_seconds=percentile(lateness, 0.50),
            lateness_p99_seconds=percentile(lateness, 0.99),
            lateness_max_seconds=max(lateness),
            scheduler_kb_per_monitor=scheduler_kb,
            worker_kb_per_monitor=worker_kb,
            state_file_kb_per_monitor=file_kb,
            restart_serving_seconds=serving_seconds,
            restart_seconds=restart_seconds,
            scheduler_kb_per_monitor_after_restart=after_restart_kb,
        )
    finally:
        workers.stop()
        process.stop_scheduler_process(port)


def measure_waiting(settings: WaitingSettings, timeout: float = 7200) -> WaitingResult:
    """Run one size in a process of its own (``python -m monitoring.bench waiting``); return what it
    measured."""
    arguments = ["waiting", "--settings", json.dumps(asdict(settings))]
    what = f"the waiting run of {settings.monitors} monitors"
    return WaitingResult.from_json(run_bench_process(arguments, what, timeout))
