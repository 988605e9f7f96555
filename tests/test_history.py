"""The timeline of checks and timers: pure, on hand-made histories, and on a real run's history."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from durabletask import history
from durabletask.task import FailureDetails

from conftest import new_job_id
from monitoring.client.history import TimelineEntry, build_timeline, in_time_order
from monitoring.client.monitors import MonitorClient
from monitoring.core.models import MonitorRequest
from monitoring.core.payloads import from_iso, to_iso

NO_TIME = datetime(1970, 1, 1, tzinfo=timezone.utc)  # how the in-memory backend stamps most events
START = datetime(2025, 9, 19, 18, 5, 0, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


def report(status: str, seconds: float) -> str:
    checked_at = at(seconds).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return json.dumps({"job_id": "job-1", "status": status, "checked_at": checked_at})


def started(seconds: float) -> history.OrchestratorStartedEvent:
    return history.OrchestratorStartedEvent(event_id=-1, timestamp=at(seconds))


def test_a_completed_monitor_reads_as_start_checks_timers_and_end() -> None:
    events: list[history.HistoryEvent] = [
        started(0),
        history.ExecutionStartedEvent(
            -1, NO_TIME, "monitoring_job_orchestrator", input='{"job_id": "job-1"}'
        ),
        history.TaskScheduledEvent(0, NO_TIME, "check_job_status"),
        started(0.01),
        history.TaskCompletedEvent(-1, NO_TIME, task_scheduled_id=0, result=report("Running", 0.008)),
        history.TimerCreatedEvent(1, NO_TIME, fire_at=at(5)),
        started(5.002),
        history.TimerFiredEvent(-1, NO_TIME, fire_at=at(5), timer_id=1),
        history.TaskScheduledEvent(2, NO_TIME, "check_job_status"),
        started(5.01),
        history.TaskCompletedEvent(-1, NO_TIME, task_scheduled_id=2, result=report("Completed", 5.006)),
        history.ExecutionCompletedEvent(-1, NO_TIME, 1, result='{"final_status": "Completed"}'),
    ]
    assert build_timeline(events) == [
        TimelineEntry(
            "started", "2025-09-19T18:05:00.000Z", "monitoring_job_orchestrator started", None, "job-1"
        ),
        TimelineEntry("check", "2025-09-19T18:05:00.008Z", "check 1", "Running"),
        TimelineEntry(
            "timer", "2025-09-19T18:05:05.000Z", "timer", "fired", since="2025-09-19T18:05:00.010Z"
        ),
        TimelineEntry("check", "2025-09-19T18:05:05.006Z", "check 2", "Completed"),
        TimelineEntry("ended", "2025-09-19T18:05:05.010Z", "ended", "Completed", "Completed"),
    ]


def test_real_timestamps_win_and_pending_timers_failed_checks_events_and_terminate_show() -> None:
    events: list[history.HistoryEvent] = [
        started(0),
        history.ExecutionStartedEvent(-1, at(0.001), "other_orchestrator", input='"not a dict"'),
        history.TaskScheduledEvent(0, NO_TIME, "check_job_status"),
        started(0.02),
        history.TaskFailedEvent(-1, NO_TIME, 0, FailureDetails("boom", "RuntimeError", None)),
        history.TaskScheduledEvent(1, NO_TIME, "send_mail"),
        history.TaskCompletedEvent(-1, NO_TIME, task_scheduled_id=1, result='"sent"'),
        history.TimerCreatedEvent(2, NO_TIME, fire_at=at(30)),
        history.EventRaisedEvent(-1, at(3), "approval", input='{"ok": true}'),
        history.ExecutionTerminatedEvent(-1, NO_TIME, input='"no longer needed"'),
        history.ExecutionCompletedEvent(-1, NO_TIME, 5, result='"no longer needed"'),
    ]
    timeline = build_timeline(events)
    assert [(e.kind, e.at, e.label, e.status, e.detail) for e in timeline] == [
        ("started", "2025-09-19T18:05:00.001Z", "other_orchestrator started", None, None),
        ("check-failed", "2025-09-19T18:05:00.020Z", "check 1", "Error", "boom"),
        ("activity", "2025-09-19T18:05:00.020Z", "send_mail completed", None, None),
        ("timer", "2025-09-19T18:05:30.000Z", "timer", "pending", None),
        ("event", "2025-09-19T18:05:03.000Z", "event approval", None, '{"ok": true}'),
        ("terminated", "2025-09-19T18:05:00.020Z", "terminate requested", None, "no longer needed"),
        ("ended", "2025-09-19T18:05:00.020Z", "ended", "Terminated", "no longer needed"),
    ]
    assert timeline[0].to_payload()["kind"] == "started"


def test_a_history_without_real_times_gives_entries_without_times() -> None:
    events = [history.ExecutionStartedEvent(-1, NO_TIME, "monitoring_job_orchestrator")]
    assert build_timeline(events) == [
        TimelineEntry("started", None, "monitoring_job_orchestrator started", None, None)
    ]


def test_a_real_run_shows_every_check_and_every_timer(monitors: MonitorClient) -> None:
    request = MonitorRequest(new_job_id(), 0.2, 0.6, job_duration_seconds=10)  # times out: 4 checks
    instance_id = monitors.start(request)
    final = monitors.follow(instance_id, timeout=30)
    assert final.result is not None and final.result.final_status == "Timeout"

    timeline = build_timeline(monitors.history(instance_id))
    kinds = [entry.kind for entry in timeline]
    # The guard first, then four checks; a wait comes only before a later check, and only if that check was
    # not yet due when the previous one answered (how many there are depends on how late checks run).
    assert kinds[:3] == ["started", "timer", "check"] and kinds[-2:] == ["check", "ended"], kinds
    waits_and_checks = " ".join(kinds[2:-1])
    assert waits_and_checks.count("check") == 4 and "timer timer" not in waits_and_checks, kinds
    guard = timeline[1]
    assert guard.label == "deadline guard" and guard.status == "pending", "the run ended before it was due"
    checks = [entry for entry in timeline if entry.kind == "check"]
    assert [entry.status for entry in checks] == ["Running"] * 4
    assert checks[-1].at == final.custom_status.last_check_time  # type: ignore[union-attr]
    assert all(entry.status == "fired" for entry in timeline if entry.label == "timer")
    times = [entry.at for entry in timeline]
    assert None not in times and times[0] <= checks[0].at  # type: ignore[operator]
    assert timeline[-1].status == "Completed" and timeline[-1].detail == "Timeout"
    ordered = in_time_order(timeline)
    assert [entry.at for entry in ordered] == sorted(times)  # type: ignore[type-var]
    assert ordered[-1] is guard and ordered[0].kind == "started"
    for timer in (entry for entry in timeline if entry.kind == "timer"):
        assert timer.since is not None and timer.since <= timer.at  # type: ignore[operator]


def test_a_later_generation_has_its_guard_and_no_start_time_for_an_event_carried_into_it() -> None:
    """Generation 2 begins with the input continue-as-new gave it, the events it carried over from generation
    1 (stamped with no time by the local scheduler; a real stamp is kept), then its guard and a wait."""
    carried = {"request": {"job_id": "job-1"}, "progress": {"generation": 2}}
    events: list[history.HistoryEvent] = [
        started(20),
        history.ExecutionStartedEvent(-1, NO_TIME, "monitoring_job_orchestrator", input=json.dumps(carried)),
        history.EventRaisedEvent(-1, NO_TIME, "note", input='"hello"'),
        history.EventRaisedEvent(-1, at(12), "stamped", input=None),
        history.TimerCreatedEvent(1, NO_TIME, fire_at=at(40)),
        history.TimerCreatedEvent(2, NO_TIME, fire_at=at(25)),
        started(25.002),
        history.TimerFiredEvent(-1, NO_TIME, fire_at=at(25), timer_id=2),
        history.EventRaisedEvent(-1, NO_TIME, "later", input=None),
        history.TimerCreatedEvent(3, NO_TIME, fire_at=at(40)),  # the guard renewed after an early firing
    ]
    assert [(e.kind, e.at, e.label, e.status, e.detail) for e in build_timeline(events)] == [
        ("started", "2025-09-19T18:05:20.000Z", "monitoring_job_orchestrator started (generation 2)", None,
         "job-1"),
        ("event", None, "event note (raised before this generation began)", None, '"hello"'),
        ("event", "2025-09-19T18:05:12.000Z", "event stamped", None, None),
        ("timer", "2025-09-19T18:05:40.000Z", "deadline guard", "pending", None),
        ("timer", "2025-09-19T18:05:25.000Z", "timer", "fired", None),
        ("event", "2025-09-19T18:05:25.002Z", "event later", None, None),
        ("timer", "2025-09-19T18:05:40.000Z", "deadline guard", "pending", None),
    ]  # fmt: skip


def test_a_real_later_generation_shows_its_guard_and_the_event_it_carried(monitors: MonitorClient) -> None:
    # Three generations of two checks; an event nothing waits for, raised in generation 1, is carried on.
    request = MonitorRequest(new_job_id(), 0.2, 1, job_duration_seconds=10, checks_per_generation=2)
    instance_id = monitors.start(request)
    monitors.raise_event(instance_id, "note", {"said": "hello"})
    final = monitors.follow(instance_id, timeout=30)
    assert final.custom_status is not None and final.custom_status.generation == 3

    timeline = build_timeline(monitors.history(instance_id))
    assert timeline[0].label == "monitoring_job_orchestrator started (generation 3)"
    assert timeline[0].detail == request.job_id
    assert [(entry.at, entry.label) for entry in timeline if entry.kind == "event"] == [
        (None, "event note (raised before this generation began)")
    ]
    guards = [entry for entry in timeline if entry.label == "deadline guard"]
    assert len(guards) == 1 and guards[0].status == "pending" and guards[0] is timeline[2]
    due = from_iso(final.custom_status.deadline) + timedelta(seconds=request.deadline_grace_seconds)  # type: ignore[arg-type]
    assert guards[0].at == to_iso(due)


def test_time_order_keeps_untimed_entries_after_their_predecessor_and_ties_in_history_order() -> None:
    entries = [
        TimelineEntry("started", "2025-09-19T18:05:00.000Z", "started"),
        TimelineEntry("timer", "2025-09-19T18:05:40.000Z", "deadline guard", "pending"),
        TimelineEntry("check", "2025-09-19T18:05:00.010Z", "check 1", "Running"),
        TimelineEntry("event", None, "event cancel"),
        TimelineEntry("ended", "2025-09-19T18:05:00.010Z", "ended", "Completed"),
    ]
    assert [entry.label for entry in in_time_order(entries)] == [
        "started",
        "check 1",
        "event cancel",
        "ended",
        "deadline guard",
    ]
