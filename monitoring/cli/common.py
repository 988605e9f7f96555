"""What every command shares: usage errors, argument types, exit codes, signals, logging."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, NoReturn

from monitoring.core.jobs import JOB_OUTCOMES
from monitoring.core.models import (
    DEFAULT_JOB_DURATION_SECONDS,
    DEFAULT_POLLING_INTERVAL_SECONDS,
    DEFAULT_TIMEOUT_SECONDS,
)
from monitoring.runtime.connection import (
    BackendError,
    Connection,
    connection_from_env,
    ensure_backend,
    local_scheduler_running,
)
from monitoring.settings import TASKHUB_PATTERN

PROG = "python -m monitoring"
EXIT_COMPLETED, EXIT_NOT_COMPLETED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """A mistake in how the command was called; printed as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def seconds(name: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number of seconds, not {text!r}") from None

    parse.__name__ = name
    return parse


def port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"port must be a number from 1 to 65535, not {text!r}")
    return int(text)


def count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of 1 or more, not {text!r}")
    return int(text)


def bounded_count(most: int) -> Callable[[str], int]:
    """A whole number from 1 to ``most``."""

    def parse(text: str) -> int:
        if not text.isdigit() or not 1 <= int(text) <= most:
            raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {most}, not {text[:40]!r}")
        return int(text)

    return parse


def taskhub_name(text: str) -> str:
    """A task hub name as ``TASKHUB`` takes it (:data:`monitoring.settings.TASKHUB_PATTERN`)."""
    if not TASKHUB_PATTERN.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"a task hub name is up to 64 letters, digits, '-', '_' or '.', not {text[:80]!r}"
        )
    return text


def host_address(text: str) -> str:
    """``localhost`` or an IP address (no other names: they would need a DNS lookup to bind)."""
    if text != "localhost":
        try:
            ipaddress.ip_address(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"--host takes localhost or an IP address of this machine, not {text[:80]!r}"
            ) from None
    return text


def counts(text: str) -> tuple[int, ...]:
    return tuple(count(part.strip()) for part in text.split(","))


def add_job_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--job-duration",
        type=seconds("job duration"),
        default=DEFAULT_JOB_DURATION_SECONDS,
        metavar="SECONDS",
        help=f"how long the simulated job runs (default {DEFAULT_JOB_DURATION_SECONDS:g})",
    )
    parser.add_argument(
        "--job-outcome",
        choices=JOB_OUTCOMES,
        default="Completed",
        help="how the simulated job ends (default Completed)",
    )


def wait_for_signal(give_up: Callable[[], bool] | None = None) -> None:
    """Return on SIGINT or SIGTERM, or as soon as ``give_up()`` is true (checked five times a second)."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(0.2):
            if give_up is not None and give_up():
                return
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def configure_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    root = logging.getLogger("monitoring")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.getLogger("monitoring.sdk").setLevel(logging.INFO if verbose else logging.WARNING)


def add_notify_options(parser: argparse.ArgumentParser) -> None:
    """``--notify-url`` and ``--notify-header``: where the result is POSTed when the monitor ends."""
    parser.add_argument("--notify-url", metavar="URL", help="POST the result to this http(s) URL at the end")
    parser.add_argument(
        "--notify-header",
        action="append",
        metavar="'NAME: VALUE'",
        help="a header of that POST (repeatable); ${NAME} in the value: the worker's environment variable",
    )


def notify_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The notification fields of a request, from ``--notify-url`` and ``--notify-header``."""
    headers: dict[str, str] | None = None
    for given in getattr(args, "notify_header", None) or []:
        name, colon, value = given.partition(":")
        if not colon or not name.strip():
            raise UsageError(f"--notify-header must be 'NAME: VALUE', not {given.split(':')[0]!r}...")
        headers = {**(headers or {}), name.strip(): value.strip()}
    url = getattr(args, "notify_url", None)
    return {"notify_url": url, "notify_headers": headers} if url is not None or headers else {}


def add_interval_options(parser: argparse.ArgumentParser, each: str = "") -> None:
    """``--interval`` and ``--timeout`` in seconds (``each``: "each job's " for a batch)."""
    parser.add_argument(
        "--interval",
        dest="polling_interval",
        type=seconds("interval"),
        default=DEFAULT_POLLING_INTERVAL_SECONDS,
        metavar="SECONDS",
        help=f"seconds between checks (default {DEFAULT_POLLING_INTERVAL_SECONDS:g})",
    )
    parser.add_argument(
        "--timeout",
        type=seconds("timeout"),
        default=DEFAULT_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help=f"seconds before {each or 'the '}monitor gives up (default {DEFAULT_TIMEOUT_SECONDS:g})",
    )


def backend_to_start_on() -> Connection:
    """The ENDPOINT/TASKHUB backend, checked; refused if it is the local scheduler and none answers (a
    monitor started there would wait for a worker that nobody has started)."""
    connection = connection_from_env()
    if connection.kind == "local" and not local_scheduler_running(connection):
        raise BackendError(
            f"no scheduler answers at {connection.endpoint}: start a worker first "
            "(python -m monitoring worker starts the local scheduler too)"
        )
    ensure_backend(connection)
    return connection
