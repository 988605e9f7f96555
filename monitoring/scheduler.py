"""A local scheduler that stands in for the Durable Task Scheduler emulator, with nothing but pip.

It serves the SDK's own in-memory servicer (``durabletask.testing.InMemoryOrchestrationBackend``) on a
gRPC server that this module binds to a loopback address only, refusing a port that is already taken
(the SDK's own ``start()`` binds every interface and silently shares a taken port). It answers at the
emulator's address (``localhost:8080``, task hub ``default``), so code written for the emulator runs
against it unchanged. State lives in the scheduler's process: run it in a process of its own
(:func:`spawn_scheduler_process`) and it outlives notebook kernels and workers.
"""

from __future__ import annotations

import contextlib
import heapq
import ipaddress
import itertools
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import grpc
from durabletask.internal import helpers
from durabletask.internal import orchestrator_service_pb2 as pb
from durabletask.internal import orchestrator_service_pb2_grpc as stubs
from durabletask.testing import InMemoryOrchestrationBackend
from durabletask.testing.in_memory_backend import OrchestrationInstance
from google.protobuf import empty_pb2

DEFAULT_PORT = 8080
DEFAULT_TASKHUB = "default"
LOOPBACK_HOST = "127.0.0.1"
# Worker streams and clients blocked in WaitForInstanceCompletion each hold a server thread.
SERVER_THREADS = 64
logger = logging.getLogger(__name__)


class SchedulerError(RuntimeError):
    """The local scheduler cannot start, or cannot be found; the message says why."""


class _TaskHubGuard(grpc.ServerInterceptor):
    """Reject calls addressed to another task hub (the ``taskhub`` header the DTS clients send)."""

    def __init__(self, taskhub: str) -> None:
        self._taskhub = taskhub

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        metadata = dict(handler_call_details.invocation_metadata or ())
        requested = metadata.get("taskhub")
        if requested is None or requested == self._taskhub:
            return continuation(handler_call_details)
        message = f"task hub {requested!r} not found: this local scheduler serves {self._taskhub!r}"

        def refuse(request: Any, context: grpc.ServicerContext) -> Any:
            context.abort(grpc.StatusCode.NOT_FOUND, message)

        handler = continuation(handler_call_details)
        if handler is not None and handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(refuse)
        return grpc.unary_unary_rpc_method_handler(refuse)


class TimerQueue:
    """Durable timers on one thread: a heap ordered by due time, instead of a sleeping thread per timer.

    The SDK's servicer starts a thread for every timer and cannot cancel one, so a monitor that leaves a
    guard timer pending in every generation would leave a sleeping thread behind each time (thousands, with
    many long monitors). Here a pending timer is one heap entry.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._sequence = itertools.count()
        self._changed = threading.Condition()  # over an RLock: call_at may start the thread while holding it
        self._generation = 0  # a thread runs while this is the generation it was started with
        self._thread: threading.Thread | None = None

    def __len__(self) -> int:
        with self._changed:
            return len(self._heap)

    def start(self) -> None:
        """Start firing (again, after :meth:`stop`); timers queued meanwhile fire at once if overdue."""
        with self._changed:
            if self._thread is not None:
                return
            self._generation += 1
            self._thread = threading.Thread(
                target=self._run, args=(self._generation,), name="local-scheduler-timers", daemon=True
            )
            self._thread.start()

    def call_at(self, due: datetime, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the timer thread once the wall clock reaches ``due`` (aware, UTC)."""
        delay = (due - datetime.now(timezone.utc)).total_seconds()
        with self._changed:
            heapq.heappush(self._heap, (time.monotonic() + max(0.0, delay), next(self._sequence), callback))
            self._changed.notify_all()
            self.start()

    def stop(self) -> None:
        """Stop the thread; timers still pending stay queued for :meth:`start`."""
        with self._changed:
            self._generation += 1
            thread, self._thread = self._thread, None
            self._changed.notify_all()
        if thread is not None:
            thread.join(5)

    def _run(self, generation: int) -> None:
        while True:
            with self._changed:
                while self._generation == generation and (
                    not self._heap or self._heap[0][0] > time.monotonic()
                ):
                    self._changed.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                if self._generation != generation:
                    return
                callback = heapq.heappop(self._heap)[2]
            try:
                callback()
            except Exception:
                logger.exception("A durable timer failed to fire")


class FencedBackend(InMemoryOrchestrationBackend):
    """The SDK's in-memory servicer, with a fence it lacks and cheaper timers.

    The fence: results for a finished instance are dropped. Without it, an activity that answers after its
    instance was terminated wakes the orchestrator again: the runtime status stays Terminated, but the custom
    status moves on (a check counted after the end). The Durable Task Scheduler drops such late results too.

    The timers: one :class:`TimerQueue` thread fires every durable timer (same events, same order).
    """

    def __init__(self, max_history_size: int = 10_000, port: int = DEFAULT_PORT) -> None:
        super().__init__(max_history_size=max_history_size, port=port)
        self.timers = TimerQueue()

    def stop(self, grace: float | None = None) -> None:
        super().stop(grace)
        self.timers.stop()

    def _process_create_timer_action(
        self, instance: OrchestrationInstance, action: pb.OrchestratorAction
    ) -> None:
        """As the SDK's: record ``TimerCreated``, then add ``TimerFired`` when due, unless the run ended."""
        timer_id = action.id
        fire_at = action.createTimer.fireAt.ToDatetime(tzinfo=timezone.utc)
        instance.history.append(helpers.new_timer_created_event(timer_id, fire_at))
        if instance.status == pb.ORCHESTRATION_STATUS_PENDING:
            instance.status = pb.ORCHESTRATION_STATUS_RUNNING
        instance_id = instance.instance_id

        def fire() -> None:
            with self._lock:
                current = self._instances.get(instance_id)
                if current is None or self._is_terminal_status(current.status):
                    return
                current.pending_events.append(helpers.new_timer_fired_event(timer_id, fire_at))
                current.last_updated_at = datetime.now(timezone.utc)
                self._enqueue_orchestration(instance_id)

        self.timers.call_at(fire_at, fire)

    def CompleteActivityTask(self, request: Any, context: grpc.ServicerContext) -> Any:
        with self._lock:
            instance = self._instances.get(request.instanceId)
            if instance is not None and self._is_terminal_status(instance.status):
                logger.info("Dropped a late activity result for finished instance %s", request.instanceId)
                return pb.CompleteTaskResponse()
        return super().CompleteActivityTask(request, context)


class LocalScheduler:
    """The in-memory servicer on a loopback-only gRPC server. ``port=0`` picks a free port."""

    def __init__(
        self,
        port: int = DEFAULT_PORT,
        *,
        host: str = LOOPBACK_HOST,
        taskhub: str = DEFAULT_TASKHUB,
        max_history_size: int = 10_000,
        servicer: InMemoryOrchestrationBackend | None = None,
    ) -> None:
        """``servicer`` replaces the default :class:`FencedBackend` (the benchmark's reference runs the
        SDK's own)."""
        if not ipaddress.ip_address(host).is_loopback:
            raise SchedulerError(f"refusing to bind {host}: the local scheduler listens on loopback only")
        self.host = host
        self.port = port
        self.taskhub = taskhub
        self.backend: InMemoryOrchestrationBackend = (
            servicer if servicer is not None else FencedBackend(max_history_size=max_history_size, port=port)
        )
        self._server: grpc.Server | None = None

    @property
    def address(self) -> str:
        """The endpoint to give clients and workers, e.g. ``http://127.0.0.1:8080``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> LocalScheduler:
        if self._server is not None:
            return self
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=SERVER_THREADS, thread_name_prefix="local-scheduler"),
            interceptors=[_TaskHubGuard(self.taskhub)],
            # Without this, gRPC sets SO_REUSEPORT and a second scheduler shares the port silently.
            options=[("grpc.so_reuseport", 0)],
        )
        stubs.add_TaskHubSidecarServiceServicer_to_server(self.backend, server)
        target = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        try:
            bound = server.add_insecure_port(target)
        except RuntimeError:
            bound = 0
        if bound == 0:
            raise SchedulerError(
                f"port {self.port} on {self.host} is already in use; stop what is listening there "
                "(python -m monitoring stop-scheduler, if it is a scheduler of ours) or choose --port"
            )
        self.port = bound
        if isinstance(self.backend, FencedBackend):
            self.backend.timers.start()  # again, after a stop: timers still queued fire from here on
        server.start()
        self._server = server
        logger.info("Local scheduler listening on %s (task hub %r)", self.address, self.taskhub)
        return self

    def stop(self, grace: float | None = 1.0) -> None:
        if self._server is None:
            return
        self.backend.stop()  # ends the workers' GetWorkItems streams
        self._server.stop(grace).wait()
        self._server = None

    def __enter__(self) -> LocalScheduler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def probe(address: str, timeout: float = 1.0) -> bool:
    """True if a Durable Task scheduler answers at ``address`` (``host:port``, ``http://`` allowed)."""
    target = address.split("://", 1)[-1]
    with grpc.insecure_channel(target) as channel:
        try:
            stubs.TaskHubSidecarServiceStub(channel).Hello(empty_pb2.Empty(), timeout=timeout)
        except grpc.RpcError as error:
            if error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                return False
            if error.code() == grpc.StatusCode.UNIMPLEMENTED:
                message = f"something answers at {target}, but not a Durable Task scheduler"
                raise SchedulerError(message) from None
            raise
    return True


# --- the scheduler in a process of its own -------------------------------------------------------------


def state_dir() -> Path:
    """Where scheduler processes record themselves (``MONITORING_STATE_DIR`` overrides)."""
    override = os.environ.get("MONITORING_STATE_DIR")
    base = Path(override) if override else Path.home() / ".local" / "state" / "durable-monitoring"
    base.mkdir(parents=True, exist_ok=True)
    return base


@dataclass(frozen=True)
class SchedulerRecord:
    """What a running scheduler process writes about itself, so it can be found and stopped later."""

    pid: int
    port: int
    taskhub: str

    @staticmethod
    def path(port: int) -> Path:
        return state_dir() / f"scheduler-{port}.json"

    def save(self) -> None:
        self.path(self.port).write_text(json.dumps(self.__dict__))

    @classmethod
    def load(cls, port: int) -> SchedulerRecord | None:
        try:
            return cls(**json.loads(cls.path(port).read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(self.port).unlink()


def _is_running_scheduler(pid: int) -> bool:
    """True if ``pid`` is alive and is a ``monitoring scheduler`` process (not a reused pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    proc = Path(f"/proc/{pid}")
    if not proc.exists():  # no procfs (macOS): trust the record
        return True
    with contextlib.suppress(OSError):
        # A zombie (exited, not yet reaped by its parent) still answers kill(0).
        if (proc / "stat").read_text().split(") ", 1)[1].startswith("Z"):
            return False
        command = (proc / "cmdline").read_bytes().split(b"\0")
        return b"monitoring" in command and b"scheduler" in command
    return False


def run_scheduler_foreground(
    port: int = DEFAULT_PORT, taskhub: str = DEFAULT_TASKHUB, *, on_ready: Callable[[str], None] | None = None
) -> None:
    """Serve until SIGINT or SIGTERM, recording this process so ``stop_scheduler_process`` can find it."""
    scheduler = LocalScheduler(port, taskhub=taskhub).start()
    record = SchedulerRecord(pid=os.getpid(), port=scheduler.port, taskhub=taskhub)
    record.save()
    stopping = False

    def request_stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if on_ready:
            on_ready(scheduler.address)
        while not stopping:
            time.sleep(0.2)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        scheduler.stop()
        record.remove()


def spawn_scheduler_process(
    port: int = DEFAULT_PORT, taskhub: str = DEFAULT_TASKHUB, wait: float = 20.0
) -> int:
    """Start ``python -m monitoring scheduler`` detached, wait until it answers; return its pid."""
    log_path = state_dir() / f"scheduler-{port}.log"
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "monitoring", "scheduler", "--port", str(port), "--taskhub", taskhub],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
            raise SchedulerError(f"the local scheduler on port {port} exited at start: {tail[0]}")
        if probe(f"127.0.0.1:{port}", timeout=0.5):
            return process.pid
        time.sleep(0.1)
    process.terminate()
    raise SchedulerError(
        f"the local scheduler on port {port} did not answer within {wait:g} s (log: {log_path})"
    )


def stop_scheduler_process(port: int = DEFAULT_PORT, wait: float = 10.0) -> bool:
    """Stop the scheduler process recorded for ``port``; False if none was running."""
    record = SchedulerRecord.load(port)
    if record is None or not _is_running_scheduler(record.pid):
        if record:
            record.remove()
        return False
    os.kill(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + wait
    while _is_running_scheduler(record.pid):
        if time.monotonic() > deadline:
            os.kill(record.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    record.remove()
    return True
