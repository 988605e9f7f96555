"""Commands that run services: ``worker``, ``scheduler``, ``stop-scheduler`` and ``serve``."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterator

from monitoring import settings
from monitoring.cli.common import (
    UsageError,
    bounded_count,
    count,
    host_address,
    port,
    taskhub_name,
    wait_for_signal,
)
from monitoring.client.monitors import MonitorClient
from monitoring.runtime.connection import connection_from_env, ensure_backend
from monitoring.scheduler import process
from monitoring.scheduler.records import HubOptions
from monitoring.scheduler.server import DEFAULT_PORT, DEFAULT_TASKHUB
from monitoring.web.sockets import is_loopback
from monitoring.worker import create_worker, receiving, start_worker, stop_worker

DEFAULT_API_PORT, DEFAULT_DASHBOARD_PORT = 7071, 8082
MAX_WORKER_PROCESSES = 64  # a typo (10000) must not fork ten thousand workers


def _start_extra_workers(count: int, verbose: bool) -> Iterator[subprocess.Popen[bytes]]:
    """``count`` more ``python -m monitoring worker`` processes on the same ENDPOINT and TASKHUB."""
    command = [sys.executable, "-m", "monitoring", "worker", "--of-parent", str(os.getpid())]
    command += ["--verbose"] if verbose else []
    for _ in range(count):
        yield subprocess.Popen(command, stdin=subprocess.DEVNULL)


def cmd_worker(args: argparse.Namespace) -> int:
    connection = connection_from_env()
    if args.of_parent is not None:
        process.stop_with_parent(args.of_parent)
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
        wait_for_signal(give_up=lambda: not receiving(worker))
    finally:
        process.stop_processes(extra)
        died = not receiving(worker)
        worker.stop()
        if args.of_parent is None and not died:
            print("Worker stopped", file=sys.stderr, flush=True)
    if died:  # a worker that takes no work must not look started: say so and end, for a supervisor to see
        print("error: the worker's receiving thread died (its error is above); exiting", file=sys.stderr)
        return 1
    return 0


def days(text: str) -> float:
    try:
        return settings.retention_days(text.strip() or "-", "--retention-days")
    except settings.SettingsError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def cmd_scheduler(args: argparse.Namespace) -> int:
    state = "in memory" if args.in_memory else str(process.state_file(args.port, args.taskhub))

    def ready(address: str) -> None:
        print(
            f"Local scheduler listening on {address}, task hub {args.taskhub!r}, state {state}; "
            "Ctrl-C stops it",
            file=sys.stderr,
            flush=True,
        )

    retention = settings.load().retention_days if args.retention_days is None else args.retention_days
    limits = {} if args.max_active_instances is None else {"max_active_instances": args.max_active_instances}
    options = HubOptions(retention_seconds=retention * 86_400, **limits)
    process.run_scheduler_foreground(
        args.port, args.taskhub, in_memory=args.in_memory, options=options, owner=args.owner, on_ready=ready
    )
    print("Local scheduler stopped", file=sys.stderr, flush=True)
    return 0


def cmd_stop_scheduler(args: argparse.Namespace) -> int:
    if process.stop_scheduler_process(args.port):
        print(f"Stopped the local scheduler on port {args.port}", file=sys.stderr)
    else:
        print(f"No local scheduler of ours was running on port {args.port}", file=sys.stderr)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """The HTTP API, the dashboard and a worker, like ``func start`` for the Durable Functions sample."""
    from monitoring.web.api import create_app  # the web stack, imported only by the command that serves it
    from monitoring.web.dashboard import create_dashboard_app
    from monitoring.web.serving import BackgroundServer

    if not is_loopback(args.host) and not args.allow_remote:
        raise UsageError(
            f"refusing to serve on {args.host}: the API has no authentication, so it binds loopback only; "
            "pass --allow-remote if you really want it reachable from other machines"
        )
    if args.port == args.dashboard_port:
        raise UsageError(f"--port and --dashboard-port are both {args.port}; give them different ports")
    connection = connection_from_env()
    servers: list[BackgroundServer] = []
    # An HTTP request waits at most 15 s for a scheduler that is restarting, then gets its 503.
    with MonitorClient(connection, patience=15) as monitors:
        try:
            # Bind both ports before anything starts, so a taken port leaves nothing half-started.
            remote = args.allow_remote
            api_app = create_app(monitors, log_requests=True, allow_remote=remote)
            dashboard_app = create_dashboard_app(monitors, allow_remote=remote)
            servers.append(BackgroundServer(api_app, args.host, args.port))
            servers.append(BackgroundServer(dashboard_app, args.host, args.dashboard_port))
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
            wait_for_signal()
        finally:
            for server in servers:
                server.stop()
            stop_worker()
    print("Stopped the HTTP API, the dashboard and the worker", file=sys.stderr, flush=True)
    return 0


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    worker = commands.add_parser("worker", help="run a worker in the foreground (the sample's worker.py)")
    worker.add_argument("-v", "--verbose", action="store_true", help="also show the SDK's own log lines")
    worker.add_argument(
        "--processes",
        type=bounded_count(MAX_WORKER_PROCESSES),
        default=1,
        help=f"run this many workers (up to {MAX_WORKER_PROCESSES}), each in a process of its own, on the "
        "same task hub (1)",
    )
    worker.add_argument("--of-parent", type=int, default=None, help=argparse.SUPPRESS)  # extra workers
    worker.set_defaults(handler=cmd_worker, log=True)

    sched = commands.add_parser("scheduler", help="run the local scheduler in the foreground")
    sched.add_argument(
        "--port", type=port, default=DEFAULT_PORT, help=f"loopback port (default {DEFAULT_PORT})"
    )
    sched.add_argument(
        "--taskhub",
        type=taskhub_name,
        default=DEFAULT_TASKHUB,
        help=f"task hub name (default {DEFAULT_TASKHUB})",
    )
    sched.add_argument(
        "--in-memory",
        action="store_true",
        help="keep the task hub in memory only (lost when it stops); default: a SQLite file in the state "
        "directory, so a restart continues every monitor",
    )
    sched.add_argument(
        "--retention-days",
        type=days,
        default=None,
        help="purge finished instances this many days after they end (default: "
        f"{settings.RETENTION_DAYS_ENV} or {settings.DEFAULT_RETENTION_DAYS:g}; 0: at once)",
    )
    sched.add_argument(
        "--max-active-instances",
        type=count,
        default=None,
        metavar="N",
        help=f"refuse new orchestrations while N are active (default {HubOptions.max_active_instances:,})",
    )
    sched.add_argument("--owner", default="", help=argparse.SUPPRESS)  # who started it on demand
    sched.set_defaults(handler=cmd_scheduler, log=True)

    serve = commands.add_parser(
        "serve", help="HTTP API, dashboard and worker (the Durable Functions sample's func start)"
    )
    serve.add_argument(
        "--host", type=host_address, default="127.0.0.1", help="address to bind (default 127.0.0.1)"
    )
    serve.add_argument(
        "--port", type=port, default=DEFAULT_API_PORT, help=f"HTTP API port (default {DEFAULT_API_PORT})"
    )
    serve.add_argument(
        "--dashboard-port",
        type=port,
        default=DEFAULT_DASHBOARD_PORT,
        help=f"dashboard port (default {DEFAULT_DASHBOARD_PORT})",
    )
    serve.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --host that is not loopback (the API has no authentication)",
    )
    serve.set_defaults(handler=cmd_serve, log=True)

    stop = commands.add_parser("stop-scheduler", help="stop a local scheduler started in the background")
    stop.add_argument("--port", type=port, default=DEFAULT_PORT, help=f"its port (default {DEFAULT_PORT})")
    stop.set_defaults(handler=cmd_stop_scheduler)
