"""What the local scheduler's SQLite state costs per check: the same load on a scheduler process kept in
memory (``--in-memory``) and on one that keeps its state file, each with one worker process.

    python benchmarks/persistence_cost.py              # 200 monitors x 21 checks, two rounds
    python benchmarks/persistence_cost.py --monitors 100 --rounds 1

Prints the CPU milliseconds per check of the scheduler process and of the worker process for each run.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from monitoring.client.monitors import MonitorClient
from monitoring.core.models import MonitorRequest
from monitoring.runtime.connection import local_connection
from monitoring.scheduler.process import state_file
from monitoring.scheduler.server import probe


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().split(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(
    in_memory: bool,
    monitors: int,
    interval: float,
    timeout: float,
    prefill: Callable[[Path], None] | None = None,
) -> tuple[int, float, float]:
    """(checks, scheduler CPU ms per check, worker CPU ms per check) of one run. ``prefill`` is given the
    scheduler's state file before the scheduler starts on it."""
    port = free_port()
    address = f"http://127.0.0.1:{port}"
    state_dir = tempfile.mkdtemp(prefix="cost-")
    if prefill is not None:
        prefill(state_file(port, "default", Path(state_dir)))  # the file the scheduler will use
    env = {**os.environ, "ENDPOINT": address, "MONITORING_STATE_DIR": state_dir}
    command = [sys.executable, "-m", "monitoring", "scheduler", "--port", str(port)]
    quiet = {"env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = subprocess.Popen(command + (["--in-memory"] if in_memory else []), **quiet)  # type: ignore[call-overload]
    while not probe(address, timeout=0.5):
        time.sleep(0.1)
    worker = subprocess.Popen([sys.executable, "-m", "monitoring", "worker"], **quiet)  # type: ignore[call-overload]
    plan = MonitorRequest(
        job_id="cost",
        polling_interval_seconds=interval,
        timeout_seconds=timeout,
        job_duration_seconds=10**6,
        deadline_grace_seconds=600,
    )
    try:
        with MonitorClient(local_connection(address)) as client:
            prefix = f"cost-{uuid.uuid4().hex[:6]}-"
            client.start(plan, instance_id=f"{prefix}warm-up")
            client.follow(f"{prefix}warm-up", timeout=600)  # the worker is connected and warm
            before = cpu_seconds(scheduler.pid), cpu_seconds(worker.pid)
            for number in range(monitors):
                client.start(plan, instance_id=f"{prefix}{number}")
            seen = client.snapshots(prefix)
            while not all(snapshot.is_terminal for snapshot in seen):
                time.sleep(0.5)
                seen = client.snapshots(prefix)
            after = cpu_seconds(scheduler.pid), cpu_seconds(worker.pid)
        measured = [s for s in seen if s.result is not None and not s.instance_id.endswith("warm-up")]
        checks = sum(s.result.checks_performed for s in measured)  # type: ignore[union-attr]
        return checks, (after[0] - before[0]) * 1000 / checks, (after[1] - before[1]) * 1000 / checks
    finally:
        for process in (worker, scheduler):
            process.send_signal(signal.SIGTERM)
            process.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--monitors", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--timeout", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    for _ in range(args.rounds):
        for in_memory in (True, False):
            checks, scheduler_ms, worker_ms = run(in_memory, args.monitors, args.interval, args.timeout)
            mode = "in memory " if in_memory else "SQLite    "
            cost = f"scheduler {scheduler_ms:.2f} ms/check, worker {worker_ms:.2f} ms/check"
            print(f"{mode} {checks} checks: {cost}", flush=True)


if __name__ == "__main__":
    main()
