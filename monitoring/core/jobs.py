"""The external job being monitored, behind a small interface.

The orchestrator never talks to a job directly: it calls the ``check_job_status`` activity with a
:class:`JobCheckRequest`, and the activity asks the :class:`JobStatusSource` registered under
``request.source``. A new source (an HTTP endpoint, say) is an object with a ``check`` method, added with
:func:`register_job_source` from any module the worker imports: no change to the package. The built-in
simulated job registers through the same door.

The simulated job can misbehave on request, deterministically, so tests and notebooks reproduce faults:

* ``fail_first_attempts = K``: the first ``K`` times it is asked during one monitor run, it raises;
* ``fail_fraction = p``: an attempt fails when a hash of (job id, check number, attempt number) falls
  below ``p``; the same run fails the same attempts every time (no randomness);
* ``hang_seconds = s`` with ``hang_from_check = n``: from check ``n`` on, it takes ``s`` seconds to answer.

The simulated job answers for the moment its check was due (``due_at``, which the orchestrator sends: the
check's planned offset from the monitor's start), not for the moment the check happens to run. A check that
runs late (a busy machine, a worker restart, a suspension, a hang) still reports the job as it was at the
check's planned time, so a scenario gives the same checks and the same result on every run, loaded or not.
A retried check is the same check: every attempt answers for that check's due time, while the waits between
attempts and a hang take real time (they decide whether the monitor gives up at the deadline plus its
grace). ``checked_at`` is always when the job was really asked. Without ``due_at`` (the HTTP API's
``job_status``, or a caller that predates it) the answer is for ``now``. Real sources answer for ``now``: a
real job does not wait for a late check.

Counting attempts needs memory: like a real service, the simulated job remembers (in the worker's
process) how often each run asked it; a restarted worker starts counting afresh.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, Protocol

from monitoring.core.payloads import Payload, from_iso, to_iso
from monitoring.core.schedule import JobStatus

JobOutcome = Literal["Completed", "Failed"]
JOB_OUTCOMES: tuple[str, ...] = ("Completed", "Failed")


@dataclass(frozen=True)
class JobCheckRequest(Payload):
    """Input of the ``check_job_status`` activity (the ``fail``/``hang`` fields drive the simulated job)."""

    job_id: str
    monitor_started_at: str
    job_duration_seconds: float
    job_outcome: JobOutcome
    source: str = "simulated"
    check_number: int = 0
    fail_first_attempts: int = 0
    fail_fraction: float = 0.0
    hang_seconds: float = 0.0
    hang_from_check: int = 1
    due_at: str | None = None  # when the orchestrator planned this check (the simulated job answers for it)
    source_options: dict[str, Any] | None = None  # the request's job_source_options, as validated


@dataclass(frozen=True)
class JobStatusReport(Payload):
    """Output of the ``check_job_status`` activity: what the job said, and when it was asked."""

    job_id: str
    status: JobStatus
    checked_at: str


class SimulatedCheckError(RuntimeError):
    """The simulated job refused to answer (an injected, transient fault)."""


def simulated_job_status(duration_seconds: float, outcome: JobStatus, elapsed_seconds: float) -> JobStatus:
    """The simulated job's status ``elapsed_seconds`` after its monitor started: a pure function.

    It counts in whole milliseconds, the resolution of the due times the orchestrator sends, so floating-point
    noise (12 s scaled by 0.1 is 1.2000000000000002 s) never moves the job's end past the check due then.
    """
    return "Running" if round(elapsed_seconds * 1000) < round(duration_seconds * 1000) else outcome


def due_elapsed_seconds(offset_seconds: float) -> float:
    """The elapsed time the simulated job answers for, at a check due ``offset_seconds`` after the start.

    The orchestrator sends the due time to the millisecond (``to_iso`` truncates) from a start that is a whole
    millisecond, so this is ``offset_seconds`` truncated to the millisecond: 3 x 0.7 s (2.0999999999999996 in
    floating point) is asked as 2.1 s.
    """
    return timedelta(seconds=offset_seconds) // timedelta(milliseconds=1) / 1000


def attempt_fails(job_id: str, check_number: int, attempt: int, fraction: float) -> bool:
    """Whether this attempt falls in the failing ``fraction``: a pure function of its arguments."""
    if fraction <= 0:
        return False
    digest = hashlib.sha256(f"{job_id}:{check_number}:{attempt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


class JobStatusSource(Protocol):
    """Anything that can say how a job is doing right now."""

    def check(self, request: JobCheckRequest, now: datetime) -> JobStatusReport: ...


class SimulatedJobSource:
    """A job that runs for ``job_duration_seconds`` after the monitor started, then ends ``job_outcome``.

    Its answer depends only on the request (its ``due_at`` above all; see this module's docstring), so the
    same scenario gives the same result on every run, on any backend, however late the checks run. Injected
    faults are described in this module's docstring too.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._asked: dict[tuple[str, str], int] = {}  # (job, run start) -> times asked, for fail_first
        self._attempts: dict[tuple[str, str, int], int] = {}  # (job, run start, check) -> attempts

    def _count(self, request: JobCheckRequest) -> tuple[int, int]:
        """This call's number within the run, and its attempt number within the check (both 1-based)."""
        run = (request.job_id, request.monitor_started_at)
        with self._lock:
            asked = self._asked[run] = self._asked.get(run, 0) + 1
            key = (*run, request.check_number)
            attempt = self._attempts[key] = self._attempts.get(key, 0) + 1
        return asked, attempt

    def _forget(self, request: JobCheckRequest) -> None:
        with self._lock:
            self._attempts.pop((request.job_id, request.monitor_started_at, request.check_number), None)

    def check(self, request: JobCheckRequest, now: datetime) -> JobStatusReport:
        if request.fail_first_attempts or request.fail_fraction:
            asked, attempt = self._count(request)
            if asked <= request.fail_first_attempts:
                raise SimulatedCheckError(
                    f"job service unavailable (simulated failure {asked} of {request.fail_first_attempts})"
                )
            if attempt_fails(request.job_id, request.check_number, attempt, request.fail_fraction):
                raise SimulatedCheckError(
                    f"job service unavailable (check {request.check_number}, attempt {attempt}: "
                    f"simulated {request.fail_fraction:.0%} failure rate)"
                )
            self._forget(request)
        if request.hang_seconds > 0 and request.check_number >= request.hang_from_check:
            time.sleep(request.hang_seconds)
            now = datetime.now(timezone.utc)
        answers_for = from_iso(request.due_at) if request.due_at else now
        elapsed = (answers_for - from_iso(request.monitor_started_at)).total_seconds()
        status = simulated_job_status(request.job_duration_seconds, request.job_outcome, elapsed)
        return JobStatusReport(job_id=request.job_id, status=status, checked_at=to_iso(now))


ENTRY_POINT_GROUP = "monitoring.job_sources"
_SOURCES: dict[str, JobStatusSource] = {}
_LOCAL_ONLY: set[str] = set()
_entry_points_loaded = False
logger = logging.getLogger(__name__)


def register_job_source(name: str, source: JobStatusSource, *, local_only: bool = False) -> None:
    """Make ``source`` available as ``job_source=name`` in this process (a worker must register it too).

    The built-in sources register here, and so can any module the worker imports. A source may also offer
    ``validate_options(options: dict) -> dict`` (raising ``ValueError`` with a one-line message): it checks
    and normalises the request's ``job_source_options``; without it the source takes no options.
    ``local_only`` sources run code a request names: the HTTP API refuses them. A source that ignores the
    simulated job's length and outcome says so with ``reads_simulated_job = False``: requests for it leave
    them out of their payload.

    An installed package can register one with no import at all, through the ``monitoring.job_sources``
    entry-point group (``name = "package.module:object"``, an instance or a class to instantiate).
    """
    if not name or not name.isidentifier():
        raise ValueError(f"a job source name must be an identifier, not {name!r}")
    _SOURCES[name] = source
    if local_only:
        _LOCAL_ONLY.add(name)
    else:
        _LOCAL_ONLY.discard(name)


def _load_entry_points() -> None:
    """Register the sources installed packages declare (once per process; a broken one is logged, skipped)."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry_point.name in _SOURCES:
            continue
        try:
            loaded = entry_point.load()
            register_job_source(entry_point.name, loaded() if isinstance(loaded, type) else loaded)
        except Exception as error:  # a plugin's bug must not stop the worker
            logger.warning("job source %r (%s) not loaded: %s", entry_point.name, entry_point.value, error)


def job_source_names() -> tuple[str, ...]:
    """The job sources registered in this process (built-ins first, then in registration order)."""
    _load_entry_points()
    return tuple(_SOURCES)


def job_source(name: str) -> JobStatusSource:
    """The source registered as ``name``; ``ValueError`` naming the registered ones if there is none."""
    _load_entry_points()
    try:
        return _SOURCES[name]
    except KeyError:
        known = ", ".join(_SOURCES)
        raise ValueError(f"job_source must be one of {known}, not {name!r}") from None


def job_source_is_local_only(name: str) -> bool:
    return name in _LOCAL_ONLY


def reads_simulated(name: str) -> bool:
    """Whether the source ``name`` reads the simulated job's ``job_duration_seconds`` and ``job_outcome``:
    yes, unless it says ``reads_simulated_job = False`` (as the sources that ask a real job do)."""
    _load_entry_points()
    return bool(getattr(_SOURCES.get(name), "reads_simulated_job", True))


def validate_job_source(name: Any, options: Any) -> dict[str, Any] | None:
    """Check a request's ``job_source`` and ``job_source_options``; the options as the source keeps them.

    Raises ``ValueError`` with one line a person can act on. ``None`` or ``{}`` options mean none.
    """
    if not isinstance(name, str):
        raise ValueError(f"job_source must be a name, not {name!r}")
    source = job_source(name)
    if options is not None and not isinstance(options, dict):
        raise ValueError(f"job_source_options must be a JSON object, not {type(options).__name__}")
    validate = getattr(source, "validate_options", None)
    if validate is None:
        if options:
            raise ValueError(f"job source {name!r} takes no options, not {', '.join(sorted(options))}")
        return None
    return validate(dict(options or {}))


def check_job(request: JobCheckRequest, now: datetime | None = None) -> JobStatusReport:
    """Ask the request's status source about the job (the body of the ``check_job_status`` activity)."""
    return job_source(request.source).check(request, now or datetime.now(timezone.utc))


register_job_source("simulated", SimulatedJobSource())
