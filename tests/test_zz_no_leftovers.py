"""Runs last (moved there by conftest.py, after the notebooks too): nothing this run started may still run.

Under xdist the controller runs this check instead, once every worker has ended (``tests/parallel.py``).
"""

from conftest import processes_left_behind


def test_no_process_left_behind() -> None:
    assert processes_left_behind() == []
