"""The local scheduler's gRPC servicer: the Durable Task sidecar protocol over a task hub's worker side
(:mod:`~.dispatch`) and client side (:mod:`~.control`).

The SDK's own ``InMemoryOrchestrationBackend`` loses work (an activity taken by a worker that dies exists
nowhere any more; an orchestration out with it stays in flight for ever), keeps nothing across a restart
and wedges an instance past its history cap. This servicer speaks the same protocol, so the SDK's worker
and client (and the official samples) use it unchanged, and keeps the promises the Durable Task Scheduler
keeps: leased work items, redelivery, fenced completions, persistence, limits that refuse.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any, TypeVar

import grpc
from durabletask.internal import orchestrator_service_pb2 as pb
from durabletask.internal import orchestrator_service_pb2_grpc as stubs
from google.protobuf import empty_pb2, wrappers_pb2

from monitoring.scheduler import queries
from monitoring.scheduler.control import Control
from monitoring.scheduler.dispatch import STALE, UNSAVED, Dispatch
from monitoring.scheduler.entity_control import EntityControl
from monitoring.scheduler.hub import HubError, TaskHub
from monitoring.scheduler.records import TERMINAL, Instance, LeaseKind
from monitoring.scheduler.unserved import UNSERVED_RPCS, refusal

logger = logging.getLogger(__name__)
T = TypeVar("T")
HISTORY_CHUNK = 200
# Trailing metadata on every Hello answer: "this is the project's own scheduler", so a worker knows its fast
# path (monitoring.runtime.worker_choice) was verified against what it talks to. The value is the version of
# the announcement; a scheduler that sends nothing (the DTS emulator, Azure) gets the SDK's own worker.
ANNOUNCEMENT = ("x-durable-monitoring-scheduler", "1")
LEASE_LOST = (
    "its lease ended (this worker's stream closed, or the lease expired): another worker gets the item"
)


def _limits(request: pb.GetWorkItemsRequest) -> dict[LeaseKind, int]:
    """What the worker said it runs at once, per kind (0 where an old SDK lacks the field). The scheduler
    leases it no more than that, so no item waits in the worker's own queue while its lease runs out, to
    be handed out and run a second time."""
    return {
        "orchestration": getattr(request, "maxConcurrentOrchestrationWorkItems", 0),
        "activity": getattr(request, "maxConcurrentActivityWorkItems", 0),
        "entity": getattr(request, "maxConcurrentEntityWorkItems", 0),
    }


def _filters(entries: Iterable[Any]) -> dict[str, frozenset[str]]:
    accepted: dict[str, frozenset[str]] = {}
    for entry in entries:
        accepted[entry.name] = accepted.get(entry.name, frozenset()) | frozenset(entry.versions)
    return accepted


class SchedulerServicer(stubs.TaskHubSidecarServiceServicer):
    def __init__(self, hub: TaskHub) -> None:
        self.hub = hub
        self.dispatch = Dispatch(hub)
        self.control = Control(hub)
        self.entities = EntityControl(hub)

    @staticmethod
    def _call(context: grpc.ServicerContext, operation: Callable[[], T]) -> T:
        try:
            return operation()
        except HubError as error:
            context.abort(getattr(grpc.StatusCode, error.code), str(error))
            raise  # not reached: abort raises

    def _commit(self, context: grpc.ServicerContext, ticket: int) -> None:
        """Answer only once the change is in the state file (UNAVAILABLE if it cannot be)."""
        self._call(context, lambda: self.hub.commit(ticket))

    # --- clients ----------------------------------------------------------------------------------------

    def Hello(self, request: empty_pb2.Empty, context: grpc.ServicerContext) -> empty_pb2.Empty:
        context.set_trailing_metadata((ANNOUNCEMENT,))  # what lets a worker choose its fast path
        return empty_pb2.Empty()

    def StartInstance(self, request: pb.CreateInstanceRequest, context: grpc.ServicerContext) -> Any:
        instance_id = request.instanceId or uuid.uuid4().hex
        self._commit(context, self._call(context, lambda: self.control.create(request, instance_id)))
        return pb.CreateInstanceResponse(instanceId=instance_id)

    def GetInstance(self, request: pb.GetInstanceRequest, context: grpc.ServicerContext) -> Any:
        state = self.control.get(request.instanceId, request.getInputsAndOutputs)
        return pb.GetInstanceResponse(exists=state is not None, orchestrationState=state)

    def _wait(self, request: Any, context: grpc.ServicerContext, done: Callable[[Instance], bool]) -> Any:
        timeout = context.time_remaining()
        state = self.control.wait_for(request.instanceId, done, timeout)
        if state is None:
            if self.control.get(request.instanceId, False) is not None:
                context.abort(
                    grpc.StatusCode.DEADLINE_EXCEEDED, f"instance {request.instanceId!r} still waiting"
                )
            return pb.GetInstanceResponse(exists=False)
        if not request.getInputsAndOutputs:
            state.ClearField("input")
            state.ClearField("output")
        return pb.GetInstanceResponse(exists=True, orchestrationState=state)

    def WaitForInstanceStart(self, request: pb.GetInstanceRequest, context: grpc.ServicerContext) -> Any:
        return self._wait(request, context, lambda i: i.status != pb.ORCHESTRATION_STATUS_PENDING)

    def WaitForInstanceCompletion(self, request: pb.GetInstanceRequest, context: grpc.ServicerContext) -> Any:
        return self._wait(request, context, lambda i: i.terminal)

    def RaiseEvent(self, request: pb.RaiseEventRequest, context: grpc.ServicerContext) -> Any:
        data = request.input.value if request.HasField("input") else None
        ticket = self._call(context, lambda: self.control.raise_event(request.instanceId, request.name, data))
        self._commit(context, ticket)
        return pb.RaiseEventResponse()

    def TerminateInstance(self, request: pb.TerminateRequest, context: grpc.ServicerContext) -> Any:
        output = request.output.value if request.HasField("output") else None
        terminate = partial(self.control.terminate, request.instanceId, output, request.recursive)
        self._commit(context, self._call(context, terminate))
        return pb.TerminateResponse()

    def RewindInstance(self, request: pb.RewindInstanceRequest, context: grpc.ServicerContext) -> Any:
        reason = request.reason.value if request.HasField("reason") else None
        self._commit(context, self._call(context, lambda: self.control.rewind(request.instanceId, reason)))
        return pb.RewindInstanceResponse()

    def SuspendInstance(self, request: pb.SuspendRequest, context: grpc.ServicerContext) -> Any:
        reason = request.reason.value if request.HasField("reason") else None
        self._commit(context, self._call(context, lambda: self.control.suspend(request.instanceId, reason)))
        return pb.SuspendResponse()

    def ResumeInstance(self, request: pb.ResumeRequest, context: grpc.ServicerContext) -> Any:
        reason = request.reason.value if request.HasField("reason") else None
        self._commit(
            context,
            self._call(context, lambda: self.control.suspend(request.instanceId, reason, resume=True)),
        )
        return pb.ResumeResponse()

    def PurgeInstances(self, request: pb.PurgeInstancesRequest, context: grpc.ServicerContext) -> Any:
        if request.instanceId:
            ids = [request.instanceId]
        elif request.HasField("instanceBatch"):
            ids = list(request.instanceBatch.instanceIds)
        else:
            query = request.purgeInstanceFilter
            ids = [
                i.instance_id
                for i in self.control.select(queries.instance_filter(query, query.runtimeStatus))
            ]
        deleted, ticket = self.control.purge(ids, request.recursive)
        self._commit(context, ticket)
        return pb.PurgeInstancesResponse(
            deletedInstanceCount=deleted, isComplete=wrappers_pb2.BoolValue(value=True)
        )

    def QueryInstances(self, request: pb.QueryInstancesRequest, context: grpc.ServicerContext) -> Any:
        query = request.query
        prefix = query.instanceIdPrefix.value if query.HasField("instanceIdPrefix") else ""
        found = self.control.select(queries.instance_filter(query, query.runtimeStatus, prefix))
        token = query.continuationToken.value if query.HasField("continuationToken") else ""
        page, after = self._page(context, found, queries.by_creation, token, query.maxInstanceCount)
        response = pb.QueryInstancesResponse(
            orchestrationState=[i.state(query.fetchInputsAndOutputs) for i in page]
        )
        if after is not None:
            response.continuationToken.value = after
        return response

    @staticmethod
    def _page(context: grpc.ServicerContext, items: Any, key: Any, token: str, size: int) -> Any:
        try:
            return queries.page(items, key, token, size)
        except queries.BadToken as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))

    def ListInstanceIds(self, request: pb.ListInstanceIdsRequest, context: grpc.ServicerContext) -> Any:
        found = self.control.select(queries.ended_filter(request), queries.by_completion)
        token = request.lastInstanceKey.value if request.HasField("lastInstanceKey") else ""
        page, after = self._page(context, found, queries.by_completion, token, request.pageSize)
        response = pb.ListInstanceIdsResponse(instanceIds=[i.instance_id for i in page])
        if after is not None:
            response.lastInstanceKey.value = after
        return response

    def StreamInstanceHistory(self, request: Any, context: grpc.ServicerContext) -> Iterator[pb.HistoryChunk]:
        events = self._call(context, lambda: self.control.history(request.instanceId))
        for start in range(0, len(events), HISTORY_CHUNK):
            yield pb.HistoryChunk(events=events[start : start + HISTORY_CHUNK])

    def RestartInstance(self, request: pb.RestartInstanceRequest, context: grpc.ServicerContext) -> Any:
        old = self.control.get(request.instanceId, True)
        if old is None:
            context.abort(
                grpc.StatusCode.NOT_FOUND, f"orchestration instance {request.instanceId!r} not found"
            )
        if old.orchestrationStatus not in TERMINAL:
            context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, f"instance {request.instanceId!r} has not ended"
            )
        new_id = uuid.uuid4().hex if request.restartWithNewInstanceId else request.instanceId
        create = pb.CreateInstanceRequest(
            instanceId=new_id, name=old.name, input=old.input if old.HasField("input") else None
        )
        create.orchestrationIdReusePolicy.replaceableStatus.extend(TERMINAL)
        self._commit(context, self._call(context, lambda: self.control.create(create, new_id)))
        return pb.RestartInstanceResponse(instanceId=new_id)

    def SignalEntity(self, request: pb.SignalEntityRequest, context: grpc.ServicerContext) -> Any:
        self._commit(context, self._call(context, lambda: self.entities.signal(request)))
        return pb.SignalEntityResponse()

    def GetEntity(self, request: pb.GetEntityRequest, context: grpc.ServicerContext) -> Any:
        found = self.entities.get(request.instanceId, request.includeState)
        return pb.GetEntityResponse(exists=found is not None, entity=found)

    def QueryEntities(self, request: pb.QueryEntitiesRequest, context: grpc.ServicerContext) -> Any:
        page, after = self.entities.query(request.query)
        response = pb.QueryEntitiesResponse(entities=page)
        if after is not None:
            response.continuationToken.value = after
        return response

    def CleanEntityStorage(self, request: pb.CleanEntityStorageRequest, context: grpc.ServicerContext) -> Any:
        clean = partial(self.entities.clean, request.removeEmptyEntities, request.releaseOrphanedLocks)
        removed, released, ticket = self._call(context, clean)
        self._commit(context, ticket)
        return pb.CleanEntityStorageResponse(emptyEntitiesRemoved=removed, orphanedLocksReleased=released)

    def CreateTaskHub(self, request: Any, context: grpc.ServicerContext) -> Any:
        return pb.CreateTaskHubResponse()

    def DeleteTaskHub(self, request: Any, context: grpc.ServicerContext) -> Any:
        return pb.DeleteTaskHubResponse()

    # --- workers ----------------------------------------------------------------------------------------

    def GetWorkItems(self, request: pb.GetWorkItemsRequest, context: grpc.ServicerContext) -> Iterator[Any]:
        worker = dict(context.invocation_metadata() or ()).get("workerid", "")
        filters = request.workItemFilters if request.HasField("workItemFilters") else None
        stream = self.dispatch.open_stream(
            str(worker),
            _filters(filters.orchestrations) if filters is not None else None,
            _filters(filters.activities) if filters is not None else None,
            {e.name: frozenset() for e in filters.entities} if filters is not None else None,
            _limits(request),
        )
        # Runs when the call ends for any reason (the worker died, stopped or reconnected), on gRPC's thread.
        if not context.add_callback(lambda: self.dispatch.close_stream(stream)):
            self.dispatch.close_stream(stream)
            return
        ping_every = self.hub.options.health_ping_seconds
        last_sent = time.monotonic()
        try:
            while context.is_active() and stream.open:
                item = self.dispatch.take(stream, wait=min(1.0, ping_every))
                if item is None:
                    if time.monotonic() - last_sent >= ping_every:
                        yield pb.WorkItem(healthPing=pb.HealthPing())
                        last_sent = time.monotonic()
                    continue
                yield item
                last_sent = time.monotonic()
        finally:
            self.dispatch.close_stream(stream)

    def _answer(self, context: grpc.ServicerContext, outcome: str) -> Any:
        if outcome == STALE:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, LEASE_LOST)
        if outcome == UNSAVED:
            trouble = self.hub.store.trouble or "the scheduler cannot save its state now"
            context.abort(grpc.StatusCode.UNAVAILABLE, f"{trouble}: the work item runs again once it can")
        return pb.CompleteTaskResponse()

    def CompleteOrchestratorTask(
        self, request: pb.OrchestratorResponse, context: grpc.ServicerContext
    ) -> Any:
        return self._answer(context, self.dispatch.complete_orchestration(request))

    def CompleteActivityTask(self, request: pb.ActivityResponse, context: grpc.ServicerContext) -> Any:
        return self._answer(context, self.dispatch.complete_activity(request))

    def CompleteEntityTask(self, request: pb.EntityBatchResult, context: grpc.ServicerContext) -> Any:
        return self._answer(context, self.dispatch.complete_entity(request))

    def AbandonTaskEntityWorkItem(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.dispatch.abandon(request.completionToken, "entity")
        return pb.AbandonEntityTaskResponse()

    def AbandonTaskOrchestratorWorkItem(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.dispatch.abandon(request.completionToken, "orchestration")
        return pb.AbandonOrchestrationTaskResponse()

    def AbandonTaskActivityWorkItem(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.dispatch.abandon(request.completionToken, "activity")
        return pb.AbandonActivityTaskResponse()


def _refuse(name: str, capability: str) -> Callable[..., Any]:
    def unserved(self: SchedulerServicer, request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, refusal(name, capability))

    unserved.__name__ = name
    return unserved


for _name, _capability in UNSERVED_RPCS.items():
    setattr(SchedulerServicer, _name, _refuse(_name, _capability))
