"""A local scheduler that stands in for the Durable Task Scheduler emulator, with nothing but pip.

It serves :class:`~monitoring.scheduler.servicer.SchedulerServicer` (leased work items, redelivery, fenced
completions, limits, retention) on a gRPC server bound to a loopback address only, refusing a port that is
already taken (the SDK's own ``start()`` binds every interface and silently shares a taken port). It answers
at the emulator's address (``localhost:8080``, task hub ``default``), so code written for the emulator runs
against it unchanged. Its state lives in a SQLite file (or in memory, for tests): run it in a process of its
own (:mod:`monitoring.scheduler.process`) and it outlives notebook kernels and workers, and a restart on the
same file continues every monitor.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from durabletask.internal import orchestrator_service_pb2_grpc as stubs
from google.protobuf import empty_pb2

from monitoring import settings
from monitoring.scheduler.clock import SYSTEM_CLOCK, Clock
from monitoring.scheduler.hub import TaskHub
from monitoring.scheduler.loading import open_hub
from monitoring.scheduler.records import HubOptions
from monitoring.scheduler.servicer import SchedulerServicer
from monitoring.scheduler.store import SqliteStore, Store, StoreError

DEFAULT_PORT = 8080
DEFAULT_TASKHUB = settings.DEFAULT_TASKHUB
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


def _free(host: str, port: int) -> bool:
    """True if a listening socket could bind ``host:port`` now (as gRPC binds it: SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


class LocalScheduler:
    """The local scheduler's servicer on a loopback-only gRPC server. ``port=0`` picks a free port.

    ``state``: the SQLite file that keeps the task hub (created if missing; a restart on the same file
    continues every instance), or None to keep it in memory only (tests, ``--in-memory``). ``options``:
    leases, limits and retention (:class:`~monitoring.scheduler.records.HubOptions`).
    """

    def __init__(
        self,
        port: int = DEFAULT_PORT,
        *,
        host: str = LOOPBACK_HOST,
        taskhub: str = DEFAULT_TASKHUB,
        state: Path | None = None,
        options: HubOptions | None = None,
        servicer: stubs.TaskHubSidecarServiceServicer | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        """``servicer`` replaces the hub (the benchmark's reference runs the SDK's own in-memory backend);
        ``clock`` is the time the hub reads (tests pass a
        :class:`~monitoring.scheduler.clock.ManualClock`)."""
        if not ipaddress.ip_address(host).is_loopback:
            raise SchedulerError(f"refusing to bind {host}: the local scheduler listens on loopback only")
        self.host = host
        self.port = port
        self.taskhub = taskhub
        self.hub: TaskHub | None = None
        if servicer is None:
            try:
                self.hub = open_hub(SqliteStore(state) if state is not None else Store(), options, clock)
            except StoreError as error:
                raise SchedulerError(str(error)) from None
            servicer = SchedulerServicer(self.hub)
        self.backend = servicer
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
        try:  # a taken port is found first with a plain socket: gRPC would also log it on stderr
            bound = server.add_insecure_port(target) if self.port == 0 or _free(self.host, self.port) else 0
        except RuntimeError:
            bound = 0
        if bound == 0:
            raise SchedulerError(
                f"port {self.port} on {self.host} is already in use; stop what is listening there "
                "(python -m monitoring stop-scheduler, if it is a scheduler of ours) or choose --port"
            )
        self.port = bound
        if self.hub is not None:
            self.hub.start()
        server.start()
        self._server = server
        logger.debug("Local scheduler listening on %s (task hub %r)", self.address, self.taskhub)
        return self

    def stop(self, grace: float | None = 1.0) -> None:
        if self._server is None:
            return
        if self.hub is not None:
            self.hub.begin_stop()  # ends the workers' GetWorkItems streams
        elif hasattr(self.backend, "stop"):
            self.backend.stop()
        self._server.stop(grace).wait()  # calls in progress finish (and commit) within the grace
        self._server = None
        if self.hub is not None:
            self.hub.stop()  # timers, sweeper; commits what is queued

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
