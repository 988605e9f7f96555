"""Every environment variable the package reads, read and validated in one place.

* ``ENDPOINT``: where the task hub lives (unset: the local scheduler; ``http://``: the DTS emulator;
  ``https://``: Durable Task Scheduler in Azure). Interpreted by :mod:`monitoring.runtime.connection`.
* ``TASKHUB``: the task hub's name (default ``default``).
* ``MONITORING_STATE_DIR``: where local scheduler processes keep their records and logs
  (default ``~/.local/state/durable-monitoring``).
* ``MONITORING_TIME_SCALE``: a number in (0, 1] that shortens the tutorial's scenarios (0.2 under pytest).
* ``MONITORING_RETENTION_DAYS``: how long a local scheduler keeps finished instances (default 7; 0: purge
  them at once); ``python -m monitoring scheduler --retention-days`` overrides it.
* ``MONITORING_WORKER``: which worker a process runs: ``auto`` (default: the fast path against this
  project's own scheduler on a verified SDK release, the SDK's ``DurableTaskSchedulerWorker`` everywhere
  else), ``sdk`` (always the SDK's) or ``fast`` (always the fast path, even where it was not verified).
  See :mod:`monitoring.runtime.worker_choice`.
* Any variable an ``http`` job source's header names as ``${NAME}`` (:func:`secret`), read by the worker.
* ``GRPC_EXPERIMENTS``: gRPC's own. Unless it is set already, importing the package sets it to turn
  EventEngine's client and listener off (:func:`prefer_grpc_polling`).

Nothing else in the package reads ``os.environ``; everything else receives a :class:`Settings`.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_TASKHUB = "default"
TIME_SCALE_ENV = "MONITORING_TIME_SCALE"
STATE_DIR_ENV = "MONITORING_STATE_DIR"
RETENTION_DAYS_ENV = "MONITORING_RETENTION_DAYS"
WORKER_ENV = "MONITORING_WORKER"
WORKER_KINDS = ("auto", "sdk", "fast")
DEFAULT_RETENTION_DAYS = 7.0
MAX_RETENTION_DAYS = 100_000
GRPC_EXPERIMENTS_ENV = "GRPC_EXPERIMENTS"
GRPC_POLLING_EXPERIMENTS = "-event_engine_client,-event_engine_listener"
GRPC_POLLING_RELEASES = ("1.85.",)  # the grpcio releases whose experiment names these were checked against


class SettingsError(ValueError):
    """An environment variable has a value the package cannot use; the message names it."""


@dataclass(frozen=True)
class Settings:
    endpoint: str  # "" means: the local scheduler
    taskhub: str
    state_dir: Path
    time_scale: float
    retention_days: float = DEFAULT_RETENTION_DAYS
    worker: str = "auto"  # one of WORKER_KINDS


# Task hub names as the Durable Task Scheduler takes them (letters, digits, '-', '_', '.'); the name travels
# in a gRPC header, which cannot carry spaces, control characters or non-ASCII text.
TASKHUB_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
HOST_PATTERN = re.compile(r"([A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]+)?")


def _endpoint(text: str) -> str:
    """``ENDPOINT`` if it is ``http(s)://host[:port]`` with a port from 1 to 65535; "" (local) if unset."""
    if not text:
        return ""
    usage = "use http://host:port for the emulator or https://<scheduler>.<region>.durabletask.io for Azure"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as error:  # a port out of range, or not a number
        raise SettingsError(f"ENDPOINT={text!r}: {error} ({usage})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        raise SettingsError(f"ENDPOINT={text!r} is not a URL of a scheduler: {usage}")
    if not HOST_PATTERN.fullmatch(parts.netloc):
        raise SettingsError(f"ENDPOINT={text!r}: the host must be a plain name or address ({usage})")
    if port == 0:
        raise SettingsError(f"ENDPOINT={text!r}: port 0 is not a port ({usage})")
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise SettingsError(
            f"ENDPOINT={text!r} has a path; the scheduler is the host and port only ({usage})"
        )
    return text.rstrip("/")


def _taskhub(text: str) -> str:
    if not text:
        return DEFAULT_TASKHUB
    if not TASKHUB_PATTERN.fullmatch(text):
        raise SettingsError(
            f"TASKHUB={text!r} is not a task hub name: use up to 64 letters, digits, '-', '_' or '.', "
            "starting with a letter or digit"
        )
    return text


def _time_scale(text: str) -> float:
    if not text:
        return 1.0
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= 1:
        raise SettingsError(
            f"{TIME_SCALE_ENV}={text!r}: use a number above 0 and at most 1 (0.1 runs ten times faster)"
        )
    return value


def retention_days(text: str, name: str = RETENTION_DAYS_ENV) -> float:
    """A number of days from 0 up to 100,000 (unset: the default); ``name`` says where it came from."""
    if not text:
        return DEFAULT_RETENTION_DAYS
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < MAX_RETENTION_DAYS:
        raise SettingsError(
            f"{name}={text!r}: use a number of days from 0 (purge at once) up to {MAX_RETENTION_DAYS}"
        )
    return value


def load(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings from ``environ`` (``os.environ`` unless given)."""
    environ = os.environ if environ is None else environ
    state = environ.get(STATE_DIR_ENV, "").strip()
    return Settings(
        endpoint=_endpoint(environ.get("ENDPOINT", "").strip()),
        taskhub=_taskhub(environ.get("TASKHUB", "").strip()),
        state_dir=Path(state) if state else Path.home() / ".local" / "state" / "durable-monitoring",
        time_scale=_time_scale(environ.get(TIME_SCALE_ENV, "").strip()),
        retention_days=retention_days(environ.get(RETENTION_DAYS_ENV, "").strip()),
        worker=worker_kind(environ.get(WORKER_ENV, "").strip()),
    )


def worker_kind(text: str) -> str:
    """``MONITORING_WORKER``'s value, lower-cased (``auto`` if unset); a one-line error if it is none."""
    kind = text.lower() or "auto"
    if kind not in WORKER_KINDS:
        choices = ", ".join(WORKER_KINDS)
        raise SettingsError(f"{WORKER_ENV}={text!r} is not a worker this package builds; use {choices}")
    return kind


def secret(name: str) -> str | None:
    """An environment variable a job source refers to by name (``${NAME}`` in an http header), or None.

    Secrets stay in the worker's environment: the monitor's input, which the task hub stores and the API
    and dashboard show, holds only the name.
    """
    return os.environ.get(name)


def environ_with(changes: Mapping[str, str]) -> dict[str, str]:
    """This process's environment with ``changes``: for a child process that must see other settings."""
    return {**os.environ, **changes}


def state_dir() -> Path:
    """The state directory, created if it does not exist yet."""
    path = load().state_dir
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SettingsError(f"{STATE_DIR_ENV}={str(path)!r}: cannot create it ({error.strerror})") from None
    return path


def _grpcio_version() -> str | None:
    """The installed grpcio's version, read without importing it (which would be too late), or None."""
    spec = find_spec("grpc")
    if spec is None or not spec.submodule_search_locations:
        return None
    metadata = Path(next(iter(spec.submodule_search_locations))) / "_grpcio_metadata.py"
    match = re.search(r'__version__\s*=\s*"+([^"]+)"', metadata.read_text()) if metadata.is_file() else None
    return match.group(1) if match else None


def prefer_grpc_polling(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Have gRPC's I/O polled by the threads that wait for it, not handed over by EventEngine's threads.

    gRPC 1.85 reads its sockets on EventEngine threads that then wake the Python thread waiting for the
    message; with the ``event_engine_client`` and ``event_engine_listener`` experiments off, the waiting
    thread polls the socket itself, as gRPC did before EventEngine. A check then costs the worker and the
    scheduler about 0.5 ms less CPU between them (``benchmarks/PROFILE.md`` section 10). Read when grpc is
    imported, so this acts only before that, and never over a ``GRPC_EXPERIMENTS`` someone set, nor on a
    grpcio release whose experiment names were not checked (it would print an error for unknown ones).
    True if it set the variable.
    """
    if GRPC_EXPERIMENTS_ENV in environ or "grpc" in sys.modules:
        return False
    try:
        version = _grpcio_version()
    except (OSError, ValueError, ImportError):  # an unreadable install: leave gRPC's default; imports go on
        return False
    if version is None or not version.startswith(GRPC_POLLING_RELEASES):
        return False
    environ[GRPC_EXPERIMENTS_ENV] = GRPC_POLLING_EXPERIMENTS
    return True
