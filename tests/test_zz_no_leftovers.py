"""Runs last (moved there by conftest.py, after the notebooks too): nothing this run started may still run."""

import time

from conftest import processes_with_marker


def test_no_process_left_behind() -> None:
    deadline = time.monotonic() + 5
    while processes_with_marker() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_with_marker() == []
