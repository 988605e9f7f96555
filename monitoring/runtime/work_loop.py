"""The worker's receiving loop, without the SDK's asyncio hand-offs.

The SDK's worker reads its work-item stream on a thread, passes each item to an asyncio loop through a
queue read in an executor, puts it on an asyncio queue, takes it off in a consumer task, and runs it in a
thread pool through another executor future: about 0.2 ms of CPU per work item before the item's own work,
three work items per check (``benchmarks/PROFILE.md`` section 8). :class:`LeanWorker` keeps everything else
of the SDK's worker (its channel, interceptors and credentials, the orchestrator and activity executors,
the completion calls) and replaces that loop with one thread that reads the stream and hands each item to
the thread pool, within the same per-kind concurrency limits.

Its reconnects follow the SDK's: ``Hello`` and then the stream, backoff with full jitter from the
resiliency options, the channel recreated after repeated failures (closed once no work item uses it), a
stream silent for longer than the silent-disconnect timeout given up; the backoff starts again only once
a message has arrived. Its log lines use the SDK's words, so :class:`~monitoring.runtime.reconnect.OneLineLog`
turns them into the same single lines. On stop, the items running finish and deliver their results; those
taken but not started are given back (abandoned) so the scheduler hands them out again at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
from durabletask.azuremanaged.worker import DurableTaskSchedulerWorker
from durabletask.internal import orchestrator_service_pb2 as pb
from durabletask.internal import orchestrator_service_pb2_grpc as stubs
from durabletask.internal import shared
from durabletask.internal.grpc_resiliency import get_full_jitter_delay_seconds
from google.protobuf import empty_pb2

from monitoring.runtime.warm_replay import WARM_LIMIT, WarmReplays
from monitoring.runtime.worker_choice import fast_path_failed, fast_path_failure

_CONNECTION_ERRORS = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.ABORTED,
}

Handler = Callable[..., None]


class _Channels:
    """Which channels work items still complete on, so a replaced one is closed only when none does."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users: dict[int, int] = {}
        self.retired: dict[int, grpc.Channel] = {}

    def hold(self, channel: grpc.Channel) -> Callable[[], None]:
        """Count one more work item on ``channel``; the returned function counts it out."""
        key = id(channel)
        with self.lock:
            self.users[key] = self.users.get(key, 0) + 1
        return lambda: self._release(key)

    def _release(self, key: int) -> None:
        with self.lock:
            self.users[key] -= 1
            if self.users[key] or key not in self.retired:
                return
            del self.users[key]
            channel = self.retired.pop(key)
        channel.close()

    def retire(self, channel: grpc.Channel) -> None:
        key = id(channel)
        with self.lock:
            if self.users.get(key):
                self.retired[key] = channel
                return
            self.users.pop(key, None)
        channel.close()


_Item = tuple[Handler, Handler, tuple[Any, ...], Callable[[], None]]


class _Gate:
    """At most ``limit`` items of one kind running in the pool; the rest wait here, in order.

    A pool thread that finishes an item takes the next waiting one itself, without a new hand-off, unless
    the worker is stopping: from then on the waiting items stay for :meth:`drop_waiting`.
    """

    def __init__(
        self,
        pool: ThreadPoolExecutor,
        limit: int,
        logger: logging.Logger,
        stopping: threading.Event | None = None,
    ) -> None:
        self.pool, self.limit, self.logger = pool, max(1, limit), logger
        self.stopping = stopping or threading.Event()
        self.running = 0
        self.waiting: deque[_Item] = deque()
        self.lock = threading.Lock()

    def submit(self, item: _Item) -> None:
        with self.lock:
            if self.running >= self.limit:
                self.waiting.append(item)
                return
            self.running += 1
        try:
            self.pool.submit(self._work, item)
        except BaseException:  # the pool is shut down (the interpreter is exiting): give the slot back
            with self.lock:
                self.running -= 1
            item[3]()
            raise

    def _work(self, item: _Item | None) -> None:
        while item is not None:
            run, cancel, args, release = item
            try:
                run(*args)
            # The SDK's handlers catch their own errors; this is what escaped them (even a SystemExit from
            # an activity): the item is given back and the gate goes on, its slot never lost.
            except BaseException as error:
                self.logger.error(f"Uncaught error while processing work item, abandoning it: {error!r}")
                try:
                    cancel(*args)
                except Exception as cancel_error:
                    self.logger.error(f"Uncaught error while abandoning work item: {cancel_error}")
            finally:
                release()
            item = self._next()

    def _next(self) -> _Item | None:
        """The next waiting item for a thread that is done with one, or None (its slot is freed)."""
        with self.lock:
            if self.waiting and not self.stopping.is_set():
                return self.waiting.popleft()
            self.running -= 1
            return None

    def drop_waiting(self) -> list[_Item]:
        """Take out the items not started (the worker is stopping); the caller gives them back."""
        with self.lock:
            dropped, self.waiting = list(self.waiting), deque()
        for _, _, _, release in dropped:
            release()
        return dropped


ABANDON_SECONDS = 5.0  # a stopping worker waits no longer than this for each give-back


def abandon(stub: Any, request: Any, token: str) -> None:
    """Give one work item back to the scheduler (the SDK's ``_cancel_*`` calls, with a deadline)."""
    if isinstance(request, pb.OrchestratorRequest):
        call, give = stub.AbandonTaskOrchestratorWorkItem, pb.AbandonOrchestrationTaskRequest
    elif isinstance(request, pb.ActivityRequest):
        call, give = stub.AbandonTaskActivityWorkItem, pb.AbandonActivityTaskRequest
    else:
        call, give = stub.AbandonTaskEntityWorkItem, pb.AbandonEntityTaskRequest
    call(give(completionToken=token), timeout=ABANDON_SECONDS)


class LeanWorker(DurableTaskSchedulerWorker):
    """The SDK's Durable Task Scheduler worker, receiving its work items on one plain thread.

    Its orchestrator episodes resume a kept context when they can (:mod:`~monitoring.runtime.warm_replay`);
    ``warm_limit`` is how many it keeps (0: replay every history from the start, as the SDK).

    An error of this fast path itself (not of an orchestrator) never reaches a user's orchestration: the
    work item is run again by the SDK's own executor, the fast path is turned off for the process with one
    warning, and the receiving goes on in the SDK's own loop. An episode that would fail its orchestration
    is also left to the SDK's executor, so a ``Failed`` is always the SDK's verdict.
    """

    def __init__(self, *, warm_limit: int = WARM_LIMIT, **options: Any) -> None:
        super().__init__(**options)
        self.replays = WarmReplays(self, warm_limit)

    def _execute_orchestrator(self, req: pb.OrchestratorRequest, stub: Any, completionToken: Any) -> None:
        if self.replays.limit and fast_path_failure() is None:
            try:
                if self.replays.handles(req) and self.replays.run(req, stub, completionToken):
                    return
            except Exception as error:
                self.replays.forget(req.instanceId)
                self.fast_path_failed(f"warm replay raised {error!r}")
        super()._execute_orchestrator(req, stub, completionToken)

    def fast_path_failed(self, reason: str) -> None:
        """Turn the fast path off for this process: one warning, and the receiving moves to the SDK's loop."""
        if fast_path_failed(reason):
            self._logger.warning(
                f"The fast path failed ({reason}): this process runs the SDK's own receiving loop and "
                "executor from now on; the work item is run again by the SDK's executor"
            )
        stream = self._response_stream
        if stream is not None:  # ends the fast loop's stream; _async_run_loop goes on with the SDK's loop
            stream.cancel()

    async def _async_run_loop(self) -> None:  # the SDK runs this on the worker's own thread (start())
        if fast_path_failure() is None:
            try:
                _Loop(self).run()
            except Exception as error:  # the loop's own code: the SDK's handlers' errors stay in the gates
                self.fast_path_failed(f"the receiving loop raised {error!r}")
            if self._shutdown.is_set():
                return
        await super()._async_run_loop()


class _Loop:
    def __init__(self, worker: LeanWorker) -> None:
        self.worker = worker
        self.log = worker._logger
        self.options = worker._resiliency_options
        self.pool = ThreadPoolExecutor(
            worker.concurrency_options.maximum_thread_pool_workers, thread_name_prefix="DurableTask"
        )
        limits = worker.concurrency_options
        stopping = worker._shutdown
        self.orchestrations = _Gate(
            self.pool, limits.maximum_concurrent_orchestration_work_items, self.log, stopping
        )
        self.activities = _Gate(self.pool, limits.maximum_concurrent_activity_work_items, self.log, stopping)
        self.entities = _Gate(self.pool, limits.maximum_concurrent_entity_work_items, self.log, stopping)
        self.gates = (self.orchestrations, self.activities, self.entities)
        entities = (self.entities, worker._execute_entity_batch, worker._cancel_entity_batch)
        self.routes: dict[str, tuple[_Gate, Handler, Handler]] = {  # a work item's kind -> its gate, handlers
            "orchestratorRequest": (
                self.orchestrations,
                worker._execute_orchestrator,
                worker._cancel_orchestrator,
            ),
            "activityRequest": (self.activities, worker._execute_activity, worker._cancel_activity),
            "entityRequest": entities,
            "entityRequestV2": entities,
        }
        self.channels = _Channels()
        self.owns_channel = worker._channel is None
        self.channel: grpc.Channel | None = worker._channel
        self.attempts = 0  # consecutive failed connections, for the backoff
        self.failures = 0  # consecutive failures, for recreating the channel

    def run(self) -> None:
        shutdown = self.worker._shutdown
        try:
            while not shutdown.is_set():
                try:
                    self._connect_and_serve()
                    if fast_path_failure() is not None:
                        break
                    continue  # the scheduler closed the stream: connect again at once, as the SDK does
                except grpc.RpcError as error:
                    if error.code() == grpc.StatusCode.CANCELLED and shutdown.is_set():  # type: ignore[attr-defined]
                        break
                    if fast_path_failure() is not None:  # the stream was ended to hand over to the SDK's loop
                        break
                    self._failed(error)
                self.attempts += 1
                delay = get_full_jitter_delay_seconds(
                    self.attempts,
                    base_seconds=self.options.reconnect_backoff_base_seconds,
                    cap_seconds=self.options.reconnect_backoff_cap_seconds,
                )
                if shutdown.wait(delay):
                    break
        finally:
            self.worker._response_stream = None
            self._give_back([item for gate in self.gates for item in gate.drop_waiting()])
            self.pool.shutdown(wait=True)  # the items already running finish and deliver their results
            if self.channel is not None and self.owns_channel:
                self.channels.retire(self.channel)
            self.log.info("No longer listening for work items")

    def _give_back(self, dropped: list[_Item]) -> None:
        """Abandon the items taken but not started, so the scheduler hands them out again at once (the local
        scheduler already has: their stream has ended; another may wait for their lease to run out)."""
        if not dropped:
            return
        self.log.info(f"{len(dropped)} work item(s) not started: giving them back to the scheduler")
        for _, _, (request, stub, token), _ in dropped:
            try:
                abandon(stub, request, token)
            except grpc.RpcError as error:  # that one's lease runs out there instead
                code = error.code()  # type: ignore[attr-defined]
                self.log.info(f"could not give a work item back ({code}): its lease will end")
                if code == grpc.StatusCode.UNAVAILABLE:  # the scheduler is gone: so are the others' answers
                    return

    def _failed(self, error: grpc.RpcError) -> None:
        code = error.code()  # type: ignore[attr-defined]
        if self.worker._should_count_worker_failure(code):  # the SDK's rule: transport failures only
            self.failures += 1
            threshold = self.options.channel_recreate_failure_threshold
            if threshold and self.failures >= threshold:
                self._drop_channel()
        attempt = f"(attempt {self.attempts + 1})"
        if code in _CONNECTION_ERRORS:
            address = self.worker._host_address
            self.log.warning(f"The sidecar at address {address} is unavailable {attempt}: {error.details()}")  # type: ignore[attr-defined]
        else:
            self.log.warning(f"Application-level gRPC error ({code}) {attempt}: {error.details()}")  # type: ignore[attr-defined]

    def _drop_channel(self) -> None:
        if self.channel is not None and self.owns_channel:
            self.channels.retire(self.channel)
            self.channel = None
        self.failures = 0

    def _request(self) -> pb.GetWorkItemsRequest:
        worker, limits = self.worker, self.worker.concurrency_options
        capabilities = [pb.WORKER_CAPABILITY_LARGE_PAYLOADS] if worker._payload_store is not None else []
        request = pb.GetWorkItemsRequest(
            maxConcurrentOrchestrationWorkItems=limits.maximum_concurrent_orchestration_work_items,
            maxConcurrentActivityWorkItems=limits.maximum_concurrent_activity_work_items,
            capabilities=capabilities + sorted(worker._capabilities),
        )
        if worker._work_item_filters is not None:
            request.workItemFilters.CopyFrom(worker._work_item_filters._to_grpc())
        return request

    def _connect_and_serve(self) -> None:
        worker = self.worker
        if self.channel is None:
            self.channel = shared.get_grpc_channel(
                worker._host_address,
                worker._secure_channel,
                worker._interceptors,
                channel_options=worker._channel_options,
            )
        channel = self.channel
        stub = stubs.TaskHubSidecarServiceStub(channel)
        stub.Hello(empty_pb2.Empty(), timeout=self.options.hello_timeout_seconds)
        stream = stub.GetWorkItems(self._request())
        worker._response_stream = stream
        if worker._shutdown.is_set():  # stop() came between the check and the stream: it cancelled nothing
            stream.cancel()
        self.log.info(f"Successfully connected to {worker._host_address}. Waiting for work items...")
        heard = [time.monotonic()]
        watch = self._watch(stream, heard)
        try:
            for item in stream:
                heard[0] = time.monotonic()
                # A message proves the stream works (opening it proves nothing: the call is lazy).
                self.attempts = self.failures = 0
                self._dispatch(item, stub, channel)
        finally:
            watch.set()
        if not worker._shutdown.is_set():
            self.log.info("Work item stream closed after receiving messages")
            self._drop_channel()

    def _watch(self, stream: Any, heard: list[float]) -> threading.Event:
        """Cancel ``stream`` if nothing (not even a health ping) arrives for the silent-disconnect timeout."""
        done = threading.Event()
        timeout = self.options.silent_disconnect_timeout_seconds
        if not timeout:
            return done

        def watch() -> None:
            while not done.wait(min(timeout, 1.0)):
                if time.monotonic() - heard[0] > timeout:
                    self.log.warning(f"Timed out waiting for work items from {self.worker._host_address}")
                    stream.cancel()
                    return

        threading.Thread(target=watch, name="DurableTask-watch", daemon=True).start()
        return done

    def _dispatch(self, item: pb.WorkItem, stub: Any, channel: grpc.Channel) -> None:
        kind = item.WhichOneof("request")
        route = self.routes.get(kind)  # type: ignore[arg-type]
        if route is None:
            if kind != "healthPing":
                self.log.warning(f"Unexpected work item type: {kind}")
            return
        gate, run, cancel = route
        request = getattr(item, kind)  # type: ignore[arg-type]
        gate.submit((run, cancel, (request, stub, item.completionToken), self.channels.hold(channel)))
