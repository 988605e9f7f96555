"""Orchestrator episodes resumed where the previous one stopped, instead of replayed from the first event.

The SDK's worker replays an orchestration's whole history for every work item it receives. A monitor's
check is two episodes (the timer fired: call the activity; the answer came: set the status, start the next
timer) and a generation's history grows to about 80 events, so replaying costs about 1.1 ms of every
check (``benchmarks/replay.py``). :class:`WarmReplays` keeps, for the instances this worker ran last, the
SDK's executor and orchestration context as the previous episode left them. When the next work item's past
events begin with exactly the events that context has seen (its first event and the previous episode's new
events compared byte for byte), only the events after them are replayed, then the new ones are run, through
the SDK's own ``process_event``. Histories only grow, so this is the state a full replay would rebuild.

Contexts are kept for the last 1,000 instances run, and only while their orchestration waits for an
activity, an event, or a timer due within 30 s: a context kept a minute is likely to be pushed out by busier
ones before it is used, holds about 13 KB meanwhile, and saves a millisecond once a minute.

Anything else replays from the first event, as the SDK does: an instance another worker ran meanwhile, a
work item given again after its completion was lost, an instance purged and started again under the same
id, an orchestration that ended or continued as new (its context is dropped). Rewinds, versioned
registries, payload stores and recorded trace spans (a tracer provider set) are left to the SDK's own path,
and so is an episode that would fail its orchestration: only the SDK's executor says ``Failed``.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from durabletask.internal import helpers, tracing
from durabletask.internal import orchestrator_service_pb2 as pb
from durabletask.worker import (
    ExecutionResults,
    TaskHubGrpcWorker,
    _OrchestrationExecutor,
    _RuntimeOrchestrationContext,
)

WARM_LIMIT = 1000  # contexts kept at most; the least recently used is dropped first
WARM_SECONDS = 30.0  # a context whose orchestration sleeps longer than this is not kept


@dataclass
class _Warm:
    """An executor and context as an episode left them, and what must match for the next to go on."""

    executor: _OrchestrationExecutor
    context: _RuntimeOrchestrationContext
    seen: int = 0  # events processed: the previous item's past and new events
    marks: list[tuple[int, bytes]] = field(default_factory=list)  # (position, event's wire bytes)

    def continues(self, past: Sequence[pb.HistoryEvent]) -> bool:
        if len(past) < self.seen:
            return False
        return all(past[position].SerializeToString() == wire for position, wire in self.marks)

    def remember(self, past: Sequence[pb.HistoryEvent], new: Sequence[pb.HistoryEvent]) -> None:
        first = past[0] if past else new[0]
        self.marks = [(0, first.SerializeToString())]
        self.marks += [(len(past) + i, event.SerializeToString()) for i, event in enumerate(new)]
        self.seen = len(past) + len(new)


class WarmReplays:
    """Runs orchestrator episodes for a worker, resuming a kept context when the history allows it."""

    def __init__(
        self, worker: TaskHubGrpcWorker, limit: int = WARM_LIMIT, seconds: float = WARM_SECONDS
    ) -> None:
        self.worker: Any = worker  # its registry, converter, logger and options: the SDK's private fields
        self.limit = limit
        self.horizon = timedelta(seconds=seconds)
        self.resumed = 0  # episodes that replayed only the events after a kept context's
        self.replayed = 0  # episodes that replayed the whole history
        self._kept: OrderedDict[str, _Warm] = OrderedDict()
        self._lock = threading.Lock()

    def handles(self, request: pb.OrchestratorRequest) -> bool:
        """False for what only the SDK's own path does: rewinds, versioning, payload stores, trace spans."""
        worker = self.worker
        spans = worker._emit_trace_spans and spans_recorded()
        if spans or worker._registry.versioning or worker._payload_store is not None:
            return False
        new = request.newEvents
        return len(new) > 0 and not any(event.HasField("executionRewound") for event in new)

    def run(self, request: pb.OrchestratorRequest, stub: Any, token: str) -> bool:
        """Run a work item's episode and deliver its result, as the SDK's worker does (same log lines).

        False, with nothing delivered, if the episode would fail the orchestration: the caller leaves that
        verdict to the SDK's own executor. An error of this code itself is raised, nothing delivered.
        """
        worker = self.worker
        instance_id, emit = request.instanceId, worker._emit_trace_spans
        parent = None if emit else parent_trace_context(request)
        # In the SDK's trace context (spans are not recorded here: see handles).
        with tracing.suppress_span_emission(not emit), tracing.use_trace_context(parent):
            results = self.execute(request)
        if _fails(results.actions):
            self.forget(instance_id)
            return False
        response = pb.OrchestratorResponse(
            instanceId=instance_id,
            actions=results.actions,
            customStatus=helpers.get_string_value(results.encoded_custom_status),
            completionToken=token,
            orchestrationTraceContext=self._trace_context(request, results),
        )
        try:
            stub.CompleteOrchestratorTask(response)
        except Exception as error:
            self.forget(instance_id)  # the scheduler gives the item again, with the history as it was
            worker._logger.exception(
                f"Failed to deliver orchestrator response for '{instance_id}' to sidecar: {error}"
            )
        return True

    def execute(self, request: pb.OrchestratorRequest) -> ExecutionResults:
        """The episode's actions and custom status, as the SDK's executor would return them."""
        instance_id, past, new = request.instanceId, request.pastEvents, request.newEvents
        with self._lock:
            warm = self._kept.pop(instance_id, None)
        resume = warm is not None and warm.continues(past)
        with self._lock:
            self.resumed, self.replayed = self.resumed + resume, self.replayed + (not resume)
        if warm is not None and resume:
            start = warm.seen
        else:
            warm, start = self._cold(request), 0
        context, executor = warm.context, warm.executor
        try:
            context._is_replaying = True
            for event in past[start:]:
                executor.process_event(context, event)
            context._is_replaying = False
            for event in new:
                executor.process_event(context, event)
        except Exception as error:  # as the SDK: an orchestrator's unhandled error fails the orchestration
            context.set_failed(error)
        results = ExecutionResults(
            actions=context.get_actions(),
            encoded_custom_status=context._encoded_custom_status,
            orchestration_trace_context=context._orchestration_trace_context,
        )
        if not context._is_complete and self._wakes_soon(results.actions, context.current_utc_datetime):
            warm.remember(past, new)
            self._keep(instance_id, warm)
        return results

    def forget(self, instance_id: str) -> None:
        """Drop a kept context (its episode's result may not have been recorded)."""
        with self._lock:
            self._kept.pop(instance_id, None)

    def __len__(self) -> int:
        return len(self._kept)

    def _trace_context(
        self, request: pb.OrchestratorRequest, results: ExecutionResults
    ) -> pb.OrchestrationTraceContext:
        """What the SDK returns: with spans on (its default) the orchestration's start time, kept across
        dispatches (its first dispatch's time); with them off, what the scheduler sent."""
        sent, worker = request.orchestrationTraceContext, self.worker
        if not worker._emit_trace_spans:
            return sent
        started = sent.spanStartTime.ToNanoseconds() if sent.HasField("spanStartTime") else time.time_ns()
        kept = results._orchestration_trace_context
        return tracing.build_orchestration_trace_context(started, kept.spanID if kept else None) or sent

    def _wakes_soon(self, actions: Sequence[pb.OrchestratorAction], now: datetime) -> bool:
        """False when the episode only started timers beyond the horizon: by the time the next one fires,
        many other contexts would have pushed this one out, so keeping it would only hold memory."""
        return not actions or any(
            not action.HasField("createTimer") or action.createTimer.fireAt.ToDatetime() - now <= self.horizon
            for action in actions
        )

    def _keep(self, instance_id: str, warm: _Warm) -> None:
        with self._lock:
            self._kept[instance_id] = warm
            while len(self._kept) > self.limit:
                self._kept.popitem(last=False)

    def _cold(self, request: pb.OrchestratorRequest) -> _Warm:
        worker = self.worker
        options = {
            "maximum_timer_interval": worker.maximum_timer_interval,
            "data_converter": worker._data_converter,
            "exception_properties_provider": worker._exception_properties_provider,
        }
        sent = request.orchestrationTraceContext  # a span id kept across dispatches, as the SDK passes it
        span_id = sent.spanID.value if sent.HasField("spanID") and sent.spanID.value else None
        executor = _OrchestrationExecutor(
            worker._registry, worker._logger, persisted_orch_span_id=span_id, **options
        )
        started = _execution_started(request)
        executor._orchestration_name = started.name if started else "<unknown>"  # as execute() sets it
        context = _RuntimeOrchestrationContext(
            request.instanceId, worker._registry, logger=worker._logger, **options
        )
        return _Warm(executor, context)


def _fails(actions: Sequence[pb.OrchestratorAction]) -> bool:
    """True if the actions end the orchestration ``Failed``."""
    return any(
        action.HasField("completeOrchestration")
        and action.completeOrchestration.orchestrationStatus == pb.ORCHESTRATION_STATUS_FAILED
        for action in actions
    )


def _execution_started(request: pb.OrchestratorRequest) -> pb.ExecutionStartedEvent | None:
    events = itertools.chain(request.pastEvents, request.newEvents)
    return next((event.executionStarted for event in events if event.HasField("executionStarted")), None)


def parent_trace_context(request: pb.OrchestratorRequest) -> pb.TraceContext | None:
    started = _execution_started(request)
    return started.parentTraceContext if started and started.HasField("parentTraceContext") else None


def spans_recorded() -> bool:
    """Whether the SDK's trace spans go anywhere: OpenTelemetry installed and a tracer provider set."""
    if not tracing.OTEL_AVAILABLE:
        return False
    from opentelemetry import trace  # installed with the SDK's optional tracing, when it is

    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider)
