"""Runs last (file order): nothing this test run started may still be running."""

import time

from conftest import processes_with_marker


def test_no_process_left_behind() -> None:
    deadline = time.monotonic() + 5
    while processes_with_marker() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_with_marker() == []
