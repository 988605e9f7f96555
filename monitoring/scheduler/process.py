"""Processes of the local scheduler and of extra workers: start, find, stop, never orphaned.

A scheduler started on demand runs detached (``python -m monitoring scheduler``) and records itself in the
state directory so ``stop-scheduler`` can find it; child workers stop when the command that started them does.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitoring import settings
from monitoring.scheduler.records import HubOptions
from monitoring.scheduler.server import DEFAULT_PORT, DEFAULT_TASKHUB, LocalScheduler, SchedulerError, probe


@dataclass(frozen=True)
class SchedulerRecord:
    """What a running scheduler process writes about itself, so it can be found and stopped later."""

    pid: int
    port: int
    taskhub: str
    owner: str = ""  # who started it on demand ("tutorial": a notebook stops it when it closes)

    @staticmethod
    def path(port: int) -> Path:
        return settings.state_dir() / f"scheduler-{port}.json"

    def save(self) -> None:
        self.path(self.port).write_text(json.dumps(self.__dict__))

    @classmethod
    def load(cls, port: int) -> SchedulerRecord | None:
        try:
            return cls(**json.loads(cls.path(port).read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(self.port).unlink()


def _is_running_scheduler(pid: int) -> bool:
    """True if ``pid`` is alive and is a ``monitoring scheduler`` process (not a reused pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    proc = Path(f"/proc/{pid}")
    if not proc.exists():  # no procfs (macOS): trust the record
        return True
    with contextlib.suppress(OSError):
        # A zombie (exited, not yet reaped by its parent) still answers kill(0).
        if (proc / "stat").read_text().split(") ", 1)[1].startswith("Z"):
            return False
        command = (proc / "cmdline").read_bytes().split(b"\0")
        return b"monitoring" in command and b"scheduler" in command
    return False


def state_file(port: int, taskhub: str, folder: Path | None = None) -> Path:
    """The SQLite file a scheduler process on ``port`` keeps task hub ``taskhub`` in, in ``folder`` (by
    default this process's state folder, ``MONITORING_STATE_DIR``)."""
    return (folder or settings.state_dir()) / f"scheduler-{port}-{taskhub}.sqlite3"


def run_scheduler_foreground(
    port: int = DEFAULT_PORT,
    taskhub: str = DEFAULT_TASKHUB,
    *,
    in_memory: bool = False,
    options: HubOptions | None = None,
    owner: str = "",
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM, recording this process so ``stop_scheduler_process`` can find it.

    The task hub is kept in :func:`state_file` (unless ``in_memory``), so a restart continues it."""
    state = None if in_memory else state_file(port, taskhub)
    scheduler = LocalScheduler(port, taskhub=taskhub, state=state, options=options).start()
    record = SchedulerRecord(pid=os.getpid(), port=scheduler.port, taskhub=taskhub, owner=owner)
    record.save()
    stopping = False

    def request_stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if on_ready:
            on_ready(scheduler.address)
        while not stopping:
            time.sleep(0.2)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        scheduler.stop()
        record.remove()


def spawn_scheduler_process(
    port: int = DEFAULT_PORT,
    taskhub: str = DEFAULT_TASKHUB,
    wait: float = 20.0,
    owner: str = "",
    *,
    in_memory: bool = False,
    max_active_instances: int | None = None,
) -> int:
    """Start ``python -m monitoring scheduler`` detached, wait until it answers; return its pid.

    ``in_memory``: keep the task hub in memory only (``--in-memory``), not in its state file;
    ``max_active_instances``: its ``--max-active-instances`` (default: the scheduler's)."""
    log_path = settings.state_dir() / f"scheduler-{port}.log"
    command = [sys.executable, "-m", "monitoring", "scheduler", "--port", str(port), "--taskhub", taskhub]
    command += ["--in-memory"] if in_memory else []
    command += ["--max-active-instances", str(max_active_instances)] if max_active_instances else []
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            [*command, "--owner", owner] if owner else command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
            raise SchedulerError(f"the local scheduler on port {port} exited at start: {tail[0]}")
        if probe(f"127.0.0.1:{port}", timeout=0.5):
            return process.pid
        time.sleep(0.1)
    process.terminate()
    raise SchedulerError(
        f"the local scheduler on port {port} did not answer within {wait:g} s (log: {log_path})"
    )


def stop_scheduler_process(port: int = DEFAULT_PORT, wait: float = 10.0) -> bool:
    """Stop the scheduler process recorded for ``port``; False if none was running."""
    record = SchedulerRecord.load(port)
    if record is None or not _is_running_scheduler(record.pid):
        if record:
            record.remove()
        return False
    os.kill(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + wait
    while _is_running_scheduler(record.pid):
        if time.monotonic() > deadline:
            os.kill(record.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    record.remove()
    return True


def scheduler_owner(port: int = DEFAULT_PORT) -> str | None:
    """Who started the scheduler process running on ``port`` ("" for a person); None if none runs."""
    record = SchedulerRecord.load(port)
    return record.owner if record is not None and _is_running_scheduler(record.pid) else None


def kill_scheduler_process(port: int = DEFAULT_PORT, wait: float = 10.0) -> SchedulerRecord | None:
    """``kill -9`` the scheduler process recorded for ``port`` (a crash, on purpose); returns its record
    (start it again with :func:`spawn_scheduler_process`); None if none was running."""
    record = SchedulerRecord.load(port)
    if record is None or not _is_running_scheduler(record.pid):
        return None
    os.kill(record.pid, signal.SIGKILL)
    deadline = time.monotonic() + wait
    while _is_running_scheduler(record.pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return record


def stop_with_parent(parent: int, poll_seconds: float = 0.5) -> None:
    """Send this process SIGTERM (its Ctrl-C path) once ``parent`` is gone, from a daemon thread."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_seconds)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def stop_processes(processes: Sequence[subprocess.Popen[bytes]], wait: float = 20.0) -> None:
    """SIGTERM every process still running, wait for each, and SIGKILL any that does not stop in time."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(wait)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
