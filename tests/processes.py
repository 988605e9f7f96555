"""Looking at the processes a test started, through Linux's /proc."""

from __future__ import annotations

import time
from pathlib import Path


def child_pids(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def command_line(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_text().split("\0")[:-1]


def command_line_once_started(pid: int, marker: str) -> list[str]:
    """A child's command line once it shows ``marker``: until its exec is done it shows its parent's, or
    nothing. The limit only guards against a hang."""
    deadline = time.monotonic() + 60
    while marker not in (line := command_line(pid)) and time.monotonic() < deadline:
        time.sleep(0.01)
    return line


def wait_until_gone(pid: int, limit: float = 10) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
                return True  # exited, waiting to be reaped by its parent
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False
