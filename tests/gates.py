"""A job status source the test drives: each check waits in the real worker until the test lets it answer.

Registered like any job source (``register_job_source``) in the test process, whose worker runs the checks,
so a test knows for certain that a check is in flight, answers when it says so, and can tell whether an
answer was given. It replaces sleeps that hoped to land mid-check.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime

from monitoring.core import jobs
from monitoring.core.jobs import JobCheckRequest, JobStatusReport, register_job_source
from monitoring.core.payloads import to_iso

WAIT_LIMIT = 60.0  # only guards against a hang


class GatedJob:
    """Checks block until :meth:`release` lets the next one answer with the status the test chose."""

    def __init__(self) -> None:
        self.name = f"gate_{uuid.uuid4().hex[:8]}"
        self._changed = threading.Condition()
        self.asked: list[JobCheckRequest] = []  # every check that arrived, in order
        self.answered: list[JobCheckRequest] = []  # those that returned an answer to the worker
        self._answers: list[str] = []  # statuses released, one per check, in order
        self._open = False  # after close(), every check answers "Running" at once
        register_job_source(self.name, self)

    def check(self, request: JobCheckRequest, now: datetime) -> JobStatusReport:
        with self._changed:
            index = len(self.asked)
            self.asked.append(request)
            self._changed.notify_all()
            self._changed.wait_for(lambda: self._open or len(self._answers) > index)
            status = self._answers[index] if len(self._answers) > index else "Running"
            self.answered.append(request)
            self._changed.notify_all()
        return JobStatusReport(job_id=request.job_id, status=status, checked_at=to_iso(now))  # type: ignore[arg-type]

    def wait_asked(self, count: int) -> JobCheckRequest:
        """Block until ``count`` checks have arrived; the last of them."""
        self._wait(lambda: len(self.asked) >= count, f"{count} check(s) to arrive")
        return self.asked[count - 1]

    def wait_answered(self, count: int) -> None:
        self._wait(lambda: len(self.answered) >= count, f"{count} check(s) to answer")

    def release(self, status: str = "Running") -> None:
        """Let the next check (arrived or not yet) answer ``status``."""
        with self._changed:
            self._answers.append(status)
            self._changed.notify_all()

    def close(self) -> None:
        """Let every check answer, now and later (no worker thread stays blocked after a test), and take the
        gate's name out of the registry (tests that list the registered sources do not see it)."""
        with self._changed:
            self._open = True
            self._changed.notify_all()
        jobs._SOURCES.pop(self.name, None)  # the registry has no public removal: a test's own clean-up

    def _wait(self, condition: object, what: str) -> None:
        deadline = time.monotonic() + WAIT_LIMIT
        with self._changed:
            while not condition():  # type: ignore[operator]
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"waited {WAIT_LIMIT:g} s for {what}"
                self._changed.wait(remaining)


def gated_job() -> Iterator[GatedJob]:
    """Body of a fixture: a fresh gate, opened at the end whatever happened."""
    gate = GatedJob()
    try:
        yield gate
    finally:
        gate.close()


class Deliveries:
    """Activity results that workers of this process have handed to the scheduler (the call has returned).

    The SDK worker calls ``_on_activity_execution_completed`` right after its ``CompleteActivityTask`` call to
    the scheduler returns (or fails); the ``deliveries`` fixture hooks it, so a test knows an answer really
    reached the scheduler instead of hoping a sleep was long enough.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self.instances: list[str] = []

    def record(self, instance_id: str) -> None:
        with self._changed:
            self.instances.append(instance_id)
            self._changed.notify_all()

    def wait_for(self, instance_id: str, count: int = 1) -> None:
        deadline = time.monotonic() + WAIT_LIMIT
        with self._changed:
            while self.instances.count(instance_id) < count:
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"no activity result of {instance_id} was delivered in {WAIT_LIMIT:g} s"
                self._changed.wait(remaining)
