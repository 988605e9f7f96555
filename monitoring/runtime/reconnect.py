"""Riding out a scheduler that is down or restarting: one line instead of tracebacks, and retries.

* :class:`OneLineLog` filters the SDK's worker and client loggers: while the scheduler cannot be reached the
  SDK logs a warning with a multi-line gRPC error on every attempt; this says ``scheduler unavailable at X,
  retrying`` once, and ``scheduler reachable again at X`` when it is. A result the scheduler did not take
  (e.g. its work item's lease had ended) is one line with the scheduler's reason, not a traceback.
* :func:`retrying` runs a client call again while the scheduler is unavailable, with backoff, saying so once.
* :data:`WORKER_RECONNECT`: the worker's own reconnect loop, with backoff capped at 2 s instead of 30 s (a
  restarted local scheduler is dispatching again within 2 s of answering).
"""

from __future__ import annotations

import logging
import random
import sys
import time
from collections.abc import Callable
from typing import TypeVar

import grpc
from durabletask.grpc_options import GrpcWorkerResiliencyOptions

T = TypeVar("T")
WORKER_RECONNECT = GrpcWorkerResiliencyOptions(
    reconnect_backoff_base_seconds=0.5, reconnect_backoff_cap_seconds=2.0
)
_UNREACHABLE = (
    "is unavailable",
    "Failed to connect",
    "failed to connect",
    "Connection failed, retrying",
    "Failed to create connection",
    "Connection timeout to",
    "Connection-level gRPC error",
    "Error in work item stream",
    "Socket closed",
    "Stream removed",
)
_RECONNECTED = ("Successfully connected to",)
_SHUTDOWN_NOISE = "Locally cancelled by application"
SDK_LOGGER = "monitoring.sdk"  # the SDK's worker and client log to children of this logger


def _code(record: logging.LogRecord) -> grpc.StatusCode | None:
    error = record.exc_info[1] if record.exc_info else None
    return error.code() if isinstance(error, grpc.RpcError) else None  # type: ignore[attr-defined]


def _rewrite(record: logging.LogRecord, message: str, level: int = logging.WARNING) -> None:
    record.msg, record.args = message, ()
    record.exc_info, record.exc_text = None, None
    record.levelno, record.levelname = level, logging.getLevelName(level)


class OneLineLog(logging.Filter):
    """Rewrites the SDK's connection and delivery errors as single lines (see the module docstring)."""

    def __init__(self, endpoint: str) -> None:
        super().__init__()
        self.endpoint = endpoint
        self.down = False
        self.undelivered = 0

    def _went_down(self, record: logging.LogRecord) -> bool:
        if self.down:
            return False
        self.down = True
        _rewrite(record, f"scheduler unavailable at {self.endpoint}, retrying")
        return True

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _SHUTDOWN_NOISE in message:
            return False
        if message.startswith("Failed to deliver"):
            what = message.split(" to sidecar", 1)[0].replace("Failed to deliver ", "")
            code = _code(record)
            if code == grpc.StatusCode.UNAVAILABLE:
                self.undelivered += 1
                return self._went_down(record)
            error = record.exc_info[1] if record.exc_info else None
            details = error.details() if isinstance(error, grpc.RpcError) else error  # type: ignore[attr-defined]
            refused = code is not None and code != grpc.StatusCode.UNKNOWN
            _rewrite(record, f"{what} {'not used' if refused else 'not delivered'}: {details or message}")
            return True
        if any(marker in message for marker in _UNREACHABLE):
            return self._went_down(record)
        if self.down and any(marker in message for marker in _RECONNECTED):
            lost = f" ({self.undelivered} result(s) not delivered meanwhile: that work runs again)"
            _rewrite(
                record, f"scheduler reachable again at {self.endpoint}{lost if self.undelivered else ''}"
            )
            self.down, self.undelivered = False, 0
            return True
        # This logger lets INFO through so the line above is seen; below WARNING, the SDK's own level decides.
        return record.levelno >= logging.getLogger(SDK_LOGGER).getEffectiveLevel()


def _unreachable(error: grpc.RpcError, idempotent: bool) -> bool:
    """True if the call may be sent again: the scheduler was not there (for a write: not reached at all)."""
    if error.code() != grpc.StatusCode.UNAVAILABLE:  # type: ignore[attr-defined]
        return False
    details = (error.details() or "").lower()  # type: ignore[attr-defined]
    return idempotent or "failed to connect" in details or "connection refused" in details


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def retrying(
    call: Callable[[], T],
    *,
    endpoint: str,
    idempotent: bool = True,
    patience: float = 120.0,
    say: Callable[[str], None] = _say,
) -> T:
    """``call()``, again and again while the scheduler is unavailable (backoff 0.2 s doubling to 5 s),
    for up to ``patience`` seconds; says ``scheduler unavailable ..., retrying`` once, then raises the last
    error if it never came back. A write (``idempotent=False``) is sent again only if it never reached it."""
    deadline = time.monotonic() + patience
    delay = 0.2
    warned = False
    while True:
        try:
            result = call()
        except grpc.RpcError as error:
            if not _unreachable(error, idempotent) or time.monotonic() + delay > deadline:
                raise
            if not warned:
                say(f"scheduler unavailable at {endpoint}, retrying")
                warned = True
            time.sleep(delay * (0.5 + random.random() / 2))
            delay = min(delay * 2, 5.0)
            continue
        if warned:
            say(f"scheduler reachable again at {endpoint}")
        return result
