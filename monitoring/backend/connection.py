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

from monitoring import settings
from monitoring.backend import process, scheduler
from monitoring.backend.reconnect import SDK_LOGGER, OneLineLog

BackendKind = Literal["local", "embedded", "emulator", "azure"]
LOCAL_ENDPOINT = f"http://localhost:{scheduler.DEFAULT_PORT}"

# The SDK logs every work item at INFO to stderr by default; route it through our logger tree instead, which
# prints nothing unless the application configures logging (the CLI does; notebooks stay quiet).
logging.getLogger("monitoring").addHandler(logging.NullHandler())


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
        return urlsplit(self.endpoint).port or scheduler.DEFAULT_PORT

    def describe(self) -> str:
        what = {
            "local": "local scheduler (started on demand)",
            "embedded": "local scheduler in this process",
            "emulator": "Durable Task Scheduler emulator (no credential)",
            "azure": "Durable Task Scheduler in Azure (DefaultAzureCredential)",
        }[self.kind]
        return f"{what} at {self.endpoint}, task hub {self.taskhub!r}"


def connection_from_env(environ: Mapping[str, str] | None = None) -> Connection:
    """The connection ``ENDPOINT`` and ``TASKHUB`` name (from the process environment unless given)."""
    config = settings.load(environ)
    taskhub, endpoint = config.taskhub, config.endpoint
    if not endpoint:
        return Connection(LOCAL_ENDPOINT, taskhub, "local")
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BackendError(
            f"ENDPOINT={endpoint!r} is not a URL: use http://host:port for the emulator "
            "or https://<scheduler>.<region>.durabletask.io for Azure"
        )
    return Connection(endpoint.rstrip("/"), taskhub, "emulator" if parts.scheme == "http" else "azure")


def local_connection(address: str, taskhub: str = scheduler.DEFAULT_TASKHUB) -> Connection:
    """A connection to a :class:`~monitoring.backend.scheduler.LocalScheduler` this process already runs."""
    return Connection(address, taskhub, "embedded")


def sdk_logger(name: str, endpoint: str) -> logging.Logger:
    """The logger the SDK's worker or client logs to, its connection errors as single lines
    (:class:`~monitoring.backend.reconnect.OneLineLog`)."""
    logger = logging.getLogger(f"{SDK_LOGGER}.{name}")
    logger.setLevel(logging.INFO)  # OneLineLog needs to see reconnects; it applies the SDK logger's level
    for existing in logger.filters:
        if isinstance(existing, OneLineLog):
            existing.endpoint = endpoint
            return logger
    logger.addFilter(OneLineLog(endpoint))
    return logger


def credential(connection: Connection):  # type: ignore[no-untyped-def]
    if connection.kind != "azure":
        return None
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


def create_client(connection: Connection) -> DurableTaskSchedulerClient:
    return DurableTaskSchedulerClient(
        host_address=connection.endpoint,
        taskhub=connection.taskhub,
        token_credential=credential(connection),
        secure_channel=connection.secure,
        logger=sdk_logger("client", connection.endpoint),
    )


def check_reachable(connection: Connection, timeout: float = 5.0) -> None:
    """Raise :class:`BackendError` unless a connection to the endpoint opens within ``timeout``."""
    parts = urlsplit(connection.endpoint)
    target = f"{parts.hostname}:{parts.port or (443 if connection.secure else 80)}"
    if ":" in (parts.hostname or ""):
        target = f"[{parts.hostname}]:{parts.port or (443 if connection.secure else 80)}"
    channel = (
        grpc.secure_channel(target, grpc.ssl_channel_credentials())
        if connection.secure
        else grpc.insecure_channel(target)
    )
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        raise BackendError(
            f"cannot reach {connection.endpoint} within {timeout:g} s: is the scheduler running there?"
        ) from None
    finally:
        channel.close()


def local_scheduler_running(connection: Connection) -> bool:
    """True if ``connection`` is the on-demand local scheduler and one answers on its port."""
    return connection.kind == "local" and scheduler.probe(f"127.0.0.1:{connection.local_port}")


def ensure_backend(connection: Connection) -> str:
    """Make sure the backend answers; for ``local``, start the scheduler process if none answers.

    Returns a one-line description of what is in use.
    """
    if connection.kind != "local":
        check_reachable(connection)
        return f"Using the {connection.describe()}"
    if local_scheduler_running(connection):
        return f"Using the {connection.describe()}: already running"
    pid = process.spawn_scheduler_process(connection.local_port, connection.taskhub)
    return f"Using the {connection.describe()}: started it (pid {pid})"
