"""Which backend to talk to, from ``ENDPOINT`` and ``TASKHUB``, and the client and worker for it.

* ``ENDPOINT`` unset: the local scheduler at ``http://localhost:8080`` (started on demand, in its own
  process, by :func:`ensure_backend`).
* :func:`local_connection`: a local scheduler this process runs itself (tests, ``demo``).
* ``ENDPOINT=http://...``: the Durable Task Scheduler emulator (insecure channel, no credential).
* ``ENDPOINT=https://...``: Durable Task Scheduler in Azure, authenticated with ``DefaultAzureCredential``.

``TASKHUB`` defaults to ``default``. All use ``durabletask.azuremanaged``'s client and worker; the worker
with the monitor registered is built in :mod:`monitoring.worker`. :mod:`monitoring.settings` reads the
variables.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import grpc
from durabletask.azuremanaged.client import DurableTaskSchedulerClient
from durabletask.internal import orchestrator_service_pb2 as pb
from durabletask.internal import orchestrator_service_pb2_grpc as stubs

from monitoring import settings
from monitoring.runtime.reconnect import SDK_LOGGER, OneLineLog
from monitoring.scheduler import process, server

BackendKind = Literal["local", "embedded", "emulator", "azure"]
LOCAL_ENDPOINT = f"http://localhost:{server.DEFAULT_PORT}"
AZURE_SCOPE = "https://durabletask.io/.default"  # the SDK's default audience for Durable Task Scheduler
TASKHUB_PROBE = "monitoring-taskhub-probe"  # an instance id asked for only to see that the task hub answers

# The SDK logs every work item at INFO to stderr by default; route it through our logger tree instead, which
# prints nothing unless the application configures logging (the CLI does; notebooks stay quiet).
logging.getLogger("monitoring").addHandler(logging.NullHandler())
# azure-identity logs each failed sign-in as a many-line warning on stderr; check_credential says it in one.
logging.getLogger("azure.identity").addHandler(logging.NullHandler())


class BackendError(RuntimeError):
    """The backend named by ENDPOINT/TASKHUB cannot be used; the message says why."""


@dataclass(frozen=True)
class Connection:
    """Where the task hub lives."""

    endpoint: str
    taskhub: str
    kind: BackendKind

    @property
    def secure(self) -> bool:
        return self.kind == "azure"

    @property
    def local_port(self) -> int:
        return urlsplit(self.endpoint).port or server.DEFAULT_PORT

    def describe(self) -> str:
        what = {
            "local": "local scheduler",
            "embedded": "local scheduler in this process",
            "emulator": "Durable Task Scheduler emulator (no credential)",
            "azure": "Durable Task Scheduler in Azure (DefaultAzureCredential)",
        }[self.kind]
        return f"{what} at {self.endpoint}, task hub {self.taskhub!r}"


def connection_from_env(environ: Mapping[str, str] | None = None) -> Connection:
    """The connection ``ENDPOINT`` and ``TASKHUB`` name (from the process environment unless given)."""
    config = settings.load(environ)  # SettingsError, one line, for a value it cannot use
    taskhub, endpoint = config.taskhub, config.endpoint
    if not endpoint:
        return Connection(LOCAL_ENDPOINT, taskhub, "local")
    return Connection(endpoint, taskhub, "emulator" if endpoint.startswith("http://") else "azure")


def local_connection(address: str, taskhub: str = server.DEFAULT_TASKHUB) -> Connection:
    """A connection to a :class:`~monitoring.server.server.LocalScheduler` this process already runs."""
    return Connection(address, taskhub, "embedded")


def sdk_logger(name: str, endpoint: str) -> logging.Logger:
    """The logger the SDK's worker or client logs to, its connection errors as single lines
    (:class:`~monitoring.runtime.reconnect.OneLineLog`)."""
    logger = logging.getLogger(f"{SDK_LOGGER}.{name}")
    logger.setLevel(logging.INFO)  # OneLineLog needs to see reconnects; it applies the SDK logger's level
    for existing in logger.filters:
        if isinstance(existing, OneLineLog):
            existing.endpoint = endpoint
            return logger
    logger.addFilter(OneLineLog(endpoint))
    return logger


def credential(connection: Connection):  # type: ignore[no-untyped-def]
    """``DefaultAzureCredential`` for Azure (None otherwise); its own configuration errors as BackendError."""
    if connection.kind != "azure":
        return None
    from azure.identity import DefaultAzureCredential

    try:
        return DefaultAzureCredential()
    except ValueError as error:  # e.g. AZURE_TOKEN_CREDENTIALS names no credential
        raise BackendError(f"Azure credentials are misconfigured: {first_line(error)}") from None


def first_line(error: BaseException) -> str:
    """An exception's message, first line only (azure-identity's run to dozens of lines)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def check_credential(connection: Connection) -> str | None:
    """For Azure, get a token now, so that a missing sign-in is one line here rather than a traceback from
    inside the first call (or a worker retrying for ever); returns that token (None for other backends)."""
    chosen = credential(connection)
    if chosen is None:
        return None
    from azure.core.exceptions import ClientAuthenticationError

    try:
        return chosen.get_token(AZURE_SCOPE).token
    except ClientAuthenticationError as error:
        raise BackendError(
            f"cannot sign in to Azure for {connection.endpoint}: {first_line(error)} "
            "(sign in with az login, or set AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET)"
        ) from None


def create_client(connection: Connection) -> DurableTaskSchedulerClient:
    return DurableTaskSchedulerClient(
        host_address=connection.endpoint,
        taskhub=connection.taskhub,
        token_credential=credential(connection),
        secure_channel=connection.secure,
        logger=sdk_logger("client", connection.endpoint),
    )


def plain_channel(connection: Connection) -> grpc.Channel:
    """A plain gRPC channel to the endpoint (port 443 or 80 when it names none)."""
    parts = urlsplit(connection.endpoint)
    host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
    target = f"{host}:{parts.port or (443 if connection.secure else 80)}"
    if connection.secure:
        return grpc.secure_channel(target, grpc.ssl_channel_credentials())
    return grpc.insecure_channel(target)


def check_reachable(connection: Connection, timeout: float = 5.0) -> None:
    """Raise :class:`BackendError` unless a connection to the endpoint opens within ``timeout``."""
    channel = plain_channel(connection)
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        raise BackendError(
            f"cannot reach {connection.endpoint} within {timeout:g} s: is the scheduler running there?"
        ) from None
    finally:
        channel.close()


def check_taskhub(connection: Connection, token: str | None = None, timeout: float = 5.0) -> None:
    """Raise :class:`BackendError` naming the task hub if the scheduler does not serve it (a worker would
    otherwise retry NOT_FOUND for ever). One cheap call: the state of an instance that does not exist."""
    channel = plain_channel(connection)
    metadata = [("taskhub", connection.taskhub)]
    if token is not None:
        metadata.append(("authorization", f"Bearer {token}"))
    try:
        stub = stubs.TaskHubSidecarServiceStub(channel)
        stub.GetInstance(pb.GetInstanceRequest(instanceId=TASKHUB_PROBE), metadata=metadata, timeout=timeout)
    except grpc.RpcError as error:
        code, details = error.code(), error.details()  # type: ignore[attr-defined]
        if code == grpc.StatusCode.NOT_FOUND:
            raise BackendError(
                f"the scheduler at {connection.endpoint} does not serve task hub {connection.taskhub!r} "
                f"({details}): set TASKHUB to one it serves"
            ) from None
        if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            raise BackendError(
                f"the scheduler at {connection.endpoint} refused access to task hub {connection.taskhub!r} "
                f"({code.name}): {details}"
            ) from None
        raise BackendError(f"{connection.endpoint} answered {code.name}: {details}") from None
    finally:
        channel.close()


def local_scheduler_running(connection: Connection) -> bool:
    """True if ``connection`` is the on-demand local scheduler and one answers on its port."""
    return connection.kind == "local" and server.probe(f"127.0.0.1:{connection.local_port}")


def ensure_backend(connection: Connection, owner: str = "") -> str:
    """Make sure the backend answers; for ``local``, start the scheduler process if none answers
    (recording ``owner``, e.g. ``"tutorial"``, so that owner can stop it later, even from a new kernel).

    Returns a one-line description of what is in use.
    """
    if connection.kind != "local":
        token = check_credential(connection)
        check_reachable(connection)
        check_taskhub(connection, token)
        return f"Using the {connection.describe()}"
    if local_scheduler_running(connection):
        check_taskhub(connection)
        return f"Using the {connection.describe()}: already running"
    pid = process.spawn_scheduler_process(connection.local_port, connection.taskhub, owner=owner)
    return f"Using the {connection.describe()}: started it (pid {pid})"
