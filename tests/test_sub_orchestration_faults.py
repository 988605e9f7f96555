"""A scheduler process killed (``kill -9``) in the middle of a fan-out of 200 sub-orchestrations, twice, and
started again on its state file: the parent ends with the exact sum, every child holds one activity result and
ended once, and the parent's history holds each child's creation and completion exactly once.

The SDK's own worker and client (in this process) talk to a scheduler in a process of its own; half the
children end on their own, half wait for an event, so the first kill finds the fan-out half done and the
second one comes while the last hundred completions are in flight."""

from __future__ import annotations

import os
import signal
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from durabletask import task
from durabletask.client import OrchestrationQuery, OrchestrationStatus
from sdk_backends import Registry, new_client, new_worker, retried, wait_for
from test_scheduler import free_port

from monitoring.scheduler import process

CHILDREN = 200
WAITING = range(100, CHILDREN)  # these children wait for "go"; the others end on their own
LIMIT = 600  # a hang guard only: every wait returns as soon as what it waits for is observed
app = Registry()


@app.activity
def double(ctx: task.ActivityContext, n: int) -> int:
    return 2 * n


@app.orchestrator
def fan_child(ctx: task.OrchestrationContext, n: int) -> Any:
    value = yield ctx.call_activity(double, input=n)
    if n in WAITING:
        yield ctx.wait_for_external_event("go")
    return value


@app.orchestrator
def fan_parent(ctx: task.OrchestrationContext, count: int) -> Any:
    calls = [
        ctx.call_sub_orchestrator(fan_child, input=n, instance_id=f"{ctx.instance_id}-c{n:03d}")
        for n in range(count)
    ]
    return sum((yield task.when_all(calls)))


class SchedulerProcess:
    def __init__(self) -> None:
        self.port = free_port()
        self.address = f"http://127.0.0.1:{self.port}"
        self.pid = process.spawn_scheduler_process(self.port)

    def kill_and_restart(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        self.pid = process.spawn_scheduler_process(self.port)


@pytest.fixture
def scheduler() -> Iterator[SchedulerProcess]:
    running = SchedulerProcess()
    try:
        yield running
    finally:
        process.stop_scheduler_process(running.port)


@pytest.mark.heavy
def test_a_scheduler_killed_twice_mid_fan_out_loses_and_doubles_nothing(scheduler: SchedulerProcess) -> None:
    worker = new_worker(scheduler.address, app)
    client = new_client(scheduler.address)
    worker.start()
    try:
        parent = f"fan-{uuid.uuid4().hex[:8]}"
        client.schedule_new_orchestration(fan_parent, input=CHILDREN, instance_id=parent)

        def children() -> list[Any]:
            query = OrchestrationQuery(instance_id_prefix=f"{parent}-c")
            return client.get_all_orchestration_states(query)

        def ended(states: list[Any]) -> int:
            return sum(s.runtime_status == OrchestrationStatus.COMPLETED for s in states)

        seen = wait_for(children, lambda s: ended(s) == CHILDREN - len(WAITING), "the first half end")
        assert len(seen) == CHILDREN, "every child was created in the parent's one turn"
        scheduler.kill_and_restart()

        for n in WAITING:
            retried(lambda n=n: client.raise_orchestration_event(f"{parent}-c{n:03d}", "go"))
        scheduler.kill_and_restart()  # the last hundred completions are on their way to the parent

        state = wait_for(
            lambda: client.get_orchestration_state(parent),
            lambda s: (
                s is not None
                and s.runtime_status != OrchestrationStatus.RUNNING
                and s.runtime_status != OrchestrationStatus.PENDING
            ),
            "the parent end",
        )
        assert state.runtime_status == OrchestrationStatus.COMPLETED, state.failure_details
        assert state.get_output() == sum(2 * n for n in range(CHILDREN))

        kinds = Counter(type(e).__name__ for e in retried(lambda: client.get_orchestration_history(parent)))
        assert kinds["SubOrchestrationInstanceCreatedEvent"] == CHILDREN
        assert kinds["SubOrchestrationInstanceCompletedEvent"] == CHILDREN
        assert kinds["SubOrchestrationInstanceFailedEvent"] == 0
        for n in range(CHILDREN):
            events = retried(lambda n=n: client.get_orchestration_history(f"{parent}-c{n:03d}"))
            child = Counter(type(e).__name__ for e in events)
            assert child["TaskScheduledEvent"] == 1 and child["TaskCompletedEvent"] == 1, (n, child)
            assert child["ExecutionCompletedEvent"] == 1, (n, child)
            assert child["EventRaisedEvent"] == (1 if n in WAITING else 0), (n, child)
    finally:
        worker.stop()
        client.close()
