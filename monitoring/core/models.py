"""The monitor's data: its input (:class:`MonitorRequest`), custom status, result and carried progress.

Field names follow the official monitoring sample (``job_id``, ``polling_interval_seconds``,
``timeout_seconds``; ``final_status``, ``checks_performed``, ...), so its client and JSON readers work as is.
Everything is a dataclass; ``to_payload``/``from_payload`` convert to and from the plain JSON dicts the
Durable Task SDK stores.
"""

from __future__ import annotations

import functools
import math
import uuid
from dataclasses import dataclass, fields
from dataclasses import field as dataclass_field
from datetime import timedelta
from typing import Annotated, Any

from durabletask import task
from pydantic import BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError, model_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass

from monitoring.core.jobs import JOB_OUTCOMES, JobCheckRequest, JobOutcome, job_source_names, reads_simulated
from monitoring.core.notify import check_notify
from monitoring.core.payloads import InvalidRequestError, Payload, field_dict
from monitoring.core.schedule import CheckSchedule
from monitoring.core.sources import resolve_job_source
from monitoring.core.validation import (
    MAX_SECONDS,
    invalid_request,
    number,
    plain,
    seconds,
    shown,
    text,
    whole,
)

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
MAX_STATUS_URL_LENGTH = 2000
MAX_STATUS_FIELD_LENGTH = 200
MAX_BACKOFF_FACTOR = 10.0
MAX_RETRY_ATTEMPTS = 100
MAX_CHECKS_PER_GENERATION = HISTORY_BUDGET_PER_GENERATION // HISTORY_EVENTS_PER_ATTEMPT


Seconds = seconds()
SecondsOrZero = seconds(0)
Factor = number(1, MAX_BACKOFF_FACTOR)
Fraction = number(0, 1)
Attempts = whole(1, MAX_RETRY_ATTEMPTS)
PerGeneration = whole(1, MAX_CHECKS_PER_GENERATION)
Count = whole(0, MAX_CHECKS_PER_MONITOR)
CheckNumber = whole(1, MAX_CHECKS_PER_MONITOR)


def _nullable(schema: dict[str, Any]) -> None:
    """Show a field that takes ``null`` (meaning: not given) as ``string or null`` in the JSON schema."""
    string = {key: schema.pop(key) for key in ("type", "minLength", "maxLength") if key in schema}
    schema["anyOf"] = [string, {"type": "null"}]


def new_job_id() -> str:
    """A job id for a request that names none: ``job-<uuid>``."""
    return f"job-{uuid.uuid4()}"


def _job_id(value: Any) -> str:
    """``null`` means "no job id given", as an omitted field does: a new ``job-<uuid>``."""
    return new_job_id() if value is None else value


def _job_outcome(value: Any) -> str:
    if value not in JOB_OUTCOMES:
        raise InvalidRequestError(
            field="job_outcome",
            message=f"job_outcome must be one of {', '.join(JOB_OUTCOMES)}, not {shown(value)}",
        )
    return value


def _job_source(value: Any) -> str:
    names = job_source_names()
    if not isinstance(value, str) or value not in names:
        raise InvalidRequestError(
            field="job_source", message=f"job_source must be one of {', '.join(names)}, not {shown(value)}"
        )
    return value


JobId = Annotated[
    text(MAX_JOB_ID_LENGTH),
    BeforeValidator(_job_id),
    Field(description="the job to watch; omitted or null: a new job-<uuid>", json_schema_extra=_nullable),
]


@pydantic_dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class MonitorRequest:
    """Input of ``monitoring_job_orchestrator``: which job to watch, how often, for how long.

    It is a pydantic dataclass, the one validation of every edge: build it from keywords (the CLI, the
    notebooks, Python), from JSON with :meth:`from_payload` (the orchestrator) or as the HTTP API's body
    (FastAPI, which also draws the OpenAPI schema from it). Bad values raise :class:`InvalidRequestError`
    with one line naming the field.

    ``job_duration_seconds`` and ``job_outcome`` describe the simulated job: it reports ``Running`` until
    that many seconds after the monitor started, then ``job_outcome``. The ``job_fail_*`` and ``job_hang_*``
    fields make it misbehave, deterministically (see :mod:`monitoring.core.jobs`).

    The other optional fields: ``backoff_factor`` and ``max_interval_seconds`` let the interval grow
    (:mod:`monitoring.core.schedule`); ``retry_*`` configure the retries of a failing check (a
    ``task.RetryPolicy``); ``deadline_grace_seconds`` is how long past the deadline the monitor still
    waits for a check (a slow or hanging one, or checks caught up after a stall) before it ends ``Timeout``;
    ``checks_per_generation`` is how many checks run before the monitor continues as new with a fresh
    history; ``job_source`` picks the registered job source the check asks
    (:func:`monitoring.core.jobs.register_job_source`), ``job_source_options`` configure it
    (:mod:`monitoring.core.sources`); ``status_url``/``status_field`` are shorthand for the ``http`` source.
    """

    job_id: JobId = Field(default_factory=new_job_id)
    polling_interval_seconds: Seconds = DEFAULT_POLLING_INTERVAL_SECONDS
    timeout_seconds: Seconds = DEFAULT_TIMEOUT_SECONDS
    job_duration_seconds: SecondsOrZero = DEFAULT_JOB_DURATION_SECONDS
    job_outcome: Annotated[JobOutcome, BeforeValidator(_job_outcome)] = "Completed"
    backoff_factor: Factor = 1.0
    max_interval_seconds: Seconds | None = None
    retry_max_attempts: Attempts = DEFAULT_RETRY_MAX_ATTEMPTS
    retry_first_interval_seconds: SecondsOrZero = DEFAULT_RETRY_FIRST_INTERVAL_SECONDS
    retry_backoff_coefficient: Factor = DEFAULT_RETRY_BACKOFF_COEFFICIENT
    deadline_grace_seconds: Seconds = DEFAULT_DEADLINE_GRACE_SECONDS
    checks_per_generation: PerGeneration = DEFAULT_CHECKS_PER_GENERATION
    job_fail_first_attempts: Count = 0
    job_fail_fraction: Fraction = 0.0
    job_hang_seconds: SecondsOrZero = 0.0
    job_hang_from_check: CheckNumber = 1
    job_source: Annotated[str, BeforeValidator(_job_source), Field(description="a registered job source")] = (
        "simulated"
    )
    # Any JSON here: resolve_job_source validates it (and names the field). Not hashed (requests are cache
    # keys; a dict is not hashable); equality still compares it.
    job_source_options: Annotated[Any, Field(description="the job source's options, a JSON object")] = (
        dataclass_field(default=None, hash=False)
    )
    status_url: Annotated[
        text(MAX_STATUS_URL_LENGTH) | None, Field(description="shorthand for the http source's url")
    ] = None
    status_field: Annotated[
        text(MAX_STATUS_FIELD_LENGTH) | None, Field(description="shorthand for the http source's field")
    ] = None
    notify_url: Annotated[
        text(MAX_STATUS_URL_LENGTH) | None,
        Field(description="http(s) URL the result is POSTed to, at the end"),
    ] = None
    notify_headers: Annotated[
        dict[str, str] | None, Field(description="headers of that POST; ${NAME}: a worker's variable")
    ] = dataclass_field(default=None, hash=False)

    @model_validator(mode="after")
    def _consistent(self) -> MonitorRequest:
        """The checks that span several fields (each names the field to change)."""
        check_notify(self.notify_url, self.notify_headers)
        shorthand = self.status_url is not None or self.status_field is not None
        try:
            source, options = resolve_job_source(
                self.job_source, self.job_source_options, self.status_url, self.status_field
            )
        except ValueError as error:
            field = "status_url" if shorthand else "job_source_options"
            raise InvalidRequestError(str(error), field) from None
        # The request carries its source once: status_url/status_field become the http source's options.
        names = ("job_source", "job_source_options", "status_url", "status_field")
        for name, value in zip(names, (source, options, None, None), strict=True):
            object.__setattr__(self, name, value)
        interval, timeout, cap = (
            self.polling_interval_seconds,
            self.timeout_seconds,
            self.max_interval_seconds,
        )
        if interval > timeout:
            raise InvalidRequestError(
                f"polling_interval_seconds ({interval:g}) is larger than timeout_seconds ({timeout:g}): "
                "the monitor would never get a second check",
                "polling_interval_seconds",
            )
        if cap is not None and cap < interval:
            raise InvalidRequestError(
                f"max_interval_seconds ({cap:g}) is smaller than polling_interval_seconds ({interval:g})",
                "max_interval_seconds",
            )
        attempts, per_generation = self.retry_max_attempts, self.checks_per_generation
        if per_generation * HISTORY_EVENTS_PER_ATTEMPT * attempts > HISTORY_BUDGET_PER_GENERATION:
            most = HISTORY_BUDGET_PER_GENERATION // (HISTORY_EVENTS_PER_ATTEMPT * attempts)
            raise InvalidRequestError(
                f"checks_per_generation {per_generation} with {attempts} attempt(s) per check could "
                f"outgrow the backend's history limit; use at most {most}",
                "checks_per_generation",
            )
        first, growth = self.retry_first_interval_seconds, self.retry_backoff_coefficient
        if (
            first > 0
            and attempts > 2
            and math.log(first / MAX_SECONDS) + (attempts - 2) * math.log(growth) > 0
        ):
            raise InvalidRequestError(
                f"retry_backoff_coefficient {growth:g} over retry_max_attempts {attempts} grows the retry "
                f"waits from {first:g} s past {MAX_SECONDS} s: use fewer attempts or a smaller coefficient",
                "retry_backoff_coefficient",
            )
        checks = self.schedule().planned_check_count
        if checks > MAX_CHECKS_PER_MONITOR:
            raise InvalidRequestError(
                f"polling_interval_seconds {plain(interval)} with timeout_seconds {plain(timeout)} plans "
                f"{checks} checks; at most {MAX_CHECKS_PER_MONITOR} are allowed per monitor "
                "(use a longer interval)",
                "polling_interval_seconds",
            )
        return self

    def to_payload(self) -> dict[str, Any]:
        """The official sample's fields and the simulated job's, plus any optional field not at its default.

        A plain request therefore has the same five-field shape as before these options existed; one for a
        source that asks a real job (``http``, ``callable``) leaves out the simulated job's two fields.
        """
        dropped = () if reads_simulated(self.job_source) else SIMULATED_JOB_FIELDS
        payload = {name: value for name, value in field_dict(self).items() if name not in dropped}
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
            source_options=self.job_source_options,
        )

    def schedule(self) -> CheckSchedule:
        interval, timeout = self.polling_interval_seconds, self.timeout_seconds
        return CheckSchedule(interval, timeout, self.backoff_factor, self.max_interval_seconds)

    @classmethod
    def from_payload(cls, payload: Any, *, default_job_id: str) -> MonitorRequest:
        """Build from a JSON object; missing fields take defaults (``job_id``: ``default_job_id``), unknown
        ones are an error."""
        if payload is None:
            payload = {}
        if not isinstance(payload, dict):
            raise InvalidRequestError(f"the monitor input must be a JSON object, not {shown(payload)}")
        if payload.get("job_id") is None:
            payload = {**payload, "job_id": default_job_id}
        try:
            return _REQUEST.validate_python(payload)
        except ValidationError as error:
            raise invalid_request(error, allowed=REQUEST_FIELDS) from None


_REQUEST: TypeAdapter[MonitorRequest] = TypeAdapter(MonitorRequest)
REQUEST_FIELDS: tuple[str, ...] = tuple(field.name for field in fields(MonitorRequest))
_validated_init = MonitorRequest.__init__


@functools.wraps(_validated_init)
def _init(self: MonitorRequest, *args: Any, **kwargs: Any) -> None:
    """Pydantic's own ``__init__``, raising the package's one-line :class:`InvalidRequestError`."""
    try:
        _validated_init(self, *args, **kwargs)
    except ValidationError as error:
        raise invalid_request(error, allowed=REQUEST_FIELDS) from None


MonitorRequest.__init__ = _init  # type: ignore[method-assign]


SIMULATED_JOB_FIELDS = ("job_duration_seconds", "job_outcome")  # what the simulated job (and its kin) reads
_BASE_FIELDS = ("job_id", "polling_interval_seconds", "timeout_seconds", *SIMULATED_JOB_FIELDS)
# The fields after those, each with its default: left out of the payload while at the default.
_OPTIONAL_DEFAULTS = {field.name: field.default for field in fields(MonitorRequest)[len(_BASE_FIELDS) :]}


@dataclass(frozen=True)
class MonitorStatus(Payload):
    """The custom status the orchestrator publishes before the first check and after every check.

    The orchestrator fills every field; a status read from elsewhere (:meth:`Payload.read`: another
    worker's ``monitoring_job_orchestrator`` may publish fewer fields, such as the official sample's
    ``job_id``, ``status``, ``check_count``, ``last_check_time``) leaves the ones it lacks at None.
    """

    job_id: str | None = None
    status: str | None = None  # a JobStatus from this package's orchestrator
    check_count: int | None = None
    last_check_time: str | None = None
    elapsed_seconds: float | None = None
    next_check_time: str | None = None
    started_at: str | None = None
    deadline: str | None = None
    polling_interval_seconds: float | None = None
    timeout_seconds: float | None = None
    final_status: str | None = None  # a FinalStatus from this package's orchestrator
    last_error: str | None = None
    reason: str | None = None
    generation: int = 1
    failed_attempts: int = 0  # failed attempts of the check in progress: > 0 means it is being retried


_SAID_IF_ANY = ("reason", "notified", "notify_error")  # result fields left out when None


@dataclass(frozen=True)
class MonitorResult(Payload):
    """The orchestration's output, in the official sample's shape.

    ``reason`` says in words why a monitor ended ``Failed`` by its own checks, ``Cancelled``, or ``Timeout``
    because a check did not answer; ``notified`` (and ``notify_error``) whether the result reached the
    request's ``notify_url``. Each is left out of the payload when there is nothing to say. A result read
    from another worker's output (:meth:`Payload.read`) leaves the fields it lacks at None.
    """

    job_id: str | None = None
    final_status: str | None = None  # a FinalStatus from this package's orchestrator
    checks_performed: int | None = None
    monitoring_duration_seconds: float | None = None
    reason: str | None = None
    notified: bool | None = None
    notify_error: str | None = None

    def to_payload(self) -> dict[str, Any]:
        payload = super().to_payload()
        return {key: value for key, value in payload.items() if value is not None or key not in _SAID_IF_ANY}
