"""A monitor's custom status read tolerantly, as the dashboard's card shows it (and its list rows).

Custom status is written by whichever orchestration runs under the instance id: this package's monitor, an
older version of it, or something else entirely. :func:`read_card` never raises: a missing field, a field
of the wrong type, a string or ``null`` each leave that part of the card empty (and say so in ``note``).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

from monitoring.client.snapshots import TERMINAL_RUNTIME_STATUSES
from monitoring.core.generations import parse_monitor_input
from monitoring.core.models import MonitorRequest
from monitoring.core.payloads import InvalidRequestError, from_iso, to_iso
from monitoring.core.predict import Prediction, predict
from monitoring.core.schedule import CheckSchedule

JOB_STATUSES = frozenset({"Pending", "Running", "Completed", "Failed"})
FINAL_STATUSES = frozenset({"Completed", "Failed", "Timeout", "Cancelled"})
MAX_PREDICTED_CHECKS = 100_000  # predicting steps through every planned check; beyond this, no prediction


def _text(payload: dict[str, Any], key: str) -> str | None:
    value = payload.get(key)
    return value if isinstance(value, str) and value else None


def _time(payload: dict[str, Any], key: str) -> str | None:
    """An ISO time, normalised (``...Z``); None if the field is missing or not a time."""
    value = payload.get(key)
    if not isinstance(value, str):
        return None
    try:
        return to_iso(from_iso(value))
    except ValueError:
        return None


def _count(payload: dict[str, Any], key: str) -> int | None:
    value = payload.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return int(value) if value >= 0 else None


def _seconds(payload: dict[str, Any], key: str) -> float | None:
    value = payload.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value) if value > 0 else None


def _input_job_id(input_payload: Any) -> str | None:
    """The ``job_id`` an input names even when it is not a valid request (written by another client)."""
    return _text(input_payload, "job_id") if isinstance(input_payload, dict) else None


def monitor_request(input_payload: Any) -> MonitorRequest | None:
    """The monitor request in an instance's input (first generation or a continuation), else None."""
    if input_payload is None:
        return None
    try:
        return parse_monitor_input(input_payload, default_job_id="job")[0]
    except (InvalidRequestError, TypeError, KeyError, ValueError):
        return None


@dataclass(frozen=True)
class StatusCard:
    """What a person reads at a glance; every field may be None when the custom status does not say."""

    state: str
    job_id: str | None = None
    job_status: str | None = None
    check_count: int | None = None
    planned_checks: int | None = None  # if the job never finishes (the schedule's count)
    predicted_checks: int | None = None  # for the simulated job: when it will be seen finished
    predicted_final_status: str | None = None  # and how the monitor will then end
    last_check_time: str | None = None
    next_check_time: str | None = None
    started_at: str | None = None
    deadline: str | None = None
    final_status: str | None = None
    last_error: str | None = None
    reason: str | None = None
    generation: int | None = None
    note: str | None = None

    def to_payload(self) -> dict[str, Any]:
        return dict(self.__dict__)


@functools.lru_cache(maxsize=4096)
def _request_plan(request: MonitorRequest) -> tuple[int, Prediction | None]:
    """Worked out once per request: the list refreshes the same monitors every second."""
    planned = request.schedule().planned_check_count
    simulated = request.job_source == "simulated" and planned <= MAX_PREDICTED_CHECKS
    return planned, predict(request) if simulated else None


def _planned(request: MonitorRequest | None, custom: dict[str, Any]) -> tuple[int | None, Prediction | None]:
    """The planned check count (from the request when there is one, else the status's numbers) and, for
    the simulated job, the prediction of :func:`monitoring.core.predict.predict`."""
    if request is not None:
        return _request_plan(request)
    interval, timeout = _seconds(custom, "polling_interval_seconds"), _seconds(custom, "timeout_seconds")
    if interval is None or timeout is None or interval > timeout:
        return None, None
    return CheckSchedule(interval, timeout).planned_check_count, None


def _state(runtime_status: str, final_status: str | None, output: Any, retrying: bool) -> str:
    """One word that is true now (the rule of :attr:`MonitorSnapshot.state`, on tolerant inputs)."""
    if runtime_status in ("Suspended", "Terminated", "Pending"):
        return runtime_status
    ended = output.get("final_status") if isinstance(output, dict) else None
    if isinstance(ended, str) and ended in FINAL_STATUSES:
        return ended
    if runtime_status in TERMINAL_RUNTIME_STATUSES:
        return runtime_status
    if final_status in FINAL_STATUSES:
        return final_status  # published, the orchestration is finishing
    return "Retrying" if retrying else runtime_status


def _reason(runtime_status: str, custom: dict[str, Any], output: Any) -> str | None:
    """Why it ended (or is ending): the custom status's or the output's reason, or a failure's text."""
    reason = _text(custom, "reason") or (_text(output, "reason") if isinstance(output, dict) else None)
    if reason is None and runtime_status == "Failed" and isinstance(output, str) and output:
        reason = output[:500]  # an orchestration that failed: its output is the failure message
    return reason


def read_card(
    runtime_status: str, custom_status: Any, input_payload: Any = None, output: Any = None
) -> StatusCard:
    """The card for an instance, from whatever its custom status, input and output hold."""
    request = monitor_request(input_payload)
    note = None
    if isinstance(custom_status, dict):
        custom = custom_status
    else:
        custom = {}
        if custom_status is None:
            note = "no custom status published yet" if runtime_status == "Pending" else "no custom status"
        else:
            shown = custom_status if isinstance(custom_status, str) else type(custom_status).__name__
            note = f"custom status is not a monitor's: {str(shown)[:200]}"
    job_status = _text(custom, "status")
    if job_status is not None and job_status not in JOB_STATUSES:
        note = note or f"unknown job status {job_status!r}"
    final_status = _text(custom, "final_status")
    last_error = _text(custom, "last_error")
    planned, prediction = _planned(request, custom)
    return StatusCard(
        state=_state(runtime_status, final_status, output, (_count(custom, "failed_attempts") or 0) > 0),
        job_id=_text(custom, "job_id") or (request.job_id if request else _input_job_id(input_payload)),
        job_status=job_status,
        check_count=_count(custom, "check_count"),
        planned_checks=planned,
        predicted_checks=prediction.checks_performed if prediction else None,
        predicted_final_status=prediction.final_status if prediction else None,
        last_check_time=_time(custom, "last_check_time"),
        next_check_time=_time(custom, "next_check_time"),
        started_at=_time(custom, "started_at"),
        deadline=_time(custom, "deadline"),
        final_status=final_status,
        last_error=last_error,
        reason=_reason(runtime_status, custom, output),
        generation=_count(custom, "generation"),
        note=note,
    )
