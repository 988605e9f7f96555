"""Entity work items on the hub, driven directly (no gRPC), on a clock that moves only when told: a batch
is leased to one stream, an expired lease hands it to the next with a new token, the old token's late
answer is refused and the state is applied once; a stream's entity filter decides what it is offered;
an entity held in a critical section runs only its owner's calls."""

from __future__ import annotations

from durabletask.internal import orchestrator_service_pb2 as pb

from monitoring.scheduler import entity_steps
from monitoring.scheduler.clock import ManualClock
from monitoring.scheduler.control import Control
from monitoring.scheduler.dispatch import ACCEPTED, STALE, Dispatch
from monitoring.scheduler.entity_control import EntityControl
from monitoring.scheduler.loading import open_hub
from monitoring.scheduler.records import HubOptions, LockRequest
from monitoring.scheduler.store import Op

COUNTER = "@counter@a"


def rig(clock: ManualClock) -> tuple[Dispatch, EntityControl]:
    hub = open_hub(None, HubOptions(lease_seconds=30), clock)
    return Dispatch(hub), EntityControl(hub)


def signal(entities: EntityControl, name: str = "add", data: str = "1", entity_id: str = COUNTER) -> None:
    request = pb.SignalEntityRequest(instanceId=entity_id, name=name, requestId=f"r-{name}-{data}")
    request.input.value = data
    entities.signal(request)


def answer(item: pb.WorkItem, state: str) -> pb.EntityBatchResult:
    count = len(item.entityRequestV2.operationRequests)
    success = pb.OperationResult(success=pb.OperationResultSuccess())
    result = pb.EntityBatchResult(completionToken=item.completionToken, results=[success] * count)
    result.entityState.value = state
    return result


def test_an_expired_entity_lease_hands_the_batch_on_and_the_late_answer_is_refused() -> None:
    clock = ManualClock()
    dispatch, entities = rig(clock)
    signal(entities)
    first, second = dispatch.open_stream("w1"), dispatch.open_stream("w2")
    item = dispatch.take(first, wait=0)
    assert item is not None and item.HasField("entityRequestV2")
    assert dispatch.take(second, wait=0) is None, "the batch is out with one worker only"
    clock.advance(31)
    assert dispatch.hub.expire_leases() == 1
    again = dispatch.take(second, wait=0)
    assert again is not None and again.completionToken != item.completionToken
    assert len(again.entityRequestV2.operationRequests) == 1
    assert dispatch.complete_entity(answer(item, "1")) == STALE
    assert dispatch.complete_entity(answer(again, "1")) == ACCEPTED
    found = entities.get(COUNTER, include_state=True)
    assert found is not None and found.serializedState.value == "1"
    assert dispatch.take(first, wait=0) is None, "nothing left to run"


def test_a_stream_is_offered_only_the_entities_its_filter_names() -> None:
    dispatch, entities = rig(ManualClock())
    signal(entities)
    others = dispatch.open_stream("w1", orchestrations={}, activities={}, entities={"other": frozenset()})
    assert dispatch.take(others, wait=0) is None
    counters = dispatch.open_stream("w2", orchestrations={}, activities={}, entities={"counter": frozenset()})
    item = dispatch.take(counters, wait=0)
    assert item is not None and item.entityRequestV2.instanceId == COUNTER


def test_a_locked_entity_runs_only_its_owners_calls_until_unlocked() -> None:
    dispatch, entities = rig(ManualClock())
    hub = dispatch.hub
    Control(hub).create(pb.CreateInstanceRequest(instanceId="owner", name="orch"), "owner")  # the holder
    ops: list[Op] = []
    with hub.lock:
        hub.entities.waiting_locks.append(LockRequest(next(hub.rows), "section-1", "owner", (COUNTER,)))
        entity_steps.grant_waiting(hub, ops)
    signal(entities, data="5")  # someone else's signal waits
    called = pb.EntityOperationCalledEvent(requestId="c1", operation="get")
    called.parentInstanceId.value = "owner"
    called.targetInstanceId.value = COUNTER
    with hub.lock:
        entity_steps.send(hub, COUNTER, pb.HistoryEvent(eventId=-1, entityOperationCalled=called), ops)
    stream = dispatch.open_stream("w1", orchestrations={}, activities={})  # entity work items only
    item = dispatch.take(stream, wait=0)
    assert item is not None
    batch = item.entityRequestV2.operationRequests
    assert [e.WhichOneof("eventType") for e in batch] == ["entityOperationCalled"], "only the owner's call"
    assert dispatch.complete_entity(answer(item, "0")) == ACCEPTED
    assert dispatch.take(stream, wait=0) is None, "the signal waits while the section holds the entity"
    with hub.lock:
        assert entity_steps.release_locks(hub, "owner", ops) == 1
    item = dispatch.take(stream, wait=0)
    assert item is not None
    assert [e.WhichOneof("eventType") for e in item.entityRequestV2.operationRequests] == [
        "entityOperationSignaled"
    ]
