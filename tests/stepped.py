"""A hand-stepped orchestration context: runs the real orchestrator generator on a virtual clock.

It hands out real SDK tasks (timers, activities, external events, ``task.when_any``) and completes them
itself, earliest first, so the exact sequence of actions at real timings (seconds or hours) is checked in
microseconds. Scripted interruptions reproduce what the backend does: external events at a given time, a
stale timer completing the pending one early, a check that never answers. ``continue_as_new`` starts the
next generation with the new input on the same clock, as the backend does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from durabletask import task

from monitoring.core.jobs import JobCheckRequest, SimulatedJobSource
from monitoring.core.orchestration import monitoring_job_orchestrator

START = datetime(2025, 9, 19, 18, 5, 0)  # the SDK's orchestration clock is naive UTC


@dataclass
class Script:
    """What happens besides the timers firing on time and checks answering after ``latency`` seconds."""

    latency: float = 0.0
    events: list[tuple[float, str, Any]] = field(default_factory=list)  # (offset, name, data)
    stale_timer_at: list[float] = field(default_factory=list)  # offsets at which the pending timer fires
    hanging_checks: set[int] = field(default_factory=set)  # these checks never answer
    # (from, to) offsets with no worker: nothing runs; at ``to`` the timers that fired meanwhile come first
    # (they wait in the scheduler), then a check that was out with the lost worker answers (run again).
    outage: tuple[float, float] | None = None


class SteppedContext:
    """Just enough of ``OrchestrationContext``, recording what the orchestrator asks for."""

    instance_id = "stepped"
    is_replaying = False

    def __init__(self) -> None:
        self.current_utc_datetime = START
        self.log: list[tuple[str, Any]] = []
        self.continued_with: Any = None
        self.waiting: dict[str, task.CompletableTask[Any]] = {}
        self.pending_events: dict[str, list[Any]] = {}

    def create_replay_safe_logger(self, logger: logging.Logger) -> logging.Logger:
        return logger

    def set_custom_status(self, status: Any) -> None:
        self.log.append(("status", status))

    def call_activity(self, name: str, *, input: Any = None) -> task.CompletableTask[Any]:
        self.log.append(("activity", name))
        activity: task.CompletableTask[Any] = task.CompletableTask()
        activity.stepped = ("activity", input)  # type: ignore[attr-defined]
        return activity

    def create_timer(self, fire_at: datetime) -> task.TimerTask:
        self.log.append(("timer", fire_at))
        timer = task.TimerTask()
        timer.stepped = ("timer", fire_at)  # type: ignore[attr-defined]
        return timer

    def wait_for_external_event(self, name: str) -> task.CompletableTask[Any]:
        event: task.CompletableTask[Any] = task.CompletableTask()
        event.stepped = ("event", name)  # type: ignore[attr-defined]
        if self.pending_events.get(name):
            event.complete(self.pending_events[name].pop(0))
        else:
            self.waiting[name] = event
        return event

    def continue_as_new(self, new_input: Any, *, save_events: bool = False) -> None:
        self.log.append(("continue_as_new", new_input))
        self.continued_with = new_input

    def new_generation(self) -> None:
        self.continued_with = None
        self.waiting = {}


@dataclass
class Run:
    result: Any
    ctx: SteppedContext
    checks_at: list[datetime]  # when each check attempt ran (virtual clock)


def _at(offset: float) -> datetime:
    return START + timedelta(seconds=offset)


def _through_outage(
    candidates: list[tuple[datetime, int, Any]], outage: tuple[float, float] | None
) -> list[tuple[datetime, int, Any]]:
    """Nothing happens during an outage; at its end the timers that fired meanwhile come first (they wait
    in the scheduler), then the checks (asked for at that moment, or run again after a lost worker)."""
    if outage is None:
        return candidates
    down, up = (_at(offset) for offset in outage)
    moved = []
    for when, rank, what in candidates:  # rank: 0 event, 1 check, 2 timer
        if down <= when < up or (rank == 1 and when == up):
            when, rank = up, {0: 0, 1: 2, 2: 1}[rank]
        moved.append((when, rank, what))
    return moved


def step(payload: dict[str, Any], script: Script | None = None, max_steps: int = 200_000) -> Run:
    """Run the orchestrator to its end (through every generation), completing tasks earliest first."""
    script = script or Script()
    ctx = SteppedContext()
    source = SimulatedJobSource()  # its own attempt counters: nothing leaks between tests
    events = sorted(script.events)
    stale = sorted(script.stale_timer_at)
    checks_at: list[datetime] = []
    checks_started = 0
    generator = monitoring_job_orchestrator(ctx, payload)  # type: ignore[arg-type]
    sent: Any = None
    for _ in range(max_steps):
        try:
            yielded = generator.send(sent)
        except StopIteration as done:
            if ctx.continued_with is None:
                return Run(done.value, ctx, checks_at)
            payload_next = ctx.continued_with
            ctx.new_generation()
            generator = monitoring_job_orchestrator(ctx, payload_next)  # type: ignore[arg-type]
            sent = None
            continue
        assert isinstance(yielded, task.WhenAnyTask), f"the orchestrator yielded {yielded!r}, not when_any"
        children = yielded.get_tasks()
        activities = [child for child in children if child.stepped[0] == "activity"]  # type: ignore[attr-defined]
        for activity in activities:
            if not hasattr(activity, "check_number"):
                checks_started += 1
                activity.check_number = JobCheckRequest.from_payload(activity.stepped[1]).check_number  # type: ignore[attr-defined]
        while not yielded.is_complete:
            candidates: list[tuple[datetime, int, Any]] = []
            for child in children:
                kind, value = child.stepped  # type: ignore[attr-defined]
                if kind == "timer":
                    candidates.append((value, 2, child))
                elif kind == "activity" and child.check_number not in script.hanging_checks:  # type: ignore[attr-defined]
                    ready = getattr(child, "ready_at", None)
                    if ready is None:
                        ready = child.ready_at = ctx.current_utc_datetime + timedelta(seconds=script.latency)  # type: ignore[attr-defined]
                    candidates.append((ready, 1, child))
            if events:
                candidates.append((_at(events[0][0]), 0, "event"))
            if stale:
                candidates.append((_at(stale[0]), 0, "stale"))
            candidates = _through_outage(candidates, script.outage)
            when, _, what = min(candidates, key=lambda item: (item[0], item[1]))
            ctx.current_utc_datetime = max(ctx.current_utc_datetime, when)
            if what == "event":
                _, name, data = events.pop(0)
                waiting = ctx.waiting.pop(name, None)
                if waiting is not None and not waiting.is_complete:
                    waiting.complete(data)
                else:
                    ctx.pending_events.setdefault(name, []).append(data)
            elif what == "stale":
                stale.pop(0)
                timers = [child for child in children if child.stepped[0] == "timer"]  # type: ignore[attr-defined]
                if timers and not timers[0].is_complete:
                    timers[0].complete(None)
            elif what.stepped[0] == "timer":  # type: ignore[union-attr]
                what.complete(None)  # type: ignore[union-attr]
            else:
                checks_at.append(ctx.current_utc_datetime)
                request = JobCheckRequest.from_payload(what.stepped[1])  # type: ignore[union-attr]
                now = ctx.current_utc_datetime.replace(tzinfo=timezone.utc)
                try:
                    what.complete(source.check(request, now).to_payload())  # type: ignore[union-attr]
                except Exception as error:
                    what.fail(str(error), error)  # type: ignore[union-attr]
        sent = yielded.get_result()
    raise AssertionError("the orchestrator did not end")
