"""How many monitors one worker keeps on schedule: ``python -m monitoring bench``.

Each stack runs in a subprocess of its own (``python -m monitoring.bench stack NAME ...``, which prints one
JSON object), so its CPU seconds and peak memory are its own. The stacks:

* ``project``: this project's default layout, as the tutorial runs it: the local scheduler in its own
  process, the worker in the bench process (:data:`PROJECT_WORK_ITEMS`, :data:`PROJECT_THREADS`), the real
  orchestrator;
* ``scale-out``: the same scheduler with ``scale_out_workers`` worker processes on its task hub
  (``python -m monitoring.bench worker``), the bench process only starting monitors: how the Durable Task
  Scheduler scales too;
* ``reference``: the official sample's loop (check, publish, return if done, else a timer at *now +
  interval*), an SDK-default ``TaskHubGrpcWorker``, and the in-memory backend in the same process (the
  project's loopback-only :class:`~monitoring.scheduler.LocalScheduler` around it);
* ``floor``: a plain asyncio loop making the same checks on the same schedule, with no durability.

Every check asks the ``bench`` job source (:class:`RecordingJobSource`), which answers like the simulated
job and notes when the check was due, when it ran and the CPU time of its process then (in memory, or in a
spool file for worker processes). Lateness is *actual minus due*. Three phases per stack:

* **on time**: ``monitors`` monitors of ``checks`` checks every ``interval`` s, started evenly over one
  interval (a steady load, as monitors started at different times give): lateness p50/p99/max of every
  check, the client's time to start them, CPU seconds of workers and scheduler, memory per waiting monitor;
* **saturated**: ``saturated_monitors`` monitors, started at once, checking as fast as they can: checks per
  second;
* **long**: ``long_monitors`` monitors of ``long_checks`` checks at a tiny interval: worker CPU per check
  around the 10th check and around the last, which stays flat only if the history is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TextIO

from durabletask import task
from durabletask.client import OrchestrationQuery, OrchestrationStatus, TaskHubGrpcClient
from durabletask.testing import InMemoryOrchestrationBackend
from durabletask.worker import ConcurrencyOptions, TaskHubGrpcWorker

from monitoring import jobs, processes, scheduler
from monitoring.connection import create_client, create_worker, local_connection
from monitoring.jobs import SimulatedJobSource
from monitoring.models import (
    DEFAULT_CHECKS_PER_GENERATION,
    JobCheckRequest,
    JobStatusReport,
    MonitorRequest,
    from_iso,
    to_iso,
)
from monitoring.orchestration import ORCHESTRATOR_NAME

STACKS = ("project", "scale-out", "reference", "floor")
# The SDK's defaults on 2 cores (100 x cores work items, cores + 4 threads): other settings measured no
# better (work items 16-400, threads 3-16; benchmarks/PROFILE.md).
PROJECT_WORK_ITEMS = 200
PROJECT_THREADS = 6
REFERENCE_ORCHESTRATOR = "reference_sample_orchestrator"
REFERENCE_ACTIVITY = "reference_check_job"
ACTIVE = (OrchestrationStatus.PENDING, OrchestrationStatus.RUNNING, OrchestrationStatus.SUSPENDED)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
README_START = "<!-- bench-results:start -->"
README_END = "<!-- bench-results:end -->"


# --- recording the checks ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckRecord:
    job_id: str
    check_number: int
    due: float  # epoch seconds
    actual: float
    cpu: float  # CPU seconds of the process that ran the check, at the time it ran
    pid: int = 0


class RecordingJobSource(SimulatedJobSource):
    """The simulated job, noting when each check was due, when it ran, and the process CPU time then.

    Checks run in this process are kept in memory. A worker process of the scale-out stack appends its
    records to a file in ``spool`` instead (:meth:`spool_to`); :meth:`read_spool` gathers them here.
    """

    def __init__(self) -> None:
        super().__init__()
        self._records: list[CheckRecord] = []
        self._records_lock = threading.Lock()
        self._counted: dict[str, tuple[int, int]] = {}  # prefix -> (records scanned, matching)
        self._spool_out: TextIO | None = None
        self._spool_in: Path | None = None
        self._spool_offsets: dict[Path, int] = {}

    def spool_to(self, directory: Path) -> None:
        """Append every check made in this process to ``directory/records-<pid>.jsonl``."""
        if self._spool_out is not None:
            self._spool_out.close()
        self._spool_out = open(directory / f"records-{os.getpid()}.jsonl", "a", buffering=1)  # noqa: SIM115

    def read_spool(self, directory: Path) -> None:
        """Gather the records that worker processes append under ``directory``."""
        self._spool_in = directory

    def check(self, request: JobCheckRequest, now: datetime) -> JobStatusReport:
        due = from_iso(request.due_at).timestamp() if request.due_at else now.timestamp()
        record = CheckRecord(
            request.job_id, request.check_number, due, now.timestamp(), time.process_time(), os.getpid()
        )
        with self._records_lock:
            if self._spool_out is not None:
                self._spool_out.write(json.dumps(asdict(record)) + "\n")
            else:
                self._records.append(record)
        return super().check(request, now)

    def _gather(self) -> None:
        """Move complete lines appended to the spool files since the last call into memory (lock held)."""
        if self._spool_in is None:
            return
        for path in sorted(self._spool_in.glob("records-*.jsonl")):
            with open(path, "rb") as spool:
                spool.seek(self._spool_offsets.get(path, 0))
                data = spool.read()
            complete = data[: data.rfind(b"\n") + 1]
            self._spool_offsets[path] = self._spool_offsets.get(path, 0) + len(complete)
            self._records.extend(CheckRecord(**json.loads(line)) for line in complete.splitlines())

    def records(self, job_prefix: str) -> list[CheckRecord]:
        with self._records_lock:
            self._gather()
            return [record for record in self._records if record.job_id.startswith(job_prefix)]

    def count(self, job_prefix: str) -> int:
        """How many checks of ``job_prefix`` so far; counts only the records added since the last call."""
        with self._records_lock:
            self._gather()
            scanned, found = self._counted.get(job_prefix, (0, 0))
            found += sum(1 for record in self._records[scanned:] if record.job_id.startswith(job_prefix))
            self._counted[job_prefix] = (len(self._records), found)
            return found


RECORDER = RecordingJobSource()
jobs.STATUS_SOURCES["bench"] = RECORDER


# --- reference (a): the official sample's loop ----------------------------------------------------------


def reference_sample_orchestrator(
    ctx: task.OrchestrationContext, payload: dict[str, Any]
) -> Generator[task.Task[Any], Any, dict[str, Any]]:
    """The sample's monitor: check, publish, stop if done, else sleep *interval* from now; until timeout."""
    interval = timedelta(seconds=payload["polling_interval_seconds"])
    timeout = payload["timeout_seconds"]
    started = ctx.current_utc_datetime
    due = started
    checks = 0
    limit = payload.get("max_checks")
    while (ctx.current_utc_datetime - started).total_seconds() < timeout and checks != limit:
        request = JobCheckRequest(
            job_id=payload["job_id"],
            monitor_started_at=to_iso(started),
            job_duration_seconds=payload["job_duration_seconds"],
            job_outcome=payload["job_outcome"],
            source="bench",
            check_number=checks + 1,
            due_at=to_iso(due),
        )
        report = yield ctx.call_activity(REFERENCE_ACTIVITY, input=request.to_payload())
        checks += 1
        ctx.set_custom_status(
            {"job_id": payload["job_id"], "status": report["status"], "check_count": checks}
        )
        if report["status"] in ("Completed", "Failed"):
            return {"job_id": payload["job_id"], "final_status": report["status"], "checks_performed": checks}
        due = ctx.current_utc_datetime + interval
        yield ctx.create_timer(due)
    return {"job_id": payload["job_id"], "final_status": "Timeout", "checks_performed": checks}


def reference_check_job(ctx: task.ActivityContext, payload: dict[str, Any]) -> dict[str, Any]:
    return jobs.check_job(JobCheckRequest.from_payload(payload)).to_payload()


# --- measuring a process -------------------------------------------------------------------------------


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far, from ``/proc/<pid>/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def process_memory_mb(pid: int, key: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of ``pid`` in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    raise LookupError(f"{key} not found for pid {pid}")


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


# --- the stacks -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchSettings:
    monitors: int = 1000
    interval: float = 5.0
    checks: int = 4
    saturated_monitors: int = 200
    saturated_checks: int = 10
    long_monitors: int = 2
    long_checks: int = 1000
    long_interval: float = 0.01
    reference_long_checks: int = 200  # its history is never cut: replays grow with every check
    checks_per_generation: int = DEFAULT_CHECKS_PER_GENERATION
    work_items: int = PROJECT_WORK_ITEMS  # the project worker's ConcurrencyOptions, to compare settings
    threads: int = PROJECT_THREADS
    scale_out_workers: int = 2  # worker processes of the scale-out stack
    sweep: tuple[int, ...] = ()  # the on-time runs' monitor counts, in order (default: just ``monitors``)

    def on_time_sizes(self) -> tuple[int, ...]:
        return self.sweep or (self.monitors,)


def main_on_time(result: dict[str, Any]) -> dict[str, Any]:
    """A stack's on-time run of ``monitors`` monitors (the CLI runs it first, in a fresh process, so its
    memory per waiting monitor is not hidden by memory earlier runs left behind); else its last run."""
    wanted = result["settings"]["monitors"]
    return next((run for run in result["on_time"] if run["monitors"] == wanted), result["on_time"][-1])


class Stack:
    """Starts monitors of the ``bench`` job and reports on the processes that run them."""

    name = ""
    scheduler_pid: int | None = None
    checks_per_generation = DEFAULT_CHECKS_PER_GENERATION

    @property
    def worker_pids(self) -> list[int]:
        """The processes that run the checks (this one, unless workers run in processes of their own)."""
        return [os.getpid()]

    def peak_worker_mb(self) -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def schedule(self, job_id: str, interval: float, checks: int) -> None:
        raise NotImplementedError

    def wait_all_done(self, prefix: str, timeout: float) -> None:
        """Wait until every monitor whose instance id starts with ``prefix`` has ended (one query a tick)."""

    def close(self) -> None:
        pass

    def request(self, job_id: str, interval: float, checks: int) -> MonitorRequest:
        # The job never finishes within the run, so every planned check happens: at 0, I, ..., (C-1)I.
        timeout = interval * (checks - 1) if checks > 1 else interval
        return MonitorRequest(
            job_id=job_id,
            polling_interval_seconds=interval,
            timeout_seconds=timeout,
            job_duration_seconds=timeout * 10 + 3600,
            checks_per_generation=self.checks_per_generation,
            deadline_grace_seconds=600.0,  # every planned check must happen, however late under overload
            job_source="bench",
        )


class _DurableStack(Stack):
    client: TaskHubGrpcClient

    def wait_all_done(self, prefix: str, timeout: float) -> None:
        # Called once every check is recorded, so only the last episodes remain: ask for the monitors that
        # have not ended (the scheduler filters), which keeps the answers small and the polling cheap.
        deadline = time.monotonic() + timeout
        query = OrchestrationQuery(
            instance_id_prefix=prefix, runtime_status=list(ACTIVE), fetch_inputs_and_outputs=False
        )
        while time.monotonic() < deadline:
            if not self.client.get_all_orchestration_states(query):
                return
            time.sleep(0.2)
        raise TimeoutError(f"{prefix}: monitors still running after {timeout:g} s")


def _concurrency(settings: BenchSettings) -> ConcurrencyOptions:
    return ConcurrencyOptions(
        maximum_concurrent_activity_work_items=settings.work_items,
        maximum_concurrent_orchestration_work_items=settings.work_items,
        maximum_thread_pool_workers=settings.threads,
    )


class ProjectStack(_DurableStack):
    """The tutorial's layout: the local scheduler in a process of its own, the worker in this process."""

    name = "project"

    def __init__(self, settings: BenchSettings) -> None:
        self.checks_per_generation = settings.checks_per_generation
        self.port = free_loopback_port()
        self.scheduler_pid = scheduler.spawn_scheduler_process(self.port)
        self.connection = local_connection(f"http://127.0.0.1:{self.port}")
        self.client = create_client(self.connection)
        try:
            self.start_workers(settings)
        except BaseException:
            scheduler.stop_scheduler_process(self.port)
            raise

    def start_workers(self, settings: BenchSettings) -> None:
        self.worker = create_worker(self.connection, _concurrency(settings))
        self.worker.start()

    def schedule(self, job_id: str, interval: float, checks: int) -> None:
        payload = self.request(job_id, interval, checks).to_payload()
        self.client.schedule_new_orchestration(ORCHESTRATOR_NAME, input=payload, instance_id=job_id)

    def stop_workers(self) -> None:
        self.worker.stop()

    def close(self) -> None:
        try:
            self.stop_workers()
        finally:
            scheduler.stop_scheduler_process(self.port)


class ScaleOutStack(ProjectStack):
    """The same scheduler with ``scale_out_workers`` worker processes on its task hub; this one only starts.

    This is how the Durable Task Scheduler scales too: more workers on the same task hub share the work.
    """

    name = "scale-out"

    def start_workers(self, settings: BenchSettings) -> None:
        self.spool = Path(tempfile.mkdtemp(prefix="monitoring-bench-spool-"))
        RECORDER.read_spool(self.spool)
        command = [sys.executable, "-m", "monitoring.bench", "worker", "--port", str(self.port)]
        command += ["--spool", str(self.spool), "--settings", json.dumps(asdict(settings))]
        self.processes: list[subprocess.Popen[bytes]] = []
        for _ in range(settings.scale_out_workers):
            # stdout stays free for the stack's JSON line; errors still reach stderr.
            try:
                self.processes.append(subprocess.Popen(command, stdout=subprocess.DEVNULL))
            except OSError:
                self.stop_workers()
                raise
        deadline = time.monotonic() + 30
        while len(list(self.spool.glob("ready-*"))) < len(self.processes):
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.processes):
                self.stop_workers()
                raise RuntimeError("the scale-out worker processes did not start")
            time.sleep(0.05)

    @property
    def worker_pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def peak_worker_mb(self) -> float:
        return sum(process_memory_mb(pid, "VmHWM") for pid in self.worker_pids)

    def stop_workers(self) -> None:
        processes.stop_processes(self.processes, wait=10)
        shutil.rmtree(self.spool, ignore_errors=True)


def run_worker_process(port: int, spool: Path, settings: BenchSettings) -> None:
    """A scale-out worker: check and record until SIGTERM, or until the process that started it is gone."""
    RECORDER.spool_to(spool)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    processes.stop_with_parent(os.getppid())
    worker = create_worker(local_connection(f"http://127.0.0.1:{port}"), _concurrency(settings))
    worker.start()
    (spool / f"ready-{os.getpid()}").touch()
    try:
        stopping.wait()
    finally:
        worker.stop()


class ReferenceStack(_DurableStack):
    name = "reference"

    def __init__(self) -> None:
        # In this process, as the sample runs it, and the SDK's own servicer (its thread per timer included),
        # bound to loopback by the project's LocalScheduler.
        self.backend = scheduler.LocalScheduler(0, servicer=InMemoryOrchestrationBackend()).start()
        address = f"127.0.0.1:{self.backend.port}"
        self.worker = TaskHubGrpcWorker(host_address=address)
        self.worker.add_orchestrator(reference_sample_orchestrator)
        self.worker.add_activity(reference_check_job)
        self.worker.start()
        self.client = TaskHubGrpcClient(host_address=address)

    def schedule(self, job_id: str, interval: float, checks: int) -> None:
        # The sample loops while elapsed < timeout, and its timers drift (each is *now + interval*), so
        # the timeout is left wide and the run is cut at exactly ``checks`` checks to compare like for like.
        payload = {**self.request(job_id, interval, checks).to_payload(), "max_checks": checks}
        payload["timeout_seconds"] = interval * checks * 100 + 60
        self.client.schedule_new_orchestration(REFERENCE_ORCHESTRATOR, input=payload, instance_id=job_id)

    def close(self) -> None:
        self.worker.stop()
        self.backend.stop()


class FloorStack(Stack):
    """No durability: one asyncio task per monitor, sleeping until each check is due."""

    name = "floor"

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="bench-floor", daemon=True)
        self.thread.start()
        self.pending: dict[str, Any] = {}

    async def _monitor(self, request: MonitorRequest) -> None:
        started = datetime.now(timezone.utc)
        schedule = request.schedule()
        for number in range(1, schedule.planned_check_count + 1):
            due = started + timedelta(seconds=schedule.offset_of_check(number))
            await asyncio.sleep(max(0.0, (due - datetime.now(timezone.utc)).total_seconds()))
            check = JobCheckRequest(
                job_id=request.job_id,
                monitor_started_at=to_iso(started),
                job_duration_seconds=request.job_duration_seconds,
                job_outcome=request.job_outcome,
                source=request.job_source,
                check_number=number,
                due_at=to_iso(due),
            )
            jobs.check_job(check)

    def schedule(self, job_id: str, interval: float, checks: int) -> None:
        request = self.request(job_id, interval, checks)
        self.pending[job_id] = asyncio.run_coroutine_threadsafe(self._monitor(request), self.loop)

    def wait_all_done(self, prefix: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for job_id, future in list(self.pending.items()):
            if job_id.startswith(prefix):
                future.result(timeout=max(0.1, deadline - time.monotonic()))
                del self.pending[job_id]

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def open_stack(name: str, settings: BenchSettings) -> Stack:
    if name in ("project", "scale-out"):
        return {"project": ProjectStack, "scale-out": ScaleOutStack}[name](settings)
    return {"reference": ReferenceStack, "floor": FloorStack}[name]()


# --- the phases ----------------------------------------------------------------------------------------


def _cpu(stack: Stack) -> tuple[float, float | None]:
    worker = sum(process_cpu_seconds(pid) for pid in stack.worker_pids)
    sched = process_cpu_seconds(stack.scheduler_pid) if stack.scheduler_pid else None
    return worker, sched


def _rss_mb(stack: Stack) -> float:
    pids = {os.getpid(), *stack.worker_pids, *([stack.scheduler_pid] if stack.scheduler_pid else [])}
    return sum(process_memory_mb(pid, "VmRSS") for pid in pids)


def _wait_for_checks(prefix: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while RECORDER.count(prefix) < count and time.monotonic() < deadline:
        time.sleep(0.1)


def run_batch(
    stack: Stack, prefix: str, monitors: int, interval: float, checks: int, spread: float = 0.0
) -> dict[str, Any]:
    """Start ``monitors`` monitors, evenly over ``spread`` seconds, wait for all their checks and ends.

    Returns what was measured. ``schedule_seconds`` is the time spent in the client's start calls only.
    """
    rss_before = _rss_mb(stack)
    cpu_before = _cpu(stack)
    began = time.monotonic()
    scheduled_in = 0.0
    for index in range(monitors):
        pause = began + index * spread / monitors - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        calling = time.monotonic()
        stack.schedule(f"{prefix}{index:06d}", interval, checks)
        scheduled_in += time.monotonic() - calling
    started_over = time.monotonic() - began if spread else 0.0
    # Every monitor has made at least its first check (started over one interval, the earliest may be on
    # their second): about what N waiting monitors weigh.
    _wait_for_checks(prefix, monitors, timeout=60 + monitors * 0.05)
    waiting_rss = _rss_mb(stack)
    expected = monitors * checks
    budget = interval * checks * 4 + 60 + expected * 0.05
    _wait_for_checks(prefix, expected, timeout=budget)  # in this process's memory: no load on the stack
    stack.wait_all_done(prefix, timeout=budget)
    cpu_after = _cpu(stack)
    records = RECORDER.records(prefix)
    lateness = [record.actual - record.due for record in records]
    first = min(record.actual for record in records)
    last = max(record.actual for record in records)
    worker_cpu = cpu_after[0] - cpu_before[0]
    scheduler_cpu = None if cpu_before[1] is None else cpu_after[1] - cpu_before[1]  # type: ignore[operator]
    return {
        "monitors": monitors,
        "interval_seconds": interval,
        "started_over_seconds": started_over,
        "checks_per_monitor": checks,
        "checks_expected": expected,
        "checks_done": len(records),
        "offered_checks_per_second": monitors / interval,
        # Checks after each monitor's first, per second from the first check to the last (less the time the
        # starts took, when they were spread): N / interval when the stack keeps up, less when it does not.
        "checks_per_second": (
            (len(records) - monitors) / (last - first - started_over)
            if last - first > started_over
            else float("nan")
        ),
        "worker_processes_checking": len({record.pid for record in records}),
        "lateness_p50_seconds": percentile(lateness, 0.50),
        "lateness_p99_seconds": percentile(lateness, 0.99),
        "lateness_max_seconds": max(lateness) if lateness else float("nan"),
        "schedule_seconds": scheduled_in,
        "worker_cpu_seconds": worker_cpu,
        "scheduler_cpu_seconds": scheduler_cpu,
        "cpu_ms_per_check": 1000 * (worker_cpu + (scheduler_cpu or 0.0)) / max(1, len(records)),
        "memory_kb_per_waiting_monitor": max(0.0, waiting_rss - rss_before) * 1024 / monitors,
    }


def saturation_point(runs: Sequence[dict[str, Any]], keeping_up: float = 0.9) -> int | None:
    """The first monitor count whose achieved checks/s fell below ``keeping_up`` x the offered load."""
    for run in runs:
        if run["checks_per_second"] < keeping_up * run["offered_checks_per_second"]:
            return int(run["monitors"])
    return None


def cpu_per_check_at(records: list[CheckRecord], around: int, window: int) -> float:
    """Worker CPU ms per check for checks numbered ``around`` ± ``window`` (all monitors together).

    Each process's CPU clock is its own, so the spans are taken per process and then added up.
    """
    by_process: dict[int, list[CheckRecord]] = {}
    for record in records:
        if abs(record.check_number - around) <= window:
            by_process.setdefault(record.pid, []).append(record)
    cpu = 0.0
    gaps = 0
    for chosen in by_process.values():
        chosen.sort(key=lambda record: record.actual)
        cpu += chosen[-1].cpu - chosen[0].cpu
        gaps += len(chosen) - 1
    return 1000 * cpu / gaps if gaps else float("nan")


def run_stack(name: str, settings: BenchSettings) -> dict[str, Any]:
    stack = open_stack(name, settings)
    long_checks = settings.reference_long_checks if name == "reference" else settings.long_checks
    try:
        # Started evenly over one interval, as monitors started at different times are: a steady load.
        on_time = [
            run_batch(stack, f"ontime{size}-", size, settings.interval, settings.checks, settings.interval)
            for size in settings.on_time_sizes()
        ]
        saturated = run_batch(
            stack, "sat-", settings.saturated_monitors, settings.long_interval, settings.saturated_checks
        )
        long = run_batch(stack, "long-", settings.long_monitors, settings.long_interval, long_checks)
        records = RECORDER.records("long-")
        early = min(10, long_checks)
        window = max(1, min(5, long_checks // 20))
        peak_worker_mb = stack.peak_worker_mb()
        peak_scheduler_mb = process_memory_mb(stack.scheduler_pid, "VmHWM") if stack.scheduler_pid else None
        cpu_early = cpu_per_check_at(records, early + window, window)
        cpu_late = cpu_per_check_at(records, long_checks - window, window)
        return {
            "stack": name,
            "settings": asdict(settings),
            "on_time": on_time,
            "saturated": saturated,
            "long": {
                **long,
                "early_check": early,
                "late_check": long_checks,
                "cpu_ms_per_check_early": cpu_early,
                "cpu_ms_per_check_late": cpu_late,
                "cpu_growth": cpu_late / cpu_early if cpu_early > 0 else float("nan"),
            },
            "peak_worker_mb": peak_worker_mb,
            "peak_scheduler_mb": peak_scheduler_mb,
        }
    finally:
        stack.close()


# --- the parent: one subprocess per stack, a table, the ratios ----------------------------------------------


def measure(name: str, settings: BenchSettings, timeout: float = 3600) -> dict[str, Any]:
    """Run one stack in a fresh ``python -m monitoring.bench`` process; return its JSON."""
    command = [
        sys.executable,
        "-m",
        "monitoring.bench",
        "stack",
        name,
        "--settings",
        json.dumps(asdict(settings)),
    ]
    with tempfile.TemporaryDirectory(prefix="monitoring-bench-") as state:
        env = {**os.environ, "MONITORING_STATE_DIR": state}
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"the {name} stack failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_all(
    settings: BenchSettings, stacks: Sequence[str] = STACKS, on_stack: Callable[[str], None] | None = None
) -> dict[str, Any]:
    results = {}
    for name in stacks:
        if on_stack:
            on_stack(name)
        results[name] = measure(name, settings)
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_description(),
        "stacks": results,
        "ratios": ratios(results),
    }


def ratios(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    found: dict[str, float] = {}
    for name, other in (("project", "reference"), ("scale-out", "reference"), ("project", "floor")):
        if name in results and other in results:
            mine = results[name]["saturated"]["checks_per_second"]
            theirs = results[other]["saturated"]["checks_per_second"]
            found[f"{name}/{other} saturated checks/s"] = mine / theirs
            mine_p99 = main_on_time(results[name])["lateness_p99_seconds"]
            their_p99 = main_on_time(results[other])["lateness_p99_seconds"]
            found[f"{name}/{other} p99 lateness"] = mine_p99 / their_p99 if their_p99 > 0 else float("nan")
    return found


def machine_description() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return f"{os.cpu_count()} cores, {model}, Python {sys.version.split()[0]}, load before run {load}"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}"


def results_table(run: dict[str, Any]) -> str:
    """A Markdown table of the figures, one column per stack, then the ratios."""
    stacks = run["stacks"]
    names = list(stacks)
    first = stacks[names[0]]
    ontime = main_on_time(first)
    long = first["long"]
    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        (
            f"lateness p50 / p99 / max, ms ({ontime['monitors']} monitors x {ontime['checks_per_monitor']} "
            f"checks at {ontime['interval_seconds']:g} s)",
            lambda r: " / ".join(
                _ms(main_on_time(r)[f"lateness_{k}_seconds"]) for k in ("p50", "p99", "max")
            ),
        ),
        ("client time to start them, s", lambda r: f"{main_on_time(r)['schedule_seconds']:.2f}"),
        (
            "CPU s worker / scheduler process (that run)",
            lambda r: (
                f"{main_on_time(r)['worker_cpu_seconds']:.1f} / "
                + (
                    "in worker"
                    if main_on_time(r)["scheduler_cpu_seconds"] is None
                    else f"{main_on_time(r)['scheduler_cpu_seconds']:.1f}"
                )
            ),
        ),
        ("CPU ms per check (worker + scheduler)", lambda r: f"{main_on_time(r)['cpu_ms_per_check']:.2f}"),
        (
            "memory per waiting monitor, KB",
            lambda r: f"{main_on_time(r)['memory_kb_per_waiting_monitor']:.0f}",
        ),
        (
            f"saturated checks/s ({first['saturated']['monitors']} monitors)",
            lambda r: f"{r['saturated']['checks_per_second']:.0f}",
        ),
        (
            f"worker CPU ms per check at check {long['early_check']} / {long['late_check']}",
            lambda r: (
                f"{r['long']['cpu_ms_per_check_early']:.2f} / {r['long']['cpu_ms_per_check_late']:.2f}"
                f" (x{r['long']['cpu_growth']:.2f})"
            ),
        ),
        (
            "peak memory MB worker / scheduler",
            lambda r: (
                f"{r['peak_worker_mb']:.0f} / "
                + ("in worker" if r["peak_scheduler_mb"] is None else f"{r['peak_scheduler_mb']:.0f}")
            ),
        ),
    ]
    if len(first["on_time"]) > 1:
        rows.insert(
            1,
            (
                "p99 lateness by number of monitors, ms",
                lambda r: ", ".join(
                    f"{batch['monitors']}: {_ms(batch['lateness_p99_seconds'])}"
                    for batch in sorted(r["on_time"], key=lambda batch: batch["monitors"])
                ),
            ),
        )
    lines = [f"| figure | {' | '.join(names)} |", "|---" * (len(names) + 1) + "|"]
    for label, cell in rows:
        lines.append(f"| {label} | {' | '.join(cell(stacks[name]) for name in names)} |")
    lines.append("")
    lines.extend(f"- {label}: {value:.2f}" for label, value in run["ratios"].items())
    return "\n".join(lines)


def update_readme(run: dict[str, Any], readme: Path, command: str) -> None:
    text = readme.read_text()
    block = (
        f"{README_START}\nMeasured {run['date']} on {run['machine']}, with `{command}`:\n\n"
        f"{results_table(run)}\n{README_END}"
    )
    pattern = re.compile(re.escape(README_START) + ".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        raise RuntimeError(f"{readme} has no {README_START} ... {README_END} block to replace")
    readme.write_text(pattern.sub(lambda _: block, text))


def _stack_main(argv: Sequence[str]) -> int:
    """``stack NAME``: measure one stack, print its JSON; ``worker``: one worker process of scale-out."""
    parser = argparse.ArgumentParser(prog="python -m monitoring.bench")
    parser.add_argument("command", choices=["stack", "worker"])
    parser.add_argument("stack", nargs="?", choices=STACKS)
    parser.add_argument("--settings", default="{}")
    parser.add_argument("--port", type=int)
    parser.add_argument("--spool", type=Path)
    args = parser.parse_args(argv)
    values = json.loads(args.settings)
    values["sweep"] = tuple(values.get("sweep", ()))
    settings = BenchSettings(**values)
    if args.command == "worker":
        run_worker_process(args.port, args.spool, settings)
    else:
        print(json.dumps(run_stack(args.stack, settings)), flush=True)
    return 0


if __name__ == "__main__":
    # Through the imported module, so the recorder the activity finds is the one this process reads.
    from monitoring.bench import _stack_main as stack_main

    sys.exit(stack_main(sys.argv[1:]))
