"""Limits that refuse and never wedge, ending any instance, and retention, over real gRPC.

An event flood is refused (RESOURCE_EXHAUSTED with a message) or absorbed, nothing accepted is lost, and
the monitor goes on and can still be cancelled; a monitor held by a worker that stopped answering can be
terminated and purged at once; finished instances are purged after their retention, and lists page.
"""

from __future__ import annotations

import json
import re
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from durabletask import task
from durabletask.client import OrchestrationQuery, OrchestrationStatus, TaskHubGrpcClient
from durabletask.worker import ConcurrencyOptions, TaskHubGrpcWorker
from test_faults import NEVER, Stack, checks, request, stack  # noqa: F401 (stack is a fixture)

from conftest import running_worker
from monitoring.client.errors import LimitExceededError, UnknownInstanceError
from monitoring.client.monitors import MonitorClient
from monitoring.core.models import MonitorRequest
from monitoring.runtime.connection import local_connection
from monitoring.scheduler.records import HubOptions
from monitoring.scheduler.server import LocalScheduler


def raised_in_history(monitors: MonitorClient, instance_id: str, name: str) -> int:
    return sum(
        1
        for event in monitors.history(instance_id)
        if getattr(event, "name", None) == name and hasattr(event, "input")
    )


# The flood's own scheduler: the caps a tenth of the defaults (1,000 waiting events, 10,000 in a history, the
# SDK's own cap). The same code refuses at either size; every orchestrator turn replays the whole history, so
# near the default cap the flood costs a hundred times the CPU (a minute and more) and proves nothing more.
FLOOD_CAPS = HubOptions(max_pending_events=100, max_history_events=1_000, history_reserve=100)


@pytest.fixture
def flood_monitors() -> Iterator[MonitorClient]:
    """A scheduler with :data:`FLOOD_CAPS`, a worker and a client on it, all real over gRPC."""
    with (
        LocalScheduler(0, options=FLOOD_CAPS) as scheduler,
        running_worker(local_connection(scheduler.address)) as monitors,
    ):
        yield monitors


@pytest.mark.heavy
def test_an_event_flood_is_refused_or_absorbed_and_the_monitor_can_still_be_cancelled(
    flood_monitors: MonitorClient,
) -> None:
    monitors = flood_monitors
    waiting_cap, history_cap = FLOOD_CAPS.max_pending_events, FLOOD_CAPS.max_history_events
    plan = MonitorRequest(
        job_id=f"job-{uuid.uuid4().hex[:8]}",
        polling_interval_seconds=0.5,
        timeout_seconds=600,
        job_duration_seconds=NEVER,
    )
    instance_id = monitors.start(plan)
    monitors.wait_for(instance_id, lambda s: checks(s) >= 1, timeout=60)
    outcomes: Counter[str] = Counter()
    refusals: list[str] = []
    number = 0
    flood_deadline = time.monotonic() + 600  # only guards against a hang
    # Raise until the history cap refuses. Which limit refuses first depends on how fast the worker takes
    # events in (a loaded machine fills the waiting ones first): a refusal of waiting events says to try
    # again once they are processed, and so the flood does, with the same event.
    while not any(f"(the limit is {history_cap}," in r for r in refusals):
        assert time.monotonic() < flood_deadline, outcomes
        try:
            monitors.client.raise_orchestration_event(instance_id, "noise", data=number)
            outcomes["accepted"] += 1
            number += 1
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error  # type: ignore[attr-defined]
            outcomes["refused"] += 1
            refusals.append(error.details())  # type: ignore[attr-defined]
            if f"events waiting (the limit is {waiting_cap})" in refusals[-1]:
                time.sleep(0.05)
    # Refused only once the history is full (each orchestrator turn adds two events of its own, so how many of
    # them are noise depends on how many events each turn took in), after more than could ever wait.
    held = int(re.search(r"holds (\d+) events", refusals[-1]).group(1))  # type: ignore[union-attr]
    assert held >= history_cap - FLOOD_CAPS.history_reserve and outcomes["accepted"] > waiting_cap, outcomes
    named = (f"(the limit is {waiting_cap})", f"(the limit is {history_cap},")
    assert all(any(limit in r for limit in named) for r in refusals), set(refusals)
    assert "it takes no more 'noise' events" in refusals[-1]
    with pytest.raises(LimitExceededError, match=f"limit is {history_cap},"):
        monitors.raise_event(instance_id, "noise", "one more")
    # Every accepted event reaches the monitor's history (carried from generation to generation).
    deadline = time.monotonic() + 120
    while (seen := raised_in_history(monitors, instance_id, "noise")) != outcomes["accepted"]:
        assert time.monotonic() < deadline, f"{seen} of {outcomes['accepted']} accepted events in the history"
        time.sleep(0.5)
    progressing = checks(monitors.snapshot(instance_id))
    monitors.wait_for(instance_id, lambda s: checks(s) > progressing, timeout=120)  # it goes on checking
    monitors.cancel(instance_id, reason="flooded")
    final = monitors.follow(instance_id, timeout=120)
    assert final.result is not None and final.result.final_status == "Cancelled"
    assert final.result.reason == "cancelled: flooded"


@pytest.mark.heavy
def test_a_monitor_held_by_a_worker_that_stopped_answering_is_terminated_and_purged_at_once(
    stack: Stack,  # noqa: F811
) -> None:
    worker = stack.start_worker()
    with MonitorClient(local_connection(stack.address)) as monitors:
        instance_id = monitors.start(request(interval=0.2, timeout=600))
        monitors.wait_for(instance_id, lambda s: checks(s) >= 3, timeout=120)
        worker.send_signal(signal.SIGSTOP)  # its stream stays open; it holds the monitor's work
        try:
            monitors.terminate(instance_id, reason="stuck")
            assert monitors.snapshot(instance_id).runtime_status == "Terminated", "no worker needed"
            assert monitors.purge(instance_id) == 1
            with pytest.raises(UnknownInstanceError):
                monitors.snapshot(instance_id)
        finally:
            worker.send_signal(signal.SIGCONT)
        other = monitors.start(request(interval=0.2, timeout=1))
        final = monitors.follow(other, timeout=120)  # the same worker goes on with other work
    assert final.result is not None and final.result.checks_performed == 6
    assert "Traceback" not in stack.worker_log(1)


def test_finished_instances_are_purged_after_their_retention_and_lists_page() -> None:
    options = HubOptions(retention_seconds=0.5, sweep_seconds=0.05)
    with (
        LocalScheduler(0, options=options) as scheduler,
        MonitorClient(local_connection(scheduler.address)) as monitors,
    ):
        ids = [monitors.start(request(interval=1, timeout=60), instance_id=f"kept-{n}") for n in range(5)]
        query = OrchestrationQuery(instance_id_prefix="kept-", max_instance_count=2)
        assert [s.instance_id for s in monitors.client.get_all_orchestration_states(query)] == ids, "3 pages"
        for instance_id in ids[:3]:
            monitors.terminate(instance_id, reason="done")  # no worker needed to end them
        deadline = time.monotonic() + 60
        while len(remaining := monitors.client.get_all_orchestration_states(query)) > 2:
            assert time.monotonic() < deadline, "finished instances outlived their retention"
            time.sleep(0.05)
        assert [state.instance_id for state in remaining] == ids[3:], "active ones are kept"


def test_a_worker_that_runs_one_check_at_a_time_is_leased_one_and_none_runs_twice() -> None:
    """Plain SDK code. The scheduler once leased a worker every ready item: those queued in the worker
    behind the running ones outlived their lease, were handed out again and ran twice. Now a stream holds
    no more of a kind than its worker said it runs (``maxConcurrent*``), so each runs once."""
    lease_seconds, check_seconds, checks_asked = 6.0, 1.5, 8  # queued, the 5th to 8th would outlive a lease
    ran: Counter[int] = Counter()

    def slow_check(_: task.ActivityContext, number: int) -> int:
        ran[number] += 1
        time.sleep(check_seconds)  # the check's own work, not a wait of the test
        return number

    def fan_out(ctx: task.OrchestrationContext, count: int) -> Any:
        results = yield task.when_all([ctx.call_activity(slow_check, input=n) for n in range(count)])
        return results

    options = HubOptions(lease_seconds=lease_seconds)
    with LocalScheduler(0, taskhub=f"one-at-a-time-{uuid.uuid4().hex[:8]}", options=options) as scheduler:
        one_at_a_time = ConcurrencyOptions(maximum_concurrent_activity_work_items=1)
        worker = TaskHubGrpcWorker(host_address=scheduler.address, concurrency_options=one_at_a_time)
        worker.add_orchestrator(fan_out)
        worker.add_activity(slow_check)
        worker.start()
        try:
            client = TaskHubGrpcClient(host_address=scheduler.address)
            instance_id = client.schedule_new_orchestration(fan_out, input=checks_asked)
            state = client.get_orchestration_state(instance_id)
            while (
                max(ran.values(), default=0) < 2
                and state is not None
                and state.runtime_status.name not in ("COMPLETED", "FAILED")
            ):
                time.sleep(0.2)  # polls what is observed: the end, or a second run (the bug: it livelocked)
                state = client.get_orchestration_state(instance_id)
        finally:
            worker.stop()
    assert ran == Counter(range(checks_asked)), f"a check ran twice: {ran}"
    assert state is not None and state.runtime_status == OrchestrationStatus.COMPLETED
    assert json.loads(state.serialized_output or "null") == list(range(checks_asked))
