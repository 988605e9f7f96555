"""Resumed orchestrator episodes (``monitoring/runtime/warm_replay.py``) decide exactly what full replays do.

The first test runs monitors of every kind (finishing, timing out, failing, retrying, continuing as new,
cancelled, suspended and resumed) on a real scheduler and worker, and has every episode also replayed from
the first event by the SDK's own executor: the actions and custom status must be the same byte for byte.
The others replay one recorded monitor's work items in the orders a scheduler can give them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from durabletask.internal import helpers
from durabletask.internal import orchestrator_service_pb2 as pb
from durabletask.worker import ExecutionResults, _OrchestrationExecutor
from gates import WAIT_LIMIT
from test_durability import NEVER, checks, request

from monitoring.client.monitors import MonitorClient
from monitoring.core.predict import predict
from monitoring.runtime.connection import local_connection
from monitoring.runtime.warm_replay import WarmReplays
from monitoring.runtime.work_loop import LeanWorker
from monitoring.scheduler.server import LocalScheduler
from monitoring.worker import create_worker

QUIET = logging.getLogger("test-warm-replay")
QUIET.disabled = True


def wire(results: ExecutionResults) -> tuple[list[bytes], str | None]:
    return [action.SerializeToString() for action in results.actions], results.encoded_custom_status


def full_replay(worker: Any, request_: pb.OrchestratorRequest) -> ExecutionResults:
    """What the SDK's worker decides for this work item: the whole history replayed by its executor."""
    executor = _OrchestrationExecutor(
        worker._registry,
        QUIET,
        data_converter=worker._data_converter,
        maximum_timer_interval=worker.maximum_timer_interval,
    )
    return executor.execute(request_.instanceId, request_.pastEvents, request_.newEvents)


class Compared(WarmReplays):
    """Runs each episode both ways; records the work items and any episode where the two differ."""

    def __init__(self, worker: LeanWorker) -> None:
        super().__init__(worker)
        self.items: dict[str, list[pb.OrchestratorRequest]] = {}
        self.different: list[str] = []
        self.guard = threading.Lock()

    def execute(self, request_: pb.OrchestratorRequest) -> ExecutionResults:
        expected = wire(full_replay(self.worker, request_))
        results = super().execute(request_)
        kept = pb.OrchestratorRequest()
        kept.CopyFrom(request_)
        with self.guard:
            self.items.setdefault(request_.instanceId, []).append(kept)
            if wire(results) != expected:
                self.different.append(f"{request_.instanceId} at event {len(request_.pastEvents)}")
        return results


@pytest.fixture(scope="module")
def compared() -> Iterator[tuple[Compared, MonitorClient]]:
    with LocalScheduler(0) as scheduler:
        connection = local_connection(scheduler.address)
        worker = create_worker(connection)
        assert isinstance(worker, LeanWorker)
        worker.replays = Compared(worker)
        worker.start()
        try:
            with MonitorClient(connection) as monitors:
                yield worker.replays, monitors
        finally:
            worker.stop()


def test_resumed_episodes_decide_what_full_replays_decide(compared: tuple[Compared, MonitorClient]) -> None:
    replays, monitors = compared
    planned = [
        request(polling_interval_seconds=0.2, timeout_seconds=5, job_duration_seconds=0.7),
        request(
            polling_interval_seconds=0.2, timeout_seconds=5, job_duration_seconds=0.9, checks_per_generation=2
        ),
        request(polling_interval_seconds=0.2, timeout_seconds=0.8, job_duration_seconds=NEVER),
        request(
            polling_interval_seconds=0.2, timeout_seconds=5, job_duration_seconds=0.5, job_outcome="Failed"
        ),
        request(
            polling_interval_seconds=0.2,
            timeout_seconds=5,
            job_duration_seconds=0.5,
            job_fail_first_attempts=1,
            retry_first_interval_seconds=0.1,
        ),
    ] * 4
    interrupted = [
        request(polling_interval_seconds=0.2, timeout_seconds=60, job_duration_seconds=NEVER)
        for _ in range(4)
    ]
    ids = {monitors.start(each): each for each in planned}
    cancelled, paused = (
        [monitors.start(each) for each in interrupted[:2]],
        [monitors.start(each) for each in interrupted[2:]],
    )
    for instance_id in cancelled + paused:
        monitors.wait_for(instance_id, lambda snapshot: checks(snapshot) >= 2, timeout=WAIT_LIMIT)
    for instance_id in cancelled:
        monitors.cancel(instance_id)
    for instance_id in paused:
        monitors.suspend(instance_id)
        monitors.wait_for(
            instance_id, lambda snapshot: snapshot.runtime_status == "Suspended", timeout=WAIT_LIMIT
        )
        monitors.resume(instance_id)
        monitors.wait_for(instance_id, lambda snapshot: checks(snapshot) >= 4, timeout=WAIT_LIMIT)
        monitors.cancel(instance_id)

    for instance_id, planned_request in ids.items():
        final = monitors.follow(instance_id, timeout=WAIT_LIMIT)
        expected = predict(planned_request)
        assert final.result is not None, final
        assert (final.result.final_status, final.result.checks_performed) == (
            expected.final_status,
            expected.checks_performed,
        )
    for instance_id in cancelled + paused:
        final = monitors.follow(instance_id, timeout=WAIT_LIMIT)
        assert final.result is not None and final.result.final_status == "Cancelled", final

    assert replays.different == []
    assert replays.resumed > 3 * replays.replayed, (replays.resumed, replays.replayed)
    assert len(replays) == 0  # every monitor ended, so no context is kept


@pytest.fixture(scope="module")
def recorded(compared: tuple[Compared, MonitorClient]) -> tuple[LeanWorker, list[pb.OrchestratorRequest]]:
    """One monitor's work items, in the order its one generation received them (ended by a timeout)."""
    replays, monitors = compared
    instance_id = monitors.start(
        request(polling_interval_seconds=0.1, timeout_seconds=0.6, job_duration_seconds=NEVER)
    )
    monitors.follow(instance_id, timeout=WAIT_LIMIT)
    items = replays.items[instance_id]
    assert len(items) > 8 and items[-1].pastEvents  # several episodes, in one history
    return replays.worker, items  # type: ignore[return-value]


def run_all(
    replays: WarmReplays, items: list[pb.OrchestratorRequest]
) -> list[tuple[list[bytes], str | None]]:
    return [wire(replays.execute(item)) for item in items]


def test_a_recorded_generation_resumes_every_episode_after_the_first(recorded: Any) -> None:
    worker, items = recorded
    replays = WarmReplays(worker)
    assert run_all(replays, items) == [wire(full_replay(worker, item)) for item in items]
    assert (replays.replayed, replays.resumed) == (1, len(items) - 1)


def test_a_work_item_given_again_is_replayed_from_the_start(recorded: Any) -> None:
    worker, items = recorded
    replays = WarmReplays(worker)
    run_all(replays, items[:4])
    again = wire(replays.execute(items[3]))  # its completion was lost: the same item again
    assert again == wire(full_replay(worker, items[3]))
    assert replays.replayed == 2
    assert run_all(replays, items[4:6]) == [wire(full_replay(worker, item)) for item in items[4:6]]
    assert replays.replayed == 2  # the item given again left a context the next ones continue


def test_episodes_another_worker_ran_meanwhile_are_replayed_after_the_kept_ones(recorded: Any) -> None:
    worker, items = recorded
    replays = WarmReplays(worker)
    run_all(replays, items[:3])
    assert wire(replays.execute(items[6])) == wire(full_replay(worker, items[6]))
    assert (replays.replayed, replays.resumed) == (1, 3)


def test_a_history_that_differs_from_what_the_context_saw_is_replayed_from_the_start(recorded: Any) -> None:
    worker, items = recorded
    replays = WarmReplays(worker)
    run_all(replays, items[:3])
    rewritten = pb.OrchestratorRequest()
    rewritten.CopyFrom(items[3])
    started = len(
        items[2].pastEvents
    )  # the previous episode's OrchestratorStarted, as another dispatch made it
    assert rewritten.pastEvents[started].HasField("orchestratorStarted")
    rewritten.pastEvents[started].timestamp.nanos += 1000
    assert wire(replays.execute(rewritten)) == wire(full_replay(worker, rewritten))
    assert replays.replayed == 2


def test_contexts_kept_are_bounded_and_ended_ones_dropped(recorded: Any) -> None:
    worker, items = recorded
    replays = WarmReplays(worker, limit=1)
    other = [pb.OrchestratorRequest() for _ in items[:4]]
    for copy, item in zip(other, items[:4], strict=True):
        copy.CopyFrom(item)
        copy.instanceId = "another"
    for mine, theirs in zip(items[:4], other, strict=True):
        replays.execute(mine)
        replays.execute(theirs)
        assert len(replays) == 1
    assert replays.resumed == 0  # each pushed the other out
    run_all(replays, items)
    assert len(replays) == 0  # the last episode ended the orchestration


def test_contexts_sleeping_beyond_the_horizon_are_not_kept(recorded: Any) -> None:
    """With a horizon of 0 s, only an episode that asked for an activity leaves a context (every timer the
    monitor starts is in the future), so exactly the episodes after those are resumed."""
    worker, items = recorded
    replays = WarmReplays(worker, seconds=0)
    asked = [any(a.HasField("scheduleTask") for a in full_replay(worker, item).actions) for item in items]
    run_all(replays, items)
    assert 0 < replays.resumed == sum(asked[:-1]) < len(items) - 1


def test_only_the_sdk_path_handles_rewinds_and_empty_items(recorded: Any) -> None:
    worker, items = recorded
    replays = WarmReplays(worker)
    assert replays.handles(items[1])
    rewind = pb.OrchestratorRequest(instanceId="x", newEvents=[helpers.new_orchestrator_started_event()])
    rewind.newEvents.add().executionRewound.SetInParent()
    assert not replays.handles(rewind)
    assert not replays.handles(pb.OrchestratorRequest(instanceId="x"))


class RefusingStub:
    def CompleteOrchestratorTask(self, response: pb.OrchestratorResponse) -> None:
        raise ConnectionError("the scheduler went away")


def test_a_result_not_delivered_leaves_no_context(recorded: Any) -> None:
    worker, items = recorded
    replays = WarmReplays(worker)
    replays.run(items[0], RefusingStub(), "token")
    assert len(replays) == 0


class Recording:
    def __init__(self) -> None:
        self.responses: list[pb.OrchestratorResponse] = []

    def CompleteOrchestratorTask(self, response: pb.OrchestratorResponse) -> None:
        self.responses.append(response)


def test_each_response_is_the_one_the_sdk_worker_sends(recorded: Any) -> None:
    """The whole response (actions, custom status, token, trace context) equals the SDK's for every item;
    a start time the SDK takes from its clock (none came with the item) is compared for presence only."""
    worker, items = recorded
    ours, sdks = Recording(), Recording()
    replays = WarmReplays(worker)
    for item in items:
        replays.run(item, ours, "token")
        LeanWorker.__mro__[1]._execute_orchestrator(worker, item, sdks, "token")
    assert len(ours.responses) == len(sdks.responses) == len(items)
    for item, mine, theirs in zip(items, ours.responses, sdks.responses, strict=True):
        if not item.orchestrationTraceContext.HasField("spanStartTime"):
            for response in (mine, theirs):
                assert (
                    response.orchestrationTraceContext.HasField("spanStartTime") == worker._emit_trace_spans
                )
                response.orchestrationTraceContext.ClearField("spanStartTime")
        assert mine.SerializeToString() == theirs.SerializeToString()
    assert replays.resumed == len(items) - 1
