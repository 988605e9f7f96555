"""The worker's receiving loop (``monitoring/runtime/work_loop.py``): limits, abandon, silence, stop.

The rest of the suite runs every monitor through this loop (``create_worker`` builds a :class:`LeanWorker`),
and the fault tests kill and stop its process under load; these tests pin what only the loop decides.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from durabletask.grpc_options import GrpcWorkerResiliencyOptions
from durabletask.internal import orchestrator_service_pb2 as pb
from durabletask.internal import orchestrator_service_pb2_grpc as stubs
from durabletask.worker import ConcurrencyOptions
from gates import WAIT_LIMIT, Deliveries, GatedJob
from google.protobuf import empty_pb2
from test_durability import checks, deliveries, request  # noqa: F401  (deliveries is a fixture)

import monitoring.worker as worker_module
from monitoring.client.monitors import MonitorClient
from monitoring.runtime.connection import local_connection
from monitoring.runtime.work_loop import LeanWorker, _Channels, _Gate
from monitoring.scheduler import servicer as servicer_module
from monitoring.scheduler.records import HubOptions
from monitoring.scheduler.server import LocalScheduler
from monitoring.scheduler.servicer import SchedulerServicer
from monitoring.worker import create_worker, start_worker, stop_worker


def wait_until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_LIMIT
    while not condition():
        assert time.monotonic() < deadline, f"waited {WAIT_LIMIT:g} s for {what}"
        time.sleep(0.01)


class Held:
    """Work items that run until the test lets each one go, recording what ran when."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started: list[int] = []
        self.running = 0
        self.most_running = 0
        self.go: dict[int, threading.Event] = {}
        self.released: list[int] = []

    def run(self, number: int) -> None:
        with self.lock:
            self.started.append(number)
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        self.go.setdefault(number, threading.Event()).wait(WAIT_LIMIT)
        with self.lock:
            self.running -= 1

    def item(self, number: int) -> tuple[Any, Any, tuple[int], Any]:
        self.go[number] = threading.Event()
        return self.run, self.cancel, (number,), lambda: self.released.append(number)

    def cancel(self, number: int) -> None:
        raise AssertionError(f"item {number} was abandoned")


def test_a_gate_runs_at_most_its_limit_and_the_rest_in_order() -> None:
    held = Held()
    with ThreadPoolExecutor(6) as pool:
        gate = _Gate(pool, 2, logging.getLogger("test"))
        for number in range(6):
            gate.submit(held.item(number))
        for number in range(6):
            wait_until(lambda n=number: n in held.started, f"item {number} to start")
            assert held.running <= 2
            held.go[number].set()
        wait_until(lambda: len(held.released) == 6, "every item to finish")
    assert held.started == list(range(6)) and held.most_running == 2
    assert sorted(held.released) == list(range(6)) and gate.running == 0


@pytest.mark.parametrize("error", [RuntimeError, SystemExit], ids=["exception", "system-exit"])
def test_a_gate_abandons_an_item_whose_handler_raised_and_goes_on(error: type[BaseException]) -> None:
    """Whatever escapes a handler (even a SystemExit from sys.exit in an activity): the item is abandoned,
    its slot freed, and the next item runs."""
    abandoned: list[str] = []
    done = threading.Event()

    def fail(name: str) -> None:
        raise error(f"{name} broke")

    with ThreadPoolExecutor(1) as pool:
        gate = _Gate(pool, 1, logging.getLogger("test"))
        gate.submit((fail, abandoned.append, ("first",), lambda: None))
        gate.submit((lambda name: done.set(), abandoned.append, ("second",), lambda: None))
        assert done.wait(WAIT_LIMIT), "the second item never ran: the first one's slot was lost"
        wait_until(lambda: gate.running == 0, "the gate to be idle")
    assert abandoned == ["first"]


class Channel:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_a_replaced_channel_closes_only_when_its_last_work_item_is_done() -> None:
    channels = _Channels()
    busy, idle = Channel(), Channel()
    first, second = channels.hold(busy), channels.hold(busy)  # type: ignore[arg-type]
    channels.retire(busy)  # type: ignore[arg-type]
    channels.retire(idle)  # type: ignore[arg-type]
    assert idle.closed and not busy.closed
    first()
    assert not busy.closed
    second()
    assert busy.closed and channels.users == {} and channels.retired == {}


def test_a_silent_stream_is_given_up_and_opened_again(caplog: pytest.LogCaptureFixture) -> None:
    """A stream that brings nothing, not even a health ping, for the silent-disconnect timeout is cancelled
    and the worker opens a new one (the SDK's own rule, kept by the lean loop)."""
    quiet = HubOptions(health_ping_seconds=3_600)
    with LocalScheduler(0, options=quiet) as scheduler:
        hub = scheduler.hub
        assert hub is not None
        worker = LeanWorker(
            host_address=scheduler.address,
            taskhub=scheduler.taskhub,
            token_credential=None,
            secure_channel=False,
            logger=logging.getLogger("test.work_loop"),
            resiliency_options=GrpcWorkerResiliencyOptions(silent_disconnect_timeout_seconds=0.3),
        )
        with caplog.at_level(logging.INFO, logger="test.work_loop"):
            worker.start()
            try:
                wait_until(lambda: max(hub.leases.streams, default=0) >= 2, "a second stream")
            finally:
                worker.stop()
        assert any("Timed out waiting for work items" in r.getMessage() for r in caplog.records)
        wait_until(lambda: not hub.leases.streams, "the worker's streams to close after stop")


def test_stop_waits_for_the_check_in_flight_and_nothing_is_lost_or_counted_twice(
    monitors: MonitorClient,
    gate: GatedJob,
    deliveries: Deliveries,  # noqa: F811
) -> None:
    """Stop returns only after the running check has finished and its result was sent. Its stream closed
    first, so the scheduler may already have handed the check out again: then the result is refused and
    the next worker runs the check again. Either way the monitor counts the check once."""
    plan = request(polling_interval_seconds=0.3, timeout_seconds=30, job_source=gate.name)
    instance_id = monitors.start(plan)
    gate.wait_asked(1)  # the first check is running in the worker
    running = worker_module.running_worker()
    assert running is not None
    stopper = threading.Thread(target=stop_worker)
    stopper.start()
    try:
        wait_until(running._shutdown.is_set, "stop to begin")
        assert stopper.is_alive(), "stop returned while a check was still running"
        gate.release("Completed")  # the check in flight answers
        gate.release("Completed")  # and so does its second run, if the first result came too late
        stopper.join(WAIT_LIMIT)
        assert not stopper.is_alive()
        deliveries.wait_for(instance_id)  # its result was sent before stop returned
    finally:
        start_worker(monitors.connection)
    final = monitors.wait_for(instance_id, lambda s: s.is_terminal, timeout=WAIT_LIMIT)
    assert final.custom_status is not None and checks(final) == 1 and final.state == "Completed"


def test_a_stopping_worker_takes_out_the_items_it_has_not_started() -> None:
    held = Held()
    with ThreadPoolExecutor(2) as pool:
        gate = _Gate(pool, 1, logging.getLogger("test"))
        for number in range(3):
            gate.submit(held.item(number))
        wait_until(lambda: held.started == [0], "the first item to start")
        assert [args for _, _, args, _ in gate.drop_waiting()] == [(1,), (2,)]
        assert sorted(held.released) == [1, 2]  # their channel is no longer counted as in use
        held.go[0].set()
        wait_until(lambda: gate.running == 0, "the running item to finish")
    assert held.started == [0] and sorted(held.released) == [0, 1, 2]


def test_once_the_worker_is_stopping_a_finished_item_starts_no_waiting_one() -> None:
    """Stop begins before the loop gets to drop the waiting items: they must still be there to give back."""
    held, stopping = Held(), threading.Event()
    with ThreadPoolExecutor(2) as pool:
        gate = _Gate(pool, 1, logging.getLogger("test"), stopping)
        for number in range(3):
            gate.submit(held.item(number))
        wait_until(lambda: held.started == [0], "the first item to start")
        stopping.set()
        held.go[0].set()
        wait_until(lambda: gate.running == 0, "the running item to finish and free its slot")
        assert held.started == [0]
        assert [args for _, _, args, _ in gate.drop_waiting()] == [(1,), (2,)]


class RefusesStreams(stubs.TaskHubSidecarServiceServicer):
    """Answers Hello, refuses every work-item stream: a connection that works and a stream that does not."""

    def Hello(self, request: Any, context: grpc.ServicerContext) -> Any:
        return empty_pb2.Empty()

    def GetWorkItems(self, request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "no streams here")


def test_a_stream_refused_after_a_good_hello_backs_off_more_each_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Opening the stream proves nothing (the call is lazy): only a message resets the backoff, so a
    scheduler that answers Hello and refuses the stream is retried ever more slowly, not in a tight loop."""
    fast = GrpcWorkerResiliencyOptions(
        reconnect_backoff_base_seconds=0.01, reconnect_backoff_cap_seconds=0.05
    )
    with LocalScheduler(0, servicer=RefusesStreams()) as scheduler:
        worker = LeanWorker(
            host_address=scheduler.address,
            taskhub=scheduler.taskhub,
            token_credential=None,
            logger=logging.getLogger("test.work_loop.refused"),
            resiliency_options=fast,
        )
        with caplog.at_level(logging.INFO, logger="test.work_loop.refused"):
            worker.start()
            try:
                wait_until(lambda: any("(attempt 4)" in r.getMessage() for r in caplog.records), "4 attempts")
            finally:
                worker.stop()
    refused = [r.getMessage() for r in caplog.records if "RESOURCE_EXHAUSTED" in r.getMessage()]
    assert refused[:4] == [
        f"Application-level gRPC error (StatusCode.RESOURCE_EXHAUSTED) (attempt {n}): no streams here"
        for n in range(1, 5)
    ]


def test_a_stopping_worker_gives_back_the_items_it_had_not_started(
    monkeypatch: pytest.MonkeyPatch, gate: GatedJob
) -> None:
    """Its stream has ended, so this scheduler already hands them out again; another scheduler may wait
    for their leases to run out, so the worker abandons them explicitly."""
    one_at_a_time = ConcurrencyOptions(maximum_concurrent_activity_work_items=1)
    # This scheduler leases a worker no more than it runs; the SDK's in-memory servicer ignores what it says
    # and sends every ready item. Be one of those, so the worker holds items it has not started.
    monkeypatch.setattr(servicer_module, "_limits", lambda request: {})
    # A task hub of its own: no other worker of this process (a test's, on a port reused) can connect to it.
    with LocalScheduler(0, taskhub=f"give-back-{uuid.uuid4().hex[:8]}") as scheduler:
        hub = scheduler.hub
        assert hub is not None and isinstance(scheduler.backend, SchedulerServicer)
        dispatch = scheduler.backend.dispatch
        given_back: list[str] = []
        original = dispatch.abandon

        def abandon(token: str, kind: Any) -> bool:
            given_back.append(kind)
            return original(token, kind)

        monkeypatch.setattr(dispatch, "abandon", abandon)
        received: list[str] = []  # the checks the worker's loop has taken off its stream
        submit = _Gate.submit

        def taken(self: _Gate, item: Any) -> None:
            if isinstance(item[2][0], pb.ActivityRequest):
                received.append(item[2][0].name)
            submit(self, item)

        monkeypatch.setattr(_Gate, "submit", taken)
        connection = local_connection(scheduler.address, scheduler.taskhub)
        worker = create_worker(connection, one_at_a_time)
        worker.start()
        stopper = threading.Thread(target=worker.stop)
        try:
            client = MonitorClient(connection)
            for _ in range(3):
                client.start(request(polling_interval_seconds=1, timeout_seconds=60, job_source=gate.name))
            gate.wait_asked(1)  # one check runs; the other two were sent and wait in the worker
            (stream,) = hub.leases.streams.values()  # this worker's, the only one
            leased = lambda: sum(lease.kind == "activity" for lease in hub.leases.by_token.values())  # noqa: E731
            wait_until(lambda: leased() == 3, "the three checks to be out with the worker")
            # Sent is not received: wait until the worker's loop has taken all three off the stream.
            wait_until(lambda: len(received) == 3, "the worker to hold the three checks")
            assert all(lease.stream == stream.id for lease in hub.leases.by_token.values())
            stopper.start()
            wait_until(lambda: worker._shutdown.is_set(), "stop to begin")
            gate.release()
            stopper.join(WAIT_LIMIT)
            assert not stopper.is_alive(), f"stop still waiting; checks asked: {len(gate.asked)}"
        finally:
            gate.close()
            if not stopper.is_alive():
                worker.stop()
    assert given_back == ["activity", "activity"]
    assert len(gate.asked) == 1, "the two checks it had not started did not run"
