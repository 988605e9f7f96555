"""Every environment variable the package reads, read and validated in one place.

* ``ENDPOINT``: where the task hub lives (unset: the local scheduler; ``http://``: the DTS emulator;
  ``https://``: Durable Task Scheduler in Azure). Interpreted by :mod:`monitoring.backend.connection`.
* ``TASKHUB``: the task hub's name (default ``default``).
* ``MONITORING_STATE_DIR``: where local scheduler processes keep their records and logs
  (default ``~/.local/state/durable-monitoring``).
* ``MONITORING_TIME_SCALE``: a number in (0, 1] that shortens the tutorial's scenarios (0.2 under pytest).
* Any variable an ``http`` job source's header names as ``${NAME}`` (:func:`secret`), read by the worker.

Nothing else in the package reads ``os.environ``; everything else receives a :class:`Settings`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_TASKHUB = "default"
TIME_SCALE_ENV = "MONITORING_TIME_SCALE"
STATE_DIR_ENV = "MONITORING_STATE_DIR"


class SettingsError(ValueError):
    """An environment variable has a value the package cannot use; the message names it."""


@dataclass(frozen=True)
class Settings:
    endpoint: str  # "" means: the local scheduler
    taskhub: str
    state_dir: Path
    time_scale: float


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


def load(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings from ``environ`` (``os.environ`` unless given)."""
    environ = os.environ if environ is None else environ
    state = environ.get(STATE_DIR_ENV, "").strip()
    return Settings(
        endpoint=environ.get("ENDPOINT", "").strip(),
        taskhub=environ.get("TASKHUB", "").strip() or DEFAULT_TASKHUB,
        state_dir=Path(state) if state else Path.home() / ".local" / "state" / "durable-monitoring",
        time_scale=_time_scale(environ.get(TIME_SCALE_ENV, "").strip()),
    )


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
    path.mkdir(parents=True, exist_ok=True)
    return path
