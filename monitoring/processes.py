"""Child processes that must not outlive the command that started them (extra workers, bench workers)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence


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
