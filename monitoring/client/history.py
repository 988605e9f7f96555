"""An instance's history as a timeline of what a person cares about: start, checks, timers, events, end.

:func:`build_timeline` is pure: give it the events of ``client.get_orchestration_history(instance_id)``
(the dashboard, a notebook or a test) and it returns :class:`TimelineEntry` items in history order. Checks
are numbered as the monitor numbers them (the ``check_number`` of each request, so the retries of a failed
attempt carry the same number and a later generation goes on counting).

Times: the local scheduler (as the SDK's in-memory backend) stamps only ``OrchestratorStarted`` events with a
real time and all others with 1970-01-01, so each entry takes the best time the history offers: a check's
own ``checked_at`` (from the ``check_job_status`` result), a timer's ``fire_at``, an event's own timestamp
when it is real (the emulator and Azure stamp every event), else the start of the episode that recorded it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any, Literal

from durabletask import history
from durabletask.client import OrchestrationStatus

from monitoring.client.snapshots import runtime_status_name
from monitoring.core.generations import CONTINUATION_KEYS
from monitoring.core.jobs import JobStatusReport
from monitoring.core.orchestration import ACTIVITY_NAME, ORCHESTRATOR_NAME
from monitoring.core.payloads import decode_payload, to_iso

EntryKind = Literal["started", "check", "check-failed", "activity", "timer", "event", "terminated", "ended"]
# Anything stamped before this is the in-memory backend's "no time" (1970-01-01).
_REAL_TIME_FLOOR = datetime(2000, 1, 1).timestamp()


@dataclass(frozen=True)
class TimelineEntry:
    """One thing that happened to an instance.

    ``at`` is an ISO time (``...Z``) or None if the history gives none; ``status`` is the job's answer for a
    check, ``fired``/``pending`` for a timer, the runtime status for the end. A timer's ``at`` is when it is
    due and ``since`` when it was created.
    """

    kind: EntryKind
    at: str | None
    label: str
    status: str | None = None
    detail: str | None = None
    since: str | None = None

    def to_payload(self) -> dict[str, Any]:
        return asdict(self)


def _real_time(moment: datetime | None) -> datetime | None:
    if moment is None or moment.timestamp() < _REAL_TIME_FLOOR:
        return None
    return moment


def _check_report(result: str | None) -> JobStatusReport | None:
    payload = decode_payload(result)
    if not isinstance(payload, dict):
        return None
    try:
        return JobStatusReport.from_payload(payload)
    except TypeError:
        return None


def _check_number(request: str | None) -> int | None:
    """The ``check_number`` a ``check_job_status`` request names (None if it names none)."""
    payload = decode_payload(request)
    number = payload.get("check_number") if isinstance(payload, dict) else None
    return number if isinstance(number, int) and not isinstance(number, bool) and number > 0 else None


def _status_name(value: int) -> str:
    try:
        return runtime_status_name(OrchestrationStatus(value))
    except ValueError:
        return str(value)


def _generation(payload: Any) -> tuple[Any, int | None]:
    """The job id a monitor's input names, and its generation if it continues an earlier one (else None;
    0 if it does not say which)."""
    if not isinstance(payload, dict):
        return None, None
    if set(payload) != CONTINUATION_KEYS:
        return payload.get("job_id"), None
    request, progress = payload["request"], payload["progress"]
    job = request.get("job_id") if isinstance(request, dict) else None
    number = progress.get("generation") if isinstance(progress, dict) else None
    return job, number if isinstance(number, int) and not isinstance(number, bool) else 0


def build_timeline(events: Sequence[history.HistoryEvent]) -> list[TimelineEntry]:
    """The instance's start, each check (with the job's answer), each timer, each event, and its end.

    A monitor's first task in each generation is its guard timer (deadline plus grace), and so is a timer
    renewing it (same due time). Events read in the first episode of a generation that continues an
    earlier one were raised before it began (continue-as-new carries them over): without a time of their
    own they get none, rather than the generation's start.
    """
    entries: list[TimelineEntry] = []
    episode: datetime | None = None  # start of the episode being read
    continued = False  # reading the first episode of a generation that continues an earlier one
    guard_due: str | None = None  # the due time of the monitor's guard, once created; "" while expected
    activity_names: dict[int, str] = {}
    check_numbers: dict[int, int | None] = {}  # task id -> the check number its request names
    timer_entries: dict[int, int] = {}  # timer event id -> index in entries
    checks = 0

    def when(event: history.HistoryEvent) -> str | None:
        moment = _real_time(event.timestamp) or episode
        return to_iso(moment) if moment else None

    for event in events:
        if isinstance(event, history.OrchestratorStartedEvent):
            episode = _real_time(event.timestamp) or episode
            continued = False
        elif isinstance(event, history.ExecutionStartedEvent):
            job, generation = _generation(decode_payload(event.input))
            continued = generation is not None
            label = f"{event.name} started" + (f" (generation {generation})" if generation else "")
            entries.append(TimelineEntry("started", when(event), label, detail=_text(job)))
            guard_due = "" if event.name == ORCHESTRATOR_NAME else None
        elif isinstance(event, history.TaskScheduledEvent):
            guard_due = None if guard_due == "" else guard_due  # a monitor schedules no task before its guard
            activity_names[event.event_id] = event.name
            check_numbers[event.event_id] = _check_number(event.input)
        elif isinstance(event, history.TaskCompletedEvent):
            name = activity_names.get(event.task_scheduled_id, ACTIVITY_NAME)
            report = _check_report(event.result) if name == ACTIVITY_NAME else None
            if report is not None:
                checks = check_numbers.get(event.task_scheduled_id) or checks + 1
                entries.append(TimelineEntry("check", report.checked_at, f"check {checks}", report.status))
            else:
                entries.append(TimelineEntry("activity", when(event), f"{name} completed"))
        elif isinstance(event, history.TaskFailedEvent):
            name = activity_names.get(event.task_scheduled_id, ACTIVITY_NAME)
            message = event.failure_details.message if event.failure_details else None
            if name == ACTIVITY_NAME:
                # A failed attempt of check n (the request says n; retries of it say n again).
                number = check_numbers.get(event.task_scheduled_id)
                if number is None:
                    checks += 1
                label = f"check {number or checks}"
                entries.append(TimelineEntry("check-failed", when(event), label, "Error", message))
            else:
                entries.append(TimelineEntry("activity", when(event), f"{name} failed", "Error", message))
        elif isinstance(event, history.TimerCreatedEvent):
            timer_entries[event.event_id] = len(entries)
            # Besides the guard, a timer right after a failed attempt is the wait before the retry.
            fire_at = to_iso(event.fire_at)
            label = "timer"
            if guard_due in ("", fire_at):
                label, guard_due = "deadline guard", fire_at
            elif entries and entries[-1].kind == "check-failed":
                label = "retry wait"
            entries.append(TimelineEntry("timer", fire_at, label, "pending", since=when(event)))
        elif isinstance(event, history.TimerFiredEvent):
            index = timer_entries.get(event.timer_id)
            if index is not None:
                created = entries[index]
                entries[index] = replace(created, status="fired")
            else:
                entries.append(TimelineEntry("timer", to_iso(event.fire_at), "timer", "fired"))
        elif isinstance(event, history.EventRaisedEvent):
            if continued and _real_time(event.timestamp) is None:
                label = f"event {event.name} (raised before this generation began)"
                entries.append(TimelineEntry("event", None, label, detail=event.input))
            else:
                entries.append(TimelineEntry("event", when(event), f"event {event.name}", detail=event.input))
        elif isinstance(event, history.ExecutionTerminatedEvent):
            reason = decode_payload(event.input)
            entries.append(
                TimelineEntry("terminated", when(event), "terminate requested", detail=_text(reason))
            )
        elif isinstance(event, history.ExecutionCompletedEvent):
            status = _status_name(event.orchestration_status)
            result = decode_payload(event.result)
            detail = result.get("final_status") if isinstance(result, dict) else _text(result)
            if event.failure_details is not None:
                detail = f"{event.failure_details.error_type}: {event.failure_details.message}"
            entries.append(TimelineEntry("ended", when(event), "ended", status, detail))
    return entries


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value)


def in_time_order(entries: Sequence[TimelineEntry]) -> list[TimelineEntry]:
    """The entries sorted by ``at`` (a timer by when it is due); one without a time stays after its
    predecessor. The sort is stable, so entries at the same moment keep their history order."""
    keyed = []
    previous = ""
    for position, entry in enumerate(entries):
        previous = entry.at or previous
        keyed.append((previous, position, entry))
    return [entry for _, _, entry in sorted(keyed, key=lambda item: (item[0], item[1]))]
