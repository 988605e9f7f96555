"""The bench's phases (on time, saturated, long) in one stack's process, and the parent running each."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from monitoring.bench.records import RECORDER, CheckRecord, percentile, process_cpu_seconds, process_memory_mb
from monitoring.bench.results import BatchResult, BenchRun, LongResult, StackResult
from monitoring.bench.stacks import STACKS, BenchSettings, Stack, open_stack
from monitoring.settings import STATE_DIR_ENV, environ_with

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
) -> BatchResult:
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
    calling = time.monotonic()
    stack.scheduled()
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
    return BatchResult(
        monitors=monitors,
        interval_seconds=interval,
        started_over_seconds=started_over,
        checks_per_monitor=checks,
        checks_expected=expected,
        checks_done=len(records),
        offered_checks_per_second=monitors / interval,
        checks_per_second=(
            (len(records) - monitors) / (last - first - started_over)
            if last - first > started_over
            else float("nan")
        ),
        worker_processes_checking=len({record.pid for record in records}),
        lateness_p50_seconds=percentile(lateness, 0.50),
        lateness_p99_seconds=percentile(lateness, 0.99),
        lateness_max_seconds=max(lateness) if lateness else float("nan"),
        schedule_seconds=scheduled_in,
        worker_cpu_seconds=worker_cpu,
        scheduler_cpu_seconds=scheduler_cpu,
        cpu_ms_per_check=1000 * (worker_cpu + (scheduler_cpu or 0.0)) / max(1, len(records)),
        memory_kb_per_waiting_monitor=max(0.0, waiting_rss - rss_before) * 1024 / monitors,
    )


def saturation_point(runs: Sequence[BatchResult]) -> int | None:
    """The first monitor count whose achieved checks/s fell below 90 % of the offered load."""
    return next((run.monitors for run in runs if not run.keeps_up), None)


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


def run_stack(name: str, settings: BenchSettings) -> StackResult:
    stack = open_stack(name, settings)
    # Their histories are never cut, so every episode replays all of it: fewer long checks.
    unbounded = name in ("reference", "protocol-floor")
    long_checks = settings.reference_long_checks if unbounded else settings.long_checks
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
        # Checks 10-60 against the last 50: ten checks (about 50 ms of CPU) moved by a fifth from run to run.
        window = max(1, min(25, long_checks // 20))
        peak_worker_mb = stack.peak_worker_mb()
        peak_scheduler_mb = process_memory_mb(stack.scheduler_pid, "VmHWM") if stack.scheduler_pid else None
        cpu_early = cpu_per_check_at(records, early + window, window)
        cpu_late = cpu_per_check_at(records, long_checks - window, window)
        return StackResult(
            stack=name,
            settings=settings,
            on_time=on_time,
            saturated=saturated,
            long=LongResult(
                **asdict(long),
                early_check=early,
                late_check=long_checks,
                cpu_ms_per_check_early=cpu_early,
                cpu_ms_per_check_late=cpu_late,
                cpu_growth=cpu_late / cpu_early if cpu_early > 0 else float("nan"),
            ),
            peak_worker_mb=peak_worker_mb,
            peak_scheduler_mb=peak_scheduler_mb,
        )
    finally:
        stack.close()


# --- the parent: one subprocess per stack, a table, the ratios ----------------------------------------------


def run_bench_process(arguments: list[str], what: str, timeout: float) -> dict[str, Any]:
    """Run ``python -m monitoring.bench ARGUMENTS`` with a fresh temporary state folder; return the JSON
    object it printed last. ``what`` names it in the error raised if it fails (with its last lines)."""
    command = [sys.executable, "-m", "monitoring.bench", *arguments]
    with tempfile.TemporaryDirectory(prefix="monitoring-bench-") as state:
        env = environ_with({STATE_DIR_ENV: state})
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"{what} failed:\n{tail}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(name: str, settings: BenchSettings, timeout: float = 3600) -> StackResult:
    """Run one stack in a process of its own; return what it measured."""
    arguments = ["stack", name, "--settings", json.dumps(asdict(settings))]
    return StackResult.from_json(run_bench_process(arguments, f"the {name} stack", timeout))


def run_all(
    settings: BenchSettings, stacks: Sequence[str] = STACKS, on_stack: Callable[[str], None] | None = None
) -> BenchRun:
    machine = machine_description()  # the load before the run, as the table says
    results = {}
    for name in stacks:
        if on_stack:
            on_stack(name)
        results[name] = measure(name, settings)
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine += f", after it {_load_averages()}"  # what else ran meanwhile shows here
    return BenchRun(date, machine, results, ratios(results))


def ratios(results: dict[str, StackResult]) -> dict[str, float]:
    found: dict[str, float] = {}
    for name, other in (("project", "reference"), ("scale-out", "reference"), ("project", "floor")):
        if name in results and other in results:
            mine = results[name].saturated.checks_per_second
            theirs = results[other].saturated.checks_per_second
            found[f"{name}/{other} saturated checks/s"] = mine / theirs
            mine_p99 = results[name].main_on_time.lateness_p99_seconds
            their_p99 = results[other].main_on_time.lateness_p99_seconds
            found[f"{name}/{other} p99 lateness"] = mine_p99 / their_p99 if their_p99 > 0 else float("nan")
    if "project" in results and "project-in-memory" in results:
        # What keeping the task hub in a file costs: the same load, the scheduler in memory only.
        with_file = results["project"].main_on_time.cpu_ms_per_check
        in_memory = results["project-in-memory"].main_on_time.cpu_ms_per_check
        found["project/project-in-memory CPU ms per check"] = with_file / in_memory
    if "project" in results and "protocol-floor" in results:
        # The monitor's own share: the same scheduler and load, the least a check can do on this protocol.
        monitor = results["project"].main_on_time.cpu_ms_per_check
        least = results["protocol-floor"].main_on_time.cpu_ms_per_check
        found["project/protocol-floor CPU ms per check"] = monitor / least
    if "project" in results and "project-sdk-loop" in results:
        # What the worker's lean receiving loop saves: the same project, the SDK's asyncio loop instead.
        sdk_loop = results["project-sdk-loop"].main_on_time.cpu_ms_per_check
        found["project-sdk-loop/project CPU ms per check"] = (
            sdk_loop / results["project"].main_on_time.cpu_ms_per_check
        )
    return found


def machine_description() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    python = sys.version.split()[0]
    return f"{os.cpu_count()} cores, {model}, Python {python}, load before run {_load_averages()}"


def _load_averages() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())
