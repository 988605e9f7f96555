"""The data that crosses the wire: monitor input, custom status, result, and the check's request/report.

Field names follow the official monitoring sample (``job_id``, ``polling_interval_seconds``,
``timeout_seconds``; ``final_status``, ``checks_performed``, ...), so its client and JSON readers work as is.
Everything is a dataclass; ``to_payload``/``from_payload`` convert to and from the plain JSON dicts the
Durable Task SDK stores.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from typing import Any, Literal

from monitoring.schedule import CheckSchedule

JobStatus = Literal["Pending", "Running", "Completed", "Failed"]
FinalStatus = Literal["Completed", "Failed", "Timeout"]
JobOutcome = Literal["Completed", "Failed"]

JOB_OUTCOMES: tuple[str, ...] = ("Completed", "Failed")
DEFAULT_POLLING_INTERVAL_SECONDS = 5.0
DEFAULT_TIMEOUT_SECONDS = 30.0
# With the default 5 s interval the simulated job is first seen finished on the 4th check (at 15 s), as in
# the official sample's "completed" example; 12 s leaves a wide margin around the 10 s and 15 s checks.
DEFAULT_JOB_DURATION_SECONDS = 12.0
# The embedded backend refuses an instance past 10,000 history events (about 1,250 checks); stay well below.
MAX_CHECKS_PER_MONITOR = 1000
MAX_JOB_ID_LENGTH = 200


class InvalidRequestError(ValueError):
    """A monitor request a person should fix; the message says what and how."""


def to_iso(moment: datetime) -> str:
    """Format a UTC datetime (naive means UTC, like the orchestration clock) as ``...T18:05:15.123Z``."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment.isoformat(timespec="milliseconds") + "Z"


def from_iso(text: str) -> datetime:
    """Parse a timestamp written by :func:`to_iso` (or any ISO 8601 form) into an aware UTC datetime."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def decode_payload(serialized: str | None) -> Any:
    """A payload stored by the SDK, as JSON if it is JSON (it always is with this SDK), else the raw text."""
    if not serialized:
        return None
    try:
        return json.loads(serialized)
    except ValueError:
        return serialized


def _known_fields(cls: type, payload: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {key: value for key, value in payload.items() if key in names}


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


@dataclass(frozen=True)
class MonitorRequest:
    """Input of ``monitoring_job_orchestrator``: which job to watch, how often, for how long.

    ``job_duration_seconds`` and ``job_outcome`` describe the simulated job: it reports ``Running`` until
    that many seconds after the monitor started, then ``job_outcome``.
    """

    job_id: str
    polling_interval_seconds: float = DEFAULT_POLLING_INTERVAL_SECONDS
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    job_duration_seconds: float = DEFAULT_JOB_DURATION_SECONDS
    job_outcome: JobOutcome = "Completed"

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
        checks = CheckSchedule(interval, timeout).planned_check_count
        if checks > MAX_CHECKS_PER_MONITOR:
            raise InvalidRequestError(
                f"{timeout:g} s at one check every {interval:g} s plans {checks} checks; "
                f"at most {MAX_CHECKS_PER_MONITOR} are allowed per monitor (use a longer interval)"
            )
        object.__setattr__(self, "polling_interval_seconds", interval)
        object.__setattr__(self, "timeout_seconds", timeout)
        object.__setattr__(self, "job_duration_seconds", duration)

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

    def to_payload(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class MonitorStatus:
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

    def to_payload(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> MonitorStatus:
        return cls(**_known_fields(cls, payload))


@dataclass(frozen=True)
class MonitorResult:
    """The orchestration's output, in the official sample's shape."""

    job_id: str
    final_status: FinalStatus
    checks_performed: int
    monitoring_duration_seconds: float

    def to_payload(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> MonitorResult:
        return cls(**_known_fields(cls, payload))


@dataclass(frozen=True)
class JobCheckRequest:
    """Input of the ``check_job_status`` activity."""

    job_id: str
    monitor_started_at: str
    job_duration_seconds: float
    job_outcome: JobOutcome
    source: str = "simulated"

    def to_payload(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> JobCheckRequest:
        return cls(**_known_fields(cls, payload))


@dataclass(frozen=True)
class JobStatusReport:
    """Output of the ``check_job_status`` activity: what the job said, and when it was asked."""

    job_id: str
    status: JobStatus
    checked_at: str

    def to_payload(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> JobStatusReport:
        return cls(**_known_fields(cls, payload))
