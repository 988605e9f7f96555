"""Recording every check the bench makes (the ``bench`` job source), and measuring a process."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import TextIO

from monitoring.core.jobs import JobCheckRequest, JobStatusReport, SimulatedJobSource, register_job_source
from monitoring.core.payloads import from_iso

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- recording the checks ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckRecord:
    job_id: str
    check_number: int
    due: float  # epoch seconds
    actual: float
    cpu: float  # CPU seconds of the process that ran the check, at the time it ran
    pid: int = 0


class RecordingJobSource(SimulatedJobSource):
    """The simulated job, noting when each check was due, when it ran, and the process CPU time then.

    Checks run in this process are kept in memory. A worker process of the scale-out stack appends its
    records to a file in ``spool`` instead (:meth:`spool_to`); :meth:`read_spool` gathers them here.
    """

    def __init__(self) -> None:
        super().__init__()
        self._records: list[CheckRecord] = []
        self._records_lock = threading.Lock()
        self._counted: dict[str, tuple[int, int]] = {}  # prefix -> (records scanned, matching)
        self._spool_out: TextIO | None = None
        self._spool_in: Path | None = None
        self._spool_offsets: dict[Path, int] = {}

    def spool_to(self, directory: Path) -> None:
        """Append every check made in this process to ``directory/records-<pid>.jsonl``."""
        if self._spool_out is not None:
            self._spool_out.close()
        self._spool_out = open(directory / f"records-{os.getpid()}.jsonl", "a", buffering=1)  # noqa: SIM115

    def read_spool(self, directory: Path) -> None:
        """Gather the records that worker processes append under ``directory``."""
        self._spool_in = directory

    def check(self, request: JobCheckRequest, now: datetime) -> JobStatusReport:
        due = from_iso(request.due_at).timestamp() if request.due_at else now.timestamp()
        record = CheckRecord(
            request.job_id, request.check_number, due, now.timestamp(), time.process_time(), os.getpid()
        )
        with self._records_lock:
            if self._spool_out is not None:
                self._spool_out.write(json.dumps(asdict(record)) + "\n")
            else:
                self._records.append(record)
        return super().check(request, now)

    def _gather(self) -> None:
        """Move complete lines appended to the spool files since the last call into memory (lock held)."""
        if self._spool_in is None:
            return
        for path in sorted(self._spool_in.glob("records-*.jsonl")):
            with open(path, "rb") as spool:
                spool.seek(self._spool_offsets.get(path, 0))
                data = spool.read()
            complete = data[: data.rfind(b"\n") + 1]
            self._spool_offsets[path] = self._spool_offsets.get(path, 0) + len(complete)
            self._records.extend(CheckRecord(**json.loads(line)) for line in complete.splitlines())

    def records(self, job_prefix: str) -> list[CheckRecord]:
        with self._records_lock:
            self._gather()
            return [record for record in self._records if record.job_id.startswith(job_prefix)]

    def count(self, job_prefix: str) -> int:
        """How many checks of ``job_prefix`` so far; counts only the records added since the last call."""
        with self._records_lock:
            self._gather()
            scanned, found = self._counted.get(job_prefix, (0, 0))
            found += sum(1 for record in self._records[scanned:] if record.job_id.startswith(job_prefix))
            self._counted[job_prefix] = (len(self._records), found)
            return found


RECORDER = RecordingJobSource()
register_job_source("bench", RECORDER)


# --- measuring a process -------------------------------------------------------------------------------


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far: this process's from its own clock (nanoseconds), another's
    from ``/proc/<pid>/stat`` (clock ticks, 10 ms: a few trivial checks can take less than one)."""
    if pid == os.getpid():
        return time.process_time()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def process_memory_mb(pid: int, key: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of ``pid`` in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    raise LookupError(f"{key} not found for pid {pid}")


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]
