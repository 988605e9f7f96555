"""The local scheduler's hub, driven directly (no gRPC): leases, redelivery, fencing, abandon, expiry,
persistence across a restart, limits and retention. Each step is what a worker or client call does."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
from durabletask.internal import helpers
from durabletask.internal import orchestrator_service_pb2 as pb

from monitoring.scheduler.control import Control
from monitoring.scheduler.dispatch import ACCEPTED, DROPPED, STALE, Dispatch
from monitoring.scheduler.histories import Histories
from monitoring.scheduler.hub import LimitReached, TaskHub
from monitoring.scheduler.loading import open_hub
from monitoring.scheduler.records import HubOptions, Instance
from monitoring.scheduler.store import SqliteStore


@dataclass
class Rig:
    """A started task hub and the two faces the servicer uses: work items (workers), control (clients)."""

    hub: TaskHub
    dispatch: Dispatch
    control: Control


def new_hub(path: Path | None = None, **options: float) -> Rig:
    hub = open_hub(SqliteStore(path) if path else None, HubOptions(**options))  # type: ignore[arg-type]
    hub.start()
    return Rig(hub, Dispatch(hub), Control(hub))


def create(rig: Rig, instance_id: str = "m1") -> None:
    request = pb.CreateInstanceRequest(instanceId=instance_id, name="orch")
    rig.hub.commit(rig.control.create(request, instance_id))


def turn(item: pb.WorkItem, *actions: pb.OrchestratorAction) -> pb.OrchestratorResponse:
    request = item.orchestratorRequest
    return pb.OrchestratorResponse(
        instanceId=request.instanceId, actions=list(actions), completionToken=item.completionToken
    )


def done(item: pb.WorkItem, result: str = '"ok"') -> pb.ActivityResponse:
    request = item.activityRequest
    instance_id = request.orchestrationInstance.instanceId
    response = pb.ActivityResponse(
        instanceId=instance_id, taskId=request.taskId, completionToken=item.completionToken
    )
    response.result.value = result
    return response


def schedule_check(task_id: int = 1) -> pb.OrchestratorAction:
    return helpers.new_schedule_task_action(task_id, "check", '"in"', None)


def test_an_orchestration_of_a_stream_that_ends_goes_to_the_next_worker_and_the_old_answer_loses() -> None:
    rig = new_hub()
    create(rig)
    a, b = rig.dispatch.open_stream("worker-a"), rig.dispatch.open_stream("worker-b")
    first = rig.dispatch.take(a, wait=0)
    assert first is not None and first.HasField("orchestratorRequest")
    assert rig.dispatch.take(b, wait=0) is None, "one lease at a time"
    rig.dispatch.close_stream(a)  # worker A died
    second = rig.dispatch.take(b, wait=0)
    assert second is not None and second.orchestratorRequest.instanceId == "m1"
    assert second.completionToken != first.completionToken
    assert [e.WhichOneof("eventType") for e in second.orchestratorRequest.newEvents] == [
        "orchestratorStarted",
        "executionStarted",
    ]
    assert rig.dispatch.complete_orchestration(turn(first, schedule_check())) == STALE
    assert rig.dispatch.complete_orchestration(turn(second, schedule_check())) == ACCEPTED
    assert rig.dispatch.complete_orchestration(turn(second, schedule_check())) == STALE, (
        "a token answers once"
    )
    assert len(rig.hub.activities) == 1
    rig.hub.stop()


def test_an_activity_out_with_a_stream_that_ends_runs_again_and_only_the_lease_holder_is_counted() -> None:
    rig = new_hub()
    create(rig)
    a = rig.dispatch.open_stream("worker-a")
    start = rig.dispatch.take(a, wait=0)
    assert start is not None
    rig.dispatch.complete_orchestration(turn(start, schedule_check()))
    check = rig.dispatch.take(a, wait=0)
    assert check is not None and check.activityRequest.name == "check"
    rig.dispatch.close_stream(a)
    b = rig.dispatch.open_stream("worker-b")
    again = rig.dispatch.take(b, wait=0)
    assert again is not None and again.activityRequest.taskId == check.activityRequest.taskId
    assert rig.dispatch.complete_activity(done(check)) == STALE
    assert rig.dispatch.complete_activity(done(again)) == ACCEPTED
    after = rig.dispatch.take(b, wait=0)
    assert after is not None
    kinds = [e.WhichOneof("eventType") for e in after.orchestratorRequest.newEvents]
    assert kinds == ["orchestratorStarted", "taskCompleted"], "exactly one result reached the orchestrator"
    rig.hub.stop()


def test_abandon_and_lease_expiry_put_items_back_with_new_tokens() -> None:
    rig = new_hub(lease_seconds=0.05)
    create(rig)
    stream = rig.dispatch.open_stream("worker")
    first = rig.dispatch.take(stream, wait=0)
    assert first is not None and rig.dispatch.abandon(first.completionToken, "orchestration")
    second = rig.dispatch.take(stream, wait=0)
    assert second is not None and second.completionToken != first.completionToken
    time.sleep(0.1)
    assert rig.hub.expire_leases() == 1
    third = rig.dispatch.take(stream, wait=0)
    assert third is not None and rig.dispatch.complete_orchestration(turn(second)) == STALE
    assert rig.dispatch.complete_orchestration(turn(third)) == ACCEPTED
    rig.hub.stop()


def test_terminate_ends_an_instance_someone_holds_and_its_late_answer_is_dropped() -> None:
    rig = new_hub()
    create(rig)
    stream = rig.dispatch.open_stream("worker")
    held = rig.dispatch.take(stream, wait=0)
    assert held is not None
    rig.hub.commit(rig.control.terminate("m1", '"stop"'))
    state = rig.control.get("m1")
    assert state is not None and state.orchestrationStatus == pb.ORCHESTRATION_STATUS_TERMINATED
    assert rig.dispatch.complete_orchestration(turn(held, schedule_check())) == DROPPED
    assert not rig.hub.activities and rig.dispatch.take(stream, wait=0) is None
    rig.hub.stop()


def test_a_restart_on_the_same_file_continues_queued_work_and_timers_with_new_tokens(tmp_path: Path) -> None:
    path = tmp_path / "rig.sqlite3"
    rig = new_hub(path)
    create(rig)
    stream = rig.dispatch.open_stream("worker")
    start = rig.dispatch.take(stream, wait=0)
    assert start is not None
    soon = datetime.now(timezone.utc) + timedelta(milliseconds=300)
    rig.dispatch.complete_orchestration(
        turn(start, schedule_check(1), helpers.new_create_timer_action(2, soon))
    )
    check = rig.dispatch.take(stream, wait=0)  # out with the worker when the scheduler dies
    assert check is not None
    rig.hub.stop()

    again = new_hub(path)
    stream = again.dispatch.open_stream("worker")
    redelivered = again.dispatch.take(stream, wait=0)
    assert redelivered is not None and redelivered.activityRequest.taskId == 1
    assert redelivered.completionToken != check.completionToken
    assert again.dispatch.complete_activity(done(check)) == STALE, (
        "a token from before the restart is not current"
    )
    assert again.dispatch.complete_activity(done(redelivered)) == ACCEPTED
    deadline = time.monotonic() + 10
    kinds: list[str] = []
    while "timerFired" not in kinds and time.monotonic() < deadline:
        item = again.dispatch.take(stream, wait=0.5)
        if item is not None:
            kinds += [e.WhichOneof("eventType") for e in item.orchestratorRequest.newEvents]
            again.dispatch.complete_orchestration(turn(item))
    assert kinds.count("taskCompleted") == 1 and kinds.count("timerFired") == 1
    history = again.control.history("m1")
    assert [e.WhichOneof("eventType") for e in history].count("taskScheduled") == 1
    again.hub.stop()


def test_events_beyond_the_caps_are_refused_but_a_new_name_still_gets_in() -> None:
    rig = new_hub(max_pending_events=5, max_history_events=40, history_reserve=20)
    create(rig)  # two events wait: the orchestration's start
    for _ in range(3):
        rig.control.raise_event("m1", "noise", None)
    with pytest.raises(LimitReached, match="already has 5 events waiting"):
        rig.control.raise_event("m1", "noise", None)
    stream = rig.dispatch.open_stream("worker")
    refusal = ""
    for _ in range(100):  # the orchestration takes every event in; its history grows to the cap
        item = rig.dispatch.take(stream, wait=0)
        if item is not None:
            assert rig.dispatch.complete_orchestration(turn(item)) == ACCEPTED
        try:
            rig.control.raise_event("m1", "noise", None)
        except LimitReached as refused:
            refusal = str(refused)
            break
    assert "it takes no more 'noise' events" in refusal
    rig.control.raise_event("m1", "cancel", None)  # a name the instance holds none of uses the reserve
    with pytest.raises(LimitReached, match="no more 'cancel' events"):
        rig.control.raise_event("m1", "cancel", None)
    state = rig.control.get("m1")
    assert state is not None and state.orchestrationStatus == pb.ORCHESTRATION_STATUS_RUNNING
    rig.hub.stop()


def test_starts_beyond_the_active_instance_cap_are_refused_and_finished_ones_do_not_count() -> None:
    rig = new_hub(max_active_instances=3)
    for name in ("a", "b", "c"):
        create(rig, name)
    with pytest.raises(LimitReached, match="already runs 3 instances"):
        create(rig, "d")
    rig.hub.commit(rig.control.terminate("a", None))
    create(rig, "d")  # four instances held, three of them active
    with pytest.raises(LimitReached, match="already runs 3 instances"):
        create(rig, "e")
    rig.hub.stop()


def test_finished_instances_past_the_retention_are_purged() -> None:
    rig = new_hub(retention_seconds=60)
    for name in ("old", "new", "running"):
        create(rig, name)
    rig.hub.commit(rig.control.terminate("old", None))
    rig.hub.commit(rig.control.terminate("new", None))
    rig.hub.instances.get("old").completed = time.time() - 61
    assert rig.hub.purge_expired() == 1
    assert (
        rig.control.get("old") is None
        and rig.control.get("new") is not None
        and rig.control.get("running") is not None
    )
    rig.hub.stop()


def test_with_a_state_file_an_ended_instances_history_leaves_memory_and_is_read_back(tmp_path: Path) -> None:
    path = tmp_path / "rig.sqlite3"
    rig = new_hub(path)
    create(rig)
    stream = rig.dispatch.open_stream("worker")
    item = rig.dispatch.take(stream, wait=0)
    assert item is not None
    done_turn = helpers.new_complete_orchestration_action(
        1, pb.ORCHESTRATION_STATUS_COMPLETED, result='"done"'
    )
    assert rig.dispatch.complete_orchestration(turn(item, done_turn)) == ACCEPTED
    kept = [e.WhichOneof("eventType") for e in rig.control.history("m1")]
    assert kept[-1] == "executionCompleted"
    rig.hub.commit(rig.hub.store.submit([]))  # everything so far is in the file
    assert rig.hub.release_histories(now=time.time() + 3600) == 1
    assert len(rig.hub.instances.get("m1").history) == 0
    assert [e.WhichOneof("eventType") for e in rig.control.history("m1")] == kept
    rig.hub.stop()
    again = new_hub(path)
    assert len(again.hub.instances.get("m1").history) == 0, "ended histories are not loaded at start"
    assert [e.WhichOneof("eventType") for e in again.control.history("m1")] == kept
    again.hub.stop()


def test_a_waiting_instances_history_leaves_memory_and_comes_back_whole_when_it_runs(tmp_path: Path) -> None:
    """With a state file, an instance waiting on a timer keeps its record in memory and its history in the
    file only; its next work item (here a raised event's) carries every past event, as after a restart."""
    path = tmp_path / "rig.sqlite3"
    rig = new_hub(path, keep_waiting_history_seconds=30)
    create(rig)
    stream = rig.dispatch.open_stream("worker")
    start = rig.dispatch.take(stream, wait=0)
    assert start is not None
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    assert (
        rig.dispatch.complete_orchestration(turn(start, helpers.new_create_timer_action(1, later)))
        == ACCEPTED
    )
    kept = [e.SerializeToString() for e in rig.control.history("m1")]
    instance = rig.hub.instances.get("m1")
    assert rig.hub.release_histories(now=time.time() + 10) == 0, "waited less than 30 s: kept"
    rig.hub.commit(rig.hub.store.submit([]))
    assert rig.hub.release_histories(now=time.time() + 31) == 1
    assert instance.history_in_store and not instance.history.wire and len(instance.history) == len(kept)
    assert [e.SerializeToString() for e in rig.control.history("m1")] == kept
    assert instance.history_in_store, "a history query reads the file and keeps nothing"

    def next_turn(rig: Rig) -> list[bytes]:
        rig.hub.commit(rig.control.raise_event("m1", "wake", None))
        item = rig.dispatch.take(rig.dispatch.open_stream("worker"), wait=0)
        assert item is not None
        past = [e.SerializeToString() for e in item.orchestratorRequest.pastEvents]
        assert rig.dispatch.complete_orchestration(turn(item)) == ACCEPTED
        return past

    assert next_turn(rig) == kept
    assert not instance.history_in_store and len(instance.history) > len(kept), "warm, and it grew"
    kept = [e.SerializeToString() for e in rig.control.history("m1")]
    rig.hub.stop()
    again = new_hub(path)
    assert again.hub.instances.get("m1").history_in_store, "after a restart every history is in the file"
    assert len(again.hub.instances.get("m1").history) == len(kept)
    assert next_turn(again) == kept
    again.hub.stop()


def test_a_history_the_file_may_not_hold_yet_stays_in_memory() -> None:
    """Let go only once every change up to the instance's last is committed: while the store's writer is
    behind, the history stays; once it has passed what it had been given a round earlier, it goes."""
    store = SimpleNamespace(durable=True, trouble=None, submitted=5, committed=3)
    histories = Histories(store, HubOptions(keep_waiting_history_seconds=30))  # type: ignore[arg-type]
    waiting = Instance("m1", "orch", None, pb.ORCHESTRATION_STATUS_RUNNING, None, created=0.0, updated=100.0)
    waiting.history.append(b"")
    assert histories.release([waiting], *histories.cutoffs(200.0)) == 0, (
        "steps 4 and 5 are not committed: maybe its own"
    )
    store.submitted, store.committed = 9, 6  # passed what it had at 200 s (5), not all it has now (9)
    assert histories.release([waiting], *histories.cutoffs(210.0)) == 1 and waiting.history_in_store
    assert len(waiting.history) == 1, "its length stays known"
    busy = Instance("m2", "orch", None, pb.ORCHESTRATION_STATUS_RUNNING, None, created=0.0, updated=100.0)
    busy.inbox.append((1, pb.HistoryEvent()))
    leased = Instance("m3", "orch", None, pb.ORCHESTRATION_STATUS_RUNNING, None, created=0.0, updated=100.0)
    leased.lease = "token"
    recent = Instance("m4", "orch", None, pb.ORCHESTRATION_STATUS_RUNNING, None, created=0.0, updated=195.0)
    store.committed = store.submitted
    assert histories.release([busy, leased, recent], *histories.cutoffs(220.0)) == 0, (
        "work waits, out, or waited 25 s"
    )
    store.trouble = "the disk is full"
    assert histories.cutoffs(1e6) is None, "none goes while writes fail"


def test_an_activity_of_an_execution_that_continued_as_new_is_dropped_not_redone() -> None:
    rig = new_hub()
    create(rig)
    stream = rig.dispatch.open_stream("worker")
    start = rig.dispatch.take(stream, wait=0)
    assert start is not None and start.HasField("orchestratorRequest")
    rig.dispatch.complete_orchestration(turn(start, schedule_check()))
    check = rig.dispatch.take(stream, wait=0)
    assert check is not None and check.HasField("activityRequest")
    rig.control.raise_event("m1", "wake", None)
    woken = rig.dispatch.take(stream, wait=0)
    assert woken is not None and woken.HasField("orchestratorRequest")
    again = helpers.new_complete_orchestration_action(
        2, pb.ORCHESTRATION_STATUS_CONTINUED_AS_NEW, result='"next"'
    )
    assert rig.dispatch.complete_orchestration(turn(woken, again)) == ACCEPTED
    assert rig.dispatch.complete_activity(done(check)) == DROPPED, (
        "its execution is over: nothing runs it again"
    )
    fresh = rig.dispatch.take(stream, wait=0)
    assert fresh is not None and fresh.HasField("orchestratorRequest")
    kinds = [e.WhichOneof("eventType") for e in fresh.orchestratorRequest.newEvents]
    assert kinds == ["orchestratorStarted", "executionStarted"] and not fresh.orchestratorRequest.pastEvents
    assert rig.dispatch.take(stream, wait=0) is None
    rig.hub.stop()


def test_a_stream_holds_no_more_items_of_a_kind_than_its_worker_runs_and_other_kinds_go_on() -> None:
    """A worker that queued items past what it runs let their leases run out: they were handed out again,
    and ran twice. Each kind is capped by what the worker said (``maxConcurrent*``), the others go on."""
    rig = new_hub()
    for instance_id in ("m1", "m2", "m3"):
        create(rig, instance_id)
    stream = rig.dispatch.open_stream("worker", limits={"orchestration": 2, "activity": 1})
    first, second = rig.dispatch.take(stream, wait=0), rig.dispatch.take(stream, wait=0)
    assert first is not None and second is not None
    assert rig.dispatch.take(stream, wait=0) is None, "two orchestrations held: the third waits"
    assert rig.dispatch.take(rig.dispatch.open_stream("other"), wait=0) is not None, "another worker's turn"
    rig.dispatch.complete_orchestration(turn(first, schedule_check()))
    check = rig.dispatch.take(stream, wait=0)
    assert check is not None and check.HasField("activityRequest"), "a different kind still comes"
    assert rig.dispatch.complete_activity(done(check)) == ACCEPTED
    rig.hub.stop()


def test_a_freed_slot_wakes_a_full_stream_that_waits() -> None:
    rig = new_hub()
    for instance_id in ("m1", "m2"):
        create(rig, instance_id)
    stream = rig.dispatch.open_stream("worker", limits={"orchestration": 1})
    first = rig.dispatch.take(stream, wait=0)
    assert first is not None
    wake, freed = rig.hub.leases.on_freed, []
    assert wake == rig.hub.work.notify_all
    rig.hub.leases.on_freed = lambda: (freed.append("freed"), wake())
    taken: list[pb.WorkItem | None] = []
    waiting = threading.Thread(target=lambda: taken.append(rig.dispatch.take(stream, wait=600)))
    waiting.start()
    while not rig.hub.work._waiters:  # type: ignore[attr-defined]  # the take is waiting for work
        time.sleep(0.01)
    later = datetime.now(timezone.utc) + timedelta(days=1)
    timer = helpers.new_create_timer_action(1, later)  # a turn that makes no new work: only the slot frees
    assert rig.dispatch.complete_orchestration(turn(first, timer)) == ACCEPTED
    waiting.join()
    item = taken[0]
    assert item is not None and item.orchestratorRequest.instanceId == "m2"
    assert freed == ["freed"], "the slot's end woke the waiting stream (without it the take waits its 600 s)"
    rig.hub.stop()
