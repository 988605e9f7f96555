"""The monitor's data: its input (:class:`MonitorRequest`), custom status, result and carried progress.

Field names follow the official monitoring sample (``job_id``, ``polling_interval_seconds``,
``timeout_seconds``; ``final_status``, ``checks_performed``, ...), so its client and JSON readers work as is.
Everything is a dataclass; ``to_payload``/``from_payload`` convert to and from the plain JSON dicts the
Durable Task SDK stores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Any

from durabletask import task

from monitoring.core.jobs import JOB_OUTCOMES, JobCheckRequest, JobOutcome, job_source_names
from monitoring.core.payloads import InvalidRequestError, Payload, field_dict
from monitoring.core.schedule import CheckSchedule, FinalStatus, JobStatus

DEFAULT_POLLING_INTERVAL_SECONDS = 5.0
DEFAULT_TIMEOUT_SECONDS = 30.0
# With the default 5 s interval the simulated job is first seen finished on the 4th check (at 15 s), as in
# the official sample's "completed" example; 12 s leaves a wide margin around the 10 s and 15 s checks.
DEFAULT_JOB_DURATION_SECONDS = 12.0
# A monitor starts a fresh history (continue_as_new) every ``checks_per_generation`` checks, so the total
# is not bounded by the backend; this cap only catches typos such as an interval in the wrong unit.
MAX_CHECKS_PER_MONITOR = 1_000_000
# The in-memory backend refuses an instance past 10,000 history events. One check costs at most about
# 8 events per attempt (activity, wait timer, retry timer, and the episode markers around each), so a
# generation must fit ``checks_per_generation * 8 * retry_max_attempts`` into this budget.
HISTORY_EVENTS_PER_ATTEMPT = 8
HISTORY_BUDGET_PER_GENERATION = 8000
# Every episode replays the generation's whole history, so a short generation keeps the worker's CPU per
# check flat (measured by ``python -m monitoring.bench``: 100 checks per generation tripled it by the
# 100th check; 10 keeps the 1,000th check as cheap as the 10th).
DEFAULT_CHECKS_PER_GENERATION = 10
DEFAULT_RETRY_MAX_ATTEMPTS = 3
DEFAULT_RETRY_FIRST_INTERVAL_SECONDS = 1.0
DEFAULT_RETRY_BACKOFF_COEFFICIENT = 2.0
DEFAULT_DEADLINE_GRACE_SECONDS = 10.0
MAX_JOB_ID_LENGTH = 200


def _positive_seconds(name: str, value: Any, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRequestError(f"{name} must be a number of seconds, not {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidRequestError(f"{name} must be a finite number of seconds, not {value!r}")
    if number < 0 or (number == 0 and not allow_zero):
        bound = "zero or more" if allow_zero else "greater than zero"
        raise InvalidRequestError(f"{name} must be {bound}, not {value!r}")
    return number


def _whole_number(name: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise InvalidRequestError(f"{name} must be a whole number, not {value!r}")
    if value < minimum:
        raise InvalidRequestError(f"{name} must be {minimum} or more, not {value!r}")
    return int(value)


def _at_least_one(name: str, value: Any) -> float:
    number = _positive_seconds(name, value)
    if number < 1:
        raise InvalidRequestError(f"{name} must be 1 or more, not {value!r}")
    return number


@dataclass(frozen=True)
class MonitorRequest:
    """Input of ``monitoring_job_orchestrator``: which job to watch, how often, for how long.

    ``job_duration_seconds`` and ``job_outcome`` describe the simulated job: it reports ``Running`` until
    that many seconds after the monitor started, then ``job_outcome``. The ``job_fail_*`` and ``job_hang_*``
    fields make it misbehave, deterministically (see :mod:`monitoring.core.jobs`).

    The other optional fields: ``backoff_factor`` and ``max_interval_seconds`` let the interval grow
    (:mod:`monitoring.core.schedule`); ``retry_*`` configure the retries of a failing check (a
    ``task.RetryPolicy``); ``deadline_grace_seconds`` is how long past the deadline the monitor still
    waits for a check (a slow or hanging one, or checks caught up after a stall) before it ends ``Timeout``;
    ``checks_per_generation`` is how many checks run
    before the monitor continues as new with a fresh history; ``job_source`` picks the
    registered job source the check asks (:func:`monitoring.core.jobs.register_job_source`).
    """

    job_id: str
    polling_interval_seconds: float = DEFAULT_POLLING_INTERVAL_SECONDS
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    job_duration_seconds: float = DEFAULT_JOB_DURATION_SECONDS
    job_outcome: JobOutcome = "Completed"
    backoff_factor: float = 1.0
    max_interval_seconds: float | None = None
    retry_max_attempts: int = DEFAULT_RETRY_MAX_ATTEMPTS
    retry_first_interval_seconds: float = DEFAULT_RETRY_FIRST_INTERVAL_SECONDS
    retry_backoff_coefficient: float = DEFAULT_RETRY_BACKOFF_COEFFICIENT
    deadline_grace_seconds: float = DEFAULT_DEADLINE_GRACE_SECONDS
    checks_per_generation: int = DEFAULT_CHECKS_PER_GENERATION
    job_fail_first_attempts: int = 0
    job_fail_fraction: float = 0.0
    job_hang_seconds: float = 0.0
    job_hang_from_check: int = 1
    job_source: str = "simulated"

    def __post_init__(self) -> None:
        if not isinstance(self.job_id, str) or not self.job_id.strip():
            raise InvalidRequestError(f"job_id must be a non-empty string, not {self.job_id!r}")
        if len(self.job_id) > MAX_JOB_ID_LENGTH:
            raise InvalidRequestError(f"job_id is longer than {MAX_JOB_ID_LENGTH} characters")
        interval = _positive_seconds("polling_interval_seconds", self.polling_interval_seconds)
        timeout = _positive_seconds("timeout_seconds", self.timeout_seconds)
        duration = _positive_seconds("job_duration_seconds", self.job_duration_seconds, allow_zero=True)
        if interval > timeout:
            raise InvalidRequestError(
                f"polling_interval_seconds ({interval:g}) is larger than timeout_seconds ({timeout:g}): "
                "the monitor would never get a second check"
            )
        if self.job_outcome not in JOB_OUTCOMES:
            raise InvalidRequestError(
                f"job_outcome must be one of {', '.join(JOB_OUTCOMES)}, not {self.job_outcome!r}"
            )
        backoff = _at_least_one("backoff_factor", self.backoff_factor)
        cap = self.max_interval_seconds
        if cap is not None:
            cap = _positive_seconds("max_interval_seconds", cap)
            if cap < interval:
                raise InvalidRequestError(
                    f"max_interval_seconds ({cap:g}) is smaller than polling_interval_seconds ({interval:g})"
                )
        attempts = _whole_number("retry_max_attempts", self.retry_max_attempts, minimum=1)
        per_generation = _whole_number("checks_per_generation", self.checks_per_generation, minimum=1)
        if per_generation * HISTORY_EVENTS_PER_ATTEMPT * attempts > HISTORY_BUDGET_PER_GENERATION:
            most = HISTORY_BUDGET_PER_GENERATION // (HISTORY_EVENTS_PER_ATTEMPT * attempts)
            raise InvalidRequestError(
                f"checks_per_generation {per_generation} with {attempts} attempt(s) per check could outgrow "
                f"the backend's history limit; use at most {most}"
            )
        if self.job_source not in job_source_names():
            raise InvalidRequestError(
                f"job_source must be one of {', '.join(job_source_names())}, not {self.job_source!r}"
            )
        fraction = self.job_fail_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
            raise InvalidRequestError(f"job_fail_fraction must be a number from 0 to 1, not {fraction!r}")
        values = {
            "polling_interval_seconds": interval,
            "timeout_seconds": timeout,
            "job_duration_seconds": duration,
            "backoff_factor": backoff,
            "max_interval_seconds": cap,
            "retry_max_attempts": attempts,
            "retry_first_interval_seconds": _positive_seconds(
                "retry_first_interval_seconds", self.retry_first_interval_seconds, allow_zero=True
            ),
            "retry_backoff_coefficient": _at_least_one(
                "retry_backoff_coefficient", self.retry_backoff_coefficient
            ),
            "deadline_grace_seconds": _positive_seconds(
                "deadline_grace_seconds", self.deadline_grace_seconds
            ),
            "checks_per_generation": per_generation,
            "job_fail_first_attempts": _whole_number(
                "job_fail_first_attempts", self.job_fail_first_attempts, minimum=0
            ),
            "job_fail_fraction": float(fraction),
            "job_hang_seconds": _positive_seconds("job_hang_seconds", self.job_hang_seconds, allow_zero=True),
            "job_hang_from_check": _whole_number("job_hang_from_check", self.job_hang_from_check, minimum=1),
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)
        checks = self.schedule().planned_check_count
        if checks > MAX_CHECKS_PER_MONITOR:
            raise InvalidRequestError(
                f"{timeout:g} s at one check every {interval:g} s plans {checks} checks; "
                f"at most {MAX_CHECKS_PER_MONITOR} are allowed per monitor (use a longer interval)"
            )

    def to_payload(self) -> dict[str, Any]:
        """The official sample's fields and the simulated job's, plus any optional field not at its default.

        A plain request therefore has the same five-field shape as before these options existed.
        """
        payload = field_dict(self)
        for name, default in _OPTIONAL_DEFAULTS.items():
            if payload[name] == default:
                del payload[name]
        return payload

    def retry_policy(self) -> task.RetryPolicy:
        """How a failing check is retried (the orchestrator drives the attempts so each error is visible)."""
        return task.RetryPolicy(
            first_retry_interval=timedelta(seconds=self.retry_first_interval_seconds),
            max_number_of_attempts=self.retry_max_attempts,
            backoff_coefficient=self.retry_backoff_coefficient,
        )

    def check_request(
        self, started_at: str, number: int, due_at: str | None = None, *, with_faults: bool = True
    ) -> JobCheckRequest:
        """The input of check ``number`` of a monitor that started at ``started_at``, due at ``due_at``.

        ``with_faults=False`` leaves out the simulated job's injected failures and hangs (a one-off look).
        """
        faults = with_faults
        return JobCheckRequest(
            job_id=self.job_id,
            monitor_started_at=started_at,
            job_duration_seconds=self.job_duration_seconds,
            job_outcome=self.job_outcome,
            source=self.job_source,
            check_number=number,
            fail_first_attempts=self.job_fail_first_attempts if faults else 0,
            fail_fraction=self.job_fail_fraction if faults else 0.0,
            hang_seconds=self.job_hang_seconds if faults else 0.0,
            hang_from_check=self.job_hang_from_check,
            due_at=due_at,
        )

    def schedule(self) -> CheckSchedule:
        interval, timeout = self.polling_interval_seconds, self.timeout_seconds
        return CheckSchedule(interval, timeout, self.backoff_factor, self.max_interval_seconds)

    @classmethod
    def from_payload(cls, payload: Any, *, default_job_id: str) -> MonitorRequest:
        """Build from a JSON object; missing fields take defaults, unknown ones are an error."""
        if payload is None:
            payload = {}
        if not isinstance(payload, dict):
            raise InvalidRequestError(
                f"the monitor input must be a JSON object, not {type(payload).__name__}"
            )
        unknown = sorted(set(payload) - {f.name for f in fields(cls)})
        if unknown:
            allowed = ", ".join(f.name for f in fields(cls))
            raise InvalidRequestError(f"unknown field(s) {', '.join(unknown)}; allowed: {allowed}")
        values = dict(payload)
        if values.get("job_id") is None:
            values["job_id"] = default_job_id
        return cls(**values)


_BASE_FIELDS = (
    "job_id",
    "polling_interval_seconds",
    "timeout_seconds",
    "job_duration_seconds",
    "job_outcome",
)
# The fields after those, each with its default: left out of the payload while at the default.
_OPTIONAL_DEFAULTS = {field.name: field.default for field in fields(MonitorRequest)[len(_BASE_FIELDS) :]}


@dataclass(frozen=True)
class MonitorStatus(Payload):
    """The custom status the orchestrator publishes before the first check and after every check."""

    job_id: str
    status: JobStatus
    check_count: int
    last_check_time: str | None
    elapsed_seconds: float
    next_check_time: str | None
    started_at: str
    deadline: str
    polling_interval_seconds: float
    timeout_seconds: float
    final_status: FinalStatus | None = None
    last_error: str | None = None
    reason: str | None = None
    generation: int = 1
    failed_attempts: int = 0  # failed attempts of the check in progress: > 0 means it is being retried


@dataclass(frozen=True)
class MonitorResult(Payload):
    """The orchestration's output, in the official sample's shape.

    ``reason`` says in words why a monitor ended ``Failed`` by its own checks, ``Cancelled``, or ``Timeout``
    because a check did not answer; it is left out of the payload when there is nothing to add.
    """

    job_id: str
    final_status: FinalStatus
    checks_performed: int
    monitoring_duration_seconds: float
    reason: str | None = None

    def to_payload(self) -> dict[str, Any]:
        payload = super().to_payload()
        if payload["reason"] is None:
            del payload["reason"]
        return payload


@dataclass(frozen=True)
class MonitorProgress(Payload):
    """What one generation hands the next through ``continue_as_new``: the run so far."""

    started_at: str
    checks_done: int
    generation: int
    last_status: JobStatus = "Pending"
    last_check_time: str | None = None
    last_error: str | None = None
    failed_attempts: int = 0


CONTINUATION_KEYS = frozenset({"request", "progress"})


def continuation_payload(request: MonitorRequest, progress: MonitorProgress) -> dict[str, Any]:
    """The input of the next generation of a monitor."""
    return {"request": request.to_payload(), "progress": progress.to_payload()}


def parse_monitor_input(
    payload: Any, *, default_job_id: str
) -> tuple[MonitorRequest, MonitorProgress | None]:
    """A first generation's input (a :class:`MonitorRequest`) or a later one's (request and progress)."""
    if isinstance(payload, dict) and set(payload) == CONTINUATION_KEYS:
        request = MonitorRequest.from_payload(payload["request"], default_job_id=default_job_id)
        return request, MonitorProgress.from_payload(payload["progress"])
    return MonitorRequest.from_payload(payload, default_job_id=default_job_id), None
