"""Breaking things on purpose, for real (notebook 03): a worker in a process of its own, killed and replaced;
the local scheduler process killed and started again on its state file; many monitors followed at once.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from monitoring.client.monitors import MonitorClient
from monitoring.client.snapshots import MonitorSnapshot
from monitoring.runtime.connection import Connection
from monitoring.scheduler import process

# Where notebook 03 keeps the id of the monitor that outlives a kernel restart (its first cell names it).
SAVED_INSTANCE = Path(tempfile.gettempdir()) / "monitoring-notebook-03-instance.txt"


class WorkerProcess:
    """``python -m monitoring worker`` in a process of its own, on this process's ENDPOINT and TASKHUB.

    Every one started is remembered, so :func:`stop_worker_processes` can stop what is left."""

    def __init__(self) -> None:
        self.log_path = Path(tempfile.mkstemp(prefix="monitoring-worker-", suffix=".log")[1])
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "monitoring", "worker"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.pid = self.process.pid
        _started.append(self)

    def kill(self) -> None:
        """``kill -9``: no goodbye, whatever it was running is left half done."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        """Ctrl-C (SIGTERM): it finishes what it holds, then exits."""
        process.stop_processes([self.process])

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


_started: list[WorkerProcess] = []


def stop_worker_processes() -> int:
    """Stop every worker process this kernel started that still runs; returns how many there were."""
    running = [worker for worker in _started if worker.process.poll() is None]
    process.stop_processes([worker.process for worker in running])
    return len(running)


def worker_processes_running() -> int:
    return sum(1 for worker in _started if worker.process.poll() is None)


def kill_scheduler(connection: Connection) -> process.SchedulerRecord:
    """``kill -9`` the local scheduler process; returns its record. Only for the local scheduler."""
    if connection.kind != "local":
        raise RuntimeError(f"the {connection.describe()} is not a process of ours to kill")
    record = process.kill_scheduler_process(connection.local_port)
    if record is None:
        raise RuntimeError(f"no local scheduler process runs on port {connection.local_port}")
    return record


def restart_scheduler(connection: Connection, owner: str) -> int:
    """Start the local scheduler again on the same port, so on the same state file; returns its pid."""
    return process.spawn_scheduler_process(connection.local_port, connection.taskhub, owner=owner)


def wait_all(
    monitors: MonitorClient,
    prefix: str,
    done: Callable[[list[MonitorSnapshot]], bool],
    timeout: float = 300,
) -> list[MonitorSnapshot]:
    """Poll the monitors whose ids start with ``prefix`` (one query a time) until ``done`` holds for them."""
    deadline = time.monotonic() + timeout
    while True:
        seen = monitors.snapshots(prefix)
        if seen and done(seen):
            return seen
        if time.monotonic() > deadline:
            raise TimeoutError(f"monitors {prefix}*: condition not met within {timeout:g} s")
        time.sleep(0.2)


def checks(snapshot: MonitorSnapshot) -> int:
    return snapshot.custom_status.check_count if snapshot.custom_status else 0


def outcomes(snapshots: list[MonitorSnapshot]) -> Counter[tuple[str, int]]:
    """How the monitors ended: (final status, checks performed) -> how many."""
    return Counter(
        (s.result.final_status, s.result.checks_performed) if s.result else (s.runtime_status, checks(s))
        for s in snapshots
    )


def explain(snapshot: MonitorSnapshot) -> str:
    """One plain sentence: how the monitor ended (or where it is), what the job said last, and why."""
    status, result = snapshot.custom_status, snapshot.result
    job = f"the job last said {status.status}" if status is not None else "no check yet"
    if result is None:
        return f"{snapshot.state}: {checks(snapshot)} check(s) so far, {job}"
    text = (
        f"ended {result.final_status} after {result.checks_performed} check(s) in "
        f"{result.monitoring_duration_seconds:.1f} s; {job}"
    )
    return f"{text}; reason: {result.reason}" if result.reason else text
