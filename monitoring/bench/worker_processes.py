"""Bench worker processes started by the measuring process: the scale-out stack's and the waiting run's.

Each is ``python -m monitoring.bench worker`` on one scheduler (``run_worker_process`` in
:mod:`monitoring.bench.stacks` is its other half). It appends every check it makes to a spool folder that
this process's recorder reads, and touches ``ready-<pid>`` there once its worker is connected.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from monitoring.bench.records import RECORDER
from monitoring.scheduler import process

START_SECONDS = 60.0  # only guards a hang: each one says it is ready as soon as it is


class WorkerProcesses:
    """``count`` bench workers on the scheduler at ``port``; ``settings``: their ``--settings`` JSON."""

    def __init__(self, port: int, count: int = 1, settings: str | None = None) -> None:
        self.command = [sys.executable, "-m", "monitoring.bench", "worker", "--port", str(port)]
        self.count = count
        self.settings = settings
        self.spool = Path(tempfile.mkdtemp(prefix="monitoring-bench-spool-"))
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def pids(self) -> list[int]:
        return [worker.pid for worker in self.processes]

    def start(self) -> WorkerProcesses:
        """Start them and wait until each is ready; stop them all and raise if one exits first."""
        RECORDER.read_spool(self.spool)
        command = [*self.command, "--spool", str(self.spool)]
        command += ["--settings", self.settings] if self.settings is not None else []
        try:
            for _ in range(self.count):
                # stdout stays free for the stack's JSON line; errors still reach stderr.
                self.processes.append(subprocess.Popen(command, stdout=subprocess.DEVNULL))
            deadline = time.monotonic() + START_SECONDS
            while len(list(self.spool.glob("ready-*"))) < self.count:
                if any(worker.poll() is not None for worker in self.processes):
                    raise RuntimeError("a bench worker process exited at start (its error is above)")
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the bench worker processes were not ready within {START_SECONDS:g} s"
                    )
                time.sleep(0.05)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        process.stop_processes(self.processes, wait=10)
        shutil.rmtree(self.spool, ignore_errors=True)
