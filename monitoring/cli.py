"""``python -m monitoring``: the official sample's worker and client, plus a local scheduler and a demo.

Exit codes: 0 the job completed (or a control command was accepted); 1 the monitor ended Failed, Timeout
or Cancelled (or the orchestration failed), or a control command does not fit the monitor's state; 2 bad
arguments, bad configuration, an unreachable backend (nothing was scheduled) or an unknown instance id;
130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NoReturn

import grpc

from monitoring import processes, scheduler
from monitoring.connection import (
    BackendError,
    Connection,
    connection_from_env,
    create_worker,
    ensure_backend,
    local_connection,
)
from monitoring.models import (
    DEFAULT_JOB_DURATION_SECONDS,
    DEFAULT_POLLING_INTERVAL_SECONDS,
    DEFAULT_TIMEOUT_SECONDS,
    JOB_OUTCOMES,
    InvalidRequestError,
    MonitorRequest,
)
from monitoring.runtime import (
    InstanceStateError,
    MonitorClient,
    MonitorSnapshot,
    UnknownInstanceError,
    start_worker,
    stop_worker,
)
from monitoring.serving import BackgroundServer, PortInUseError, is_loopback

DEFAULT_API_PORT, DEFAULT_DASHBOARD_PORT = 7071, 8082

EXIT_COMPLETED, EXIT_NOT_COMPLETED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
# How long a new monitor may stay Pending before the CLI suggests that no worker is running.
NO_WORKER_HINT_SECONDS = 5.0


class UsageError(Exception):
    """A mistake in how the command was called; printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see python -m monitoring {self.prog.split()[-1]} --help)")


def _seconds(name: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number of seconds, not {text!r}") from None

    parse.__name__ = name
    return parse


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"port must be a number from 1 to 65535, not {text!r}")
    return int(text)


def _print_progress(snapshot: MonitorSnapshot) -> None:
    print(snapshot.describe(), file=sys.stderr, flush=True)


def _hint_if_no_worker(monitors: MonitorClient, instance_id: str) -> threading.Timer:
    """After a few seconds, say so if the monitor is still Pending (no worker has picked it up)."""

    def check() -> None:
        if monitors.snapshot(instance_id).runtime_status == "Pending":
            print(
                f"still Pending after {NO_WORKER_HINT_SECONDS:g} s: is a worker running? "
                "(python -m monitoring worker)",
                file=sys.stderr,
                flush=True,
            )

    timer = threading.Timer(NO_WORKER_HINT_SECONDS, check)
    timer.daemon = True
    timer.start()
    return timer


def _follow_and_report(monitors: MonitorClient, instance_id: str) -> int:
    """Print progress until the monitor ends, then its result as JSON; return the exit code."""
    hint = _hint_if_no_worker(monitors, instance_id)
    try:
        final = monitors.follow(instance_id, on_change=_print_progress)
    finally:
        hint.cancel()
    if final.result is not None:
        print(json.dumps(final.result.to_payload(), indent=2))
        return EXIT_COMPLETED if final.result.final_status == "Completed" else EXIT_NOT_COMPLETED
    failed = {"instance_id": instance_id, "runtime_status": final.runtime_status, "failure": final.failure}
    print(json.dumps(failed, indent=2))
    return EXIT_NOT_COMPLETED


def _request_from(args: argparse.Namespace) -> MonitorRequest:
    return MonitorRequest(
        job_id=args.job_id or f"job-{uuid.uuid4()}",
        polling_interval_seconds=args.polling_interval,
        timeout_seconds=args.timeout,
        job_duration_seconds=args.job_duration,
        job_outcome=args.job_outcome,
    )


def cmd_start(args: argparse.Namespace) -> int:
    request = _request_from(args)
    connection = connection_from_env()
    if connection.kind == "local" and not scheduler.probe(f"127.0.0.1:{connection.local_port}"):
        raise BackendError(
            f"no scheduler answers at {connection.endpoint}: start a worker first "
            "(python -m monitoring worker starts the local scheduler too)"
        )
    ensure_backend(connection)
    with MonitorClient(connection) as monitors:
        instance_id = monitors.start(request)
        print(
            f"Scheduled monitor {instance_id} for job {request.job_id} on the {connection.describe()}",
            file=sys.stderr,
            flush=True,
        )
        try:
            return _follow_and_report(monitors, instance_id)
        except KeyboardInterrupt:
            print(f"\nstopped following; monitor {instance_id} keeps running", file=sys.stderr)
            return EXIT_INTERRUPTED


def _existing_backend() -> Connection:
    connection = connection_from_env()
    if connection.kind == "local" and not scheduler.probe(f"127.0.0.1:{connection.local_port}"):
        raise BackendError(f"no scheduler answers at {connection.endpoint}: no monitors to control there")
    return connection


CONTROL_DONE = {
    "cancel": "Cancel requested for monitor {id}: it ends Cancelled at once",
    "terminate": "Terminated monitor {id}",
    "suspend": "Suspend requested for monitor {id}: no checks until it is resumed",
    "resume": "Resume requested for monitor {id}: overdue checks run at once",
    "purge": "Purged monitor {id}",
}


def cmd_control(args: argparse.Namespace) -> int:
    """cancel | terminate | suspend | resume | purge | status ID."""
    with MonitorClient(_existing_backend()) as monitors:
        try:
            if args.command == "status":
                snapshot = monitors.snapshot(args.instance_id)
                print(snapshot.describe(), file=sys.stderr)
                print(json.dumps(snapshot.to_payload(), indent=2))
                return 0
            action = getattr(monitors, args.command)
            if args.command == "purge":
                action(args.instance_id)
            else:
                action(args.instance_id, args.reason)
        except InstanceStateError as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_NOT_COMPLETED
    print(CONTROL_DONE[args.command].format(id=args.instance_id), file=sys.stderr)
    return 0


def _wait_for_signal() -> None:
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(0.2):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _start_extra_workers(count: int, verbose: bool) -> Iterator[subprocess.Popen[bytes]]:
    """``count`` more ``python -m monitoring worker`` processes on the same ENDPOINT and TASKHUB."""
    command = [sys.executable, "-m", "monitoring", "worker", "--of-parent", str(os.getpid())]
    command += ["--verbose"] if verbose else []
    for _ in range(count):
        yield subprocess.Popen(command, stdin=subprocess.DEVNULL)


def cmd_worker(args: argparse.Namespace) -> int:
    connection = connection_from_env()
    if args.of_parent is not None:
        processes.stop_with_parent(args.of_parent)
    else:
        print(ensure_backend(connection), file=sys.stderr, flush=True)
    worker = create_worker(connection)
    worker.start()
    extra: list[subprocess.Popen[bytes]] = []
    try:
        extra += _start_extra_workers(args.processes - 1, args.verbose)
        if args.of_parent is None:
            count = f" in {args.processes} processes" if args.processes > 1 else ""
            print(
                f"Worker running{count} (monitoring_job_orchestrator, check_job_status); Ctrl-C stops it",
                file=sys.stderr,
                flush=True,
            )
        _wait_for_signal()
    finally:
        processes.stop_processes(extra)
        worker.stop()
        if args.of_parent is None:
            print("Worker stopped", file=sys.stderr, flush=True)
    return 0


def cmd_scheduler(args: argparse.Namespace) -> int:
    def ready(address: str) -> None:
        print(
            f"Local scheduler listening on {address}, task hub {args.taskhub!r}; Ctrl-C stops it",
            file=sys.stderr,
            flush=True,
        )

    scheduler.run_scheduler_foreground(args.port, args.taskhub, on_ready=ready)
    print("Local scheduler stopped", file=sys.stderr, flush=True)
    return 0


def cmd_stop_scheduler(args: argparse.Namespace) -> int:
    if scheduler.stop_scheduler_process(args.port):
        print(f"Stopped the local scheduler on port {args.port}", file=sys.stderr)
    else:
        print(f"No local scheduler of ours was running on port {args.port}", file=sys.stderr)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    request = _request_from(args)
    env_connection = connection_from_env()
    embedded = None
    if env_connection.kind == "local":
        embedded = scheduler.LocalScheduler(0).start()
        connection: Connection = local_connection(embedded.address)
        print(f"Using an embedded local scheduler at {embedded.address} (in this process)", file=sys.stderr)
    else:
        connection = env_connection
        print(ensure_backend(connection), file=sys.stderr)
    try:
        start_worker(connection)
        with MonitorClient(connection) as monitors:
            instance_id = monitors.start(request)
            print(
                f"Monitoring job {request.job_id}: a check every {request.polling_interval_seconds:g} s, "
                f"timeout {request.timeout_seconds:g} s, the job takes {request.job_duration_seconds:g} s",
                file=sys.stderr,
                flush=True,
            )
            return _follow_and_report(monitors, instance_id)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    finally:
        stop_worker()
        if embedded is not None:
            embedded.stop()


def cmd_serve(args: argparse.Namespace) -> int:
    """The HTTP API, the dashboard and a worker, like ``func start`` for the Durable Functions sample."""
    from monitoring.dashboard import create_dashboard_app
    from monitoring.http_api import create_app

    if not is_loopback(args.host) and not args.allow_remote:
        raise UsageError(
            f"refusing to serve on {args.host}: the API has no authentication, so it binds loopback only; "
            "pass --allow-remote if you really want it reachable from other machines"
        )
    if args.port == args.dashboard_port:
        raise UsageError(f"--port and --dashboard-port are both {args.port}; give them different ports")
    connection = connection_from_env()
    servers: list[BackgroundServer] = []
    with MonitorClient(connection) as monitors:
        try:
            # Bind both ports before anything starts, so a taken port leaves nothing half-started.
            api_app = create_app(monitors, log_requests=True)
            servers.append(BackgroundServer(api_app, args.host, args.port))
            servers.append(BackgroundServer(create_dashboard_app(monitors), args.host, args.dashboard_port))
            print(ensure_backend(connection), file=sys.stderr, flush=True)
            start_worker(connection)
            for server in servers:
                server.start()
            api, dashboard = servers
            print(
                f"HTTP API on {api.url}/api/start_monitoring_job (OpenAPI: {api.url}/docs)\n"
                f"Dashboard on {dashboard.url}\n"
                "Worker running (monitoring_job_orchestrator, check_job_status); Ctrl-C stops it all",
                file=sys.stderr,
                flush=True,
            )
            _wait_for_signal()
        finally:
            for server in servers:
                server.stop()
            stop_worker()
    print("Stopped the HTTP API, the dashboard and the worker", file=sys.stderr, flush=True)
    return 0


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of 1 or more, not {text!r}")
    return int(text)


def _counts(text: str) -> tuple[int, ...]:
    return tuple(_count(part.strip()) for part in text.split(","))


def cmd_bench(args: argparse.Namespace) -> int:
    from monitoring import bench

    stacks = [name.strip() for name in args.stacks.split(",") if name.strip()]
    unknown = sorted(set(stacks) - set(bench.STACKS))
    if unknown or not stacks:
        raise UsageError(f"--stacks takes names from {', '.join(bench.STACKS)}, not {args.stacks!r}")
    if args.interval <= 0 or args.checks < 2:
        raise UsageError("--interval must be greater than zero and --checks at least 2")
    # --monitors first, in a fresh process (see bench.main_on_time), then the other sizes, smallest first.
    sweep = (args.monitors, *sorted(set(args.sweep) - {args.monitors})) if args.sweep else ()
    settings = bench.BenchSettings(
        monitors=args.monitors,
        interval=args.interval,
        checks=args.checks,
        saturated_monitors=args.saturated_monitors,
        long_monitors=args.long_monitors,
        long_checks=args.long_checks,
        reference_long_checks=args.reference_long_checks,
        scale_out_workers=args.workers,
        sweep=sweep,
    )
    run = bench.run_all(settings, stacks, on_stack=lambda name: print(f"measuring {name} ...", flush=True))
    if args.json:
        print(json.dumps(run, indent=2))
    else:
        print(f"{run['date']}, {run['machine']}\n")
        print(bench.results_table(run))
    if args.update_readme:
        command = "python -m monitoring " + shlex.join(args.argv)
        bench.update_readme(run, Path(args.update_readme), command)
        print(f"updated {args.update_readme}")
    return 0


def _add_job_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--job-duration",
        type=_seconds("job duration"),
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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m monitoring", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    start = commands.add_parser("start", help="schedule a monitor and follow it (the sample's client.py)")
    start.add_argument("job_id", nargs="?", help="job to monitor (default job-<uuid>)")
    start.add_argument(
        "polling_interval",
        nargs="?",
        type=_seconds("polling_interval"),
        default=DEFAULT_POLLING_INTERVAL_SECONDS,
        help=f"seconds between checks (default {DEFAULT_POLLING_INTERVAL_SECONDS:g})",
    )
    start.add_argument(
        "timeout",
        nargs="?",
        type=_seconds("timeout"),
        default=DEFAULT_TIMEOUT_SECONDS,
        help=f"seconds before the monitor gives up (default {DEFAULT_TIMEOUT_SECONDS:g})",
    )
    _add_job_options(start)
    start.set_defaults(handler=cmd_start)

    demo = commands.add_parser("demo", help="scheduler, worker and one monitor in this process")
    demo.add_argument("--job-id", default=None, help="job to monitor (default job-<uuid>)")
    demo.add_argument(
        "--interval",
        dest="polling_interval",
        type=_seconds("interval"),
        default=DEFAULT_POLLING_INTERVAL_SECONDS,
        metavar="SECONDS",
        help=f"seconds between checks (default {DEFAULT_POLLING_INTERVAL_SECONDS:g})",
    )
    demo.add_argument(
        "--timeout",
        type=_seconds("timeout"),
        default=DEFAULT_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help=f"seconds before the monitor gives up (default {DEFAULT_TIMEOUT_SECONDS:g})",
    )
    _add_job_options(demo)
    demo.set_defaults(handler=cmd_demo)

    worker = commands.add_parser("worker", help="run a worker in the foreground (the sample's worker.py)")
    worker.add_argument("-v", "--verbose", action="store_true", help="also show the SDK's own log lines")
    worker.add_argument(
        "--processes",
        type=_count,
        default=1,
        help="run this many workers, each in a process of its own, on the same task hub (1)",
    )
    worker.add_argument("--of-parent", type=int, default=None, help=argparse.SUPPRESS)  # extra workers
    worker.set_defaults(handler=cmd_worker)

    sched = commands.add_parser("scheduler", help="run the local scheduler in the foreground")
    sched.add_argument(
        "--port",
        type=_port,
        default=scheduler.DEFAULT_PORT,
        help=f"loopback port (default {scheduler.DEFAULT_PORT})",
    )
    sched.add_argument(
        "--taskhub",
        default=scheduler.DEFAULT_TASKHUB,
        help=f"task hub name (default {scheduler.DEFAULT_TASKHUB})",
    )
    sched.set_defaults(handler=cmd_scheduler)

    serve = commands.add_parser(
        "serve", help="HTTP API, dashboard and worker (the Durable Functions sample's func start)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument(
        "--port", type=_port, default=DEFAULT_API_PORT, help=f"HTTP API port (default {DEFAULT_API_PORT})"
    )
    serve.add_argument(
        "--dashboard-port",
        type=_port,
        default=DEFAULT_DASHBOARD_PORT,
        help=f"dashboard port (default {DEFAULT_DASHBOARD_PORT})",
    )
    serve.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --host that is not loopback (the API has no authentication)",
    )
    serve.set_defaults(handler=cmd_serve)
    for name, summary in (
        ("status", "show a monitor's runtime status, custom status and result"),
        ("cancel", "end a monitor at once with final_status Cancelled"),
        ("terminate", "stop a monitor's orchestration without running more of its code"),
        ("suspend", "pause a monitor (its timers wait until resumed)"),
        ("resume", "resume a suspended monitor"),
        ("purge", "delete a finished monitor's state and history"),
    ):
        control = commands.add_parser(name, help=summary)
        control.add_argument("instance_id", help="the monitor's instance id (printed by start)")
        if name in ("cancel", "terminate", "suspend", "resume"):
            control.add_argument("--reason", default=None, help="why (kept with the monitor)")
        control.set_defaults(handler=cmd_control)

    bench = commands.add_parser("bench", help="measure how many monitors one worker keeps on schedule")
    bench.add_argument("--monitors", type=_count, default=1000, help="monitors in the on-time run (1000)")
    bench.add_argument("--interval", type=_seconds("interval"), default=5.0, help="their interval (5 s)")
    bench.add_argument("--checks", type=_count, default=4, help="checks per monitor (4)")
    bench.add_argument(
        "--saturated-monitors", type=_count, default=200, help="monitors checking flat out (200)"
    )
    bench.add_argument("--long-monitors", type=_count, default=2, help="monitors of many checks (2)")
    bench.add_argument("--long-checks", type=_count, default=1000, help="their checks (1000)")
    bench.add_argument(
        "--reference-long-checks", type=_count, default=200, help="the reference's (200: it replays all)"
    )
    bench.add_argument(
        "--workers", type=_count, default=2, help="worker processes of the scale-out stack (2)"
    )
    bench.add_argument(
        "--sweep",
        type=_counts,
        default=(),
        metavar="N,N,...",
        help="also run the on-time phase with these monitor counts (the table lists their p99)",
    )
    bench.add_argument(
        "--stacks", default="project,scale-out,reference,floor", help="which stacks, comma-separated"
    )
    bench.add_argument("--json", action="store_true", help="print every figure as JSON")
    bench.add_argument(
        "--update-readme",
        nargs="?",
        const="README.md",
        default=None,
        metavar="PATH",
        help="rewrite the results table in README.md (or PATH)",
    )
    bench.set_defaults(handler=cmd_bench)

    stop = commands.add_parser("stop-scheduler", help="stop a local scheduler started in the background")
    stop.add_argument(
        "--port",
        type=_port,
        default=scheduler.DEFAULT_PORT,
        help=f"its port (default {scheduler.DEFAULT_PORT})",
    )
    stop.set_defaults(handler=cmd_stop_scheduler)
    return parser


def _configure_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    root = logging.getLogger("monitoring")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.getLogger("monitoring.sdk").setLevel(logging.INFO if verbose else logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        args = build_parser().parse_args(argv)
        args.argv = argv  # as typed, for the README's record of how its table was made
        if args.command in ("worker", "serve"):
            _configure_logging(getattr(args, "verbose", False))
        return args.handler(args)
    except (
        UsageError,
        InvalidRequestError,
        BackendError,
        scheduler.SchedulerError,
        PortInUseError,
        UnknownInstanceError,
    ) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except grpc.RpcError as error:
        print(f"error: the scheduler said {error.code().name}: {error.details()}", file=sys.stderr)  # type: ignore[attr-defined]
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
