"""Commands about monitors: ``start`` (the sample's client), ``demo``, and the control verbs."""

from __future__ import annotations

import argparse
import json
import sys
import threading

from monitoring.cli.common import (
    EXIT_COMPLETED,
    EXIT_INTERRUPTED,
    EXIT_NOT_COMPLETED,
    add_interval_options,
    add_job_options,
    add_notify_options,
    backend_to_start_on,
    notify_fields,
    seconds,
)
from monitoring.client.errors import InstanceStateError
from monitoring.client.monitors import MonitorClient
from monitoring.client.snapshots import MonitorSnapshot
from monitoring.core.models import DEFAULT_POLLING_INTERVAL_SECONDS, DEFAULT_TIMEOUT_SECONDS, MonitorRequest
from monitoring.core.payloads import json_safe
from monitoring.runtime.connection import (
    BackendError,
    Connection,
    check_credential,
    check_taskhub,
    connection_from_env,
    ensure_backend,
    local_connection,
    local_scheduler_running,
)
from monitoring.scheduler.server import LocalScheduler
from monitoring.worker import describe_running_worker, start_worker, stop_worker

# How long a new monitor may stay Pending before the CLI suggests that no worker is running.
NO_WORKER_HINT_SECONDS = 5.0


def _print_progress(snapshot: MonitorSnapshot) -> None:
    """One line a change, under the line that named the monitor and its job."""
    print(snapshot.describe(job_id=False), file=sys.stderr, flush=True)


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
    if final.runtime_status == "Completed":  # its output as published (another worker's may differ)
        print(json.dumps(json_safe(final.output_json), indent=2))
        return EXIT_COMPLETED if final.state == "Completed" else EXIT_NOT_COMPLETED
    failed = {"instance_id": instance_id, "runtime_status": final.runtime_status, "failure": final.failure}
    print(json.dumps(failed, indent=2))
    return EXIT_NOT_COMPLETED


def _request_from(args: argparse.Namespace) -> MonitorRequest:
    return MonitorRequest(
        job_id=args.job_id,
        polling_interval_seconds=args.polling_interval,
        timeout_seconds=args.timeout,
        job_duration_seconds=args.job_duration,
        job_outcome=args.job_outcome,
        status_url=getattr(args, "status_url", None),
        status_field=getattr(args, "status_field", None),
        **notify_fields(args),
    )


def cmd_start(args: argparse.Namespace) -> int:
    request = _request_from(args)
    connection = backend_to_start_on()
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
    """The backend ENDPOINT/TASKHUB name, if it answers for that task hub; else BackendError (one line)."""
    connection = connection_from_env()
    if connection.kind == "local" and not local_scheduler_running(connection):
        raise BackendError(f"no scheduler answers at {connection.endpoint}: no monitors to control there")
    token = check_credential(connection)
    check_taskhub(connection, token)
    return connection


CONTROL_SUMMARY = {
    "status": "show a monitor's runtime status, custom status and result",
    "cancel": "end a monitor at once with final_status Cancelled",
    "terminate": "stop a monitor's orchestration without running more of its code",
    "suspend": "pause a monitor (its timers wait until resumed)",
    "resume": "resume a suspended monitor",
    "purge": "delete a finished monitor's state and history",
}
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


def cmd_demo(args: argparse.Namespace) -> int:
    request = _request_from(args)
    env_connection = connection_from_env()
    embedded = None
    if env_connection.kind == "local":
        embedded = LocalScheduler(0).start()
        connection: Connection = local_connection(embedded.address)
        print(f"Using an embedded local scheduler at {embedded.address} (in this process)", file=sys.stderr)
    else:
        connection = env_connection
        print(ensure_backend(connection), file=sys.stderr)
    try:
        start_worker(connection)
        print(describe_running_worker(), file=sys.stderr)
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


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    start = commands.add_parser("start", help="schedule a monitor and follow it (the sample's client.py)")
    start.add_argument("job_id", nargs="?", help="job to monitor (default job-<uuid>)")
    start.add_argument(
        "polling_interval",
        nargs="?",
        type=seconds("polling_interval"),
        default=DEFAULT_POLLING_INTERVAL_SECONDS,
        help=f"seconds between checks (default {DEFAULT_POLLING_INTERVAL_SECONDS:g})",
    )
    start.add_argument(
        "timeout",
        nargs="?",
        type=seconds("timeout"),
        default=DEFAULT_TIMEOUT_SECONDS,
        help=f"seconds before the monitor gives up (default {DEFAULT_TIMEOUT_SECONDS:g})",
    )
    add_job_options(start)
    add_notify_options(start)
    start.add_argument(
        "--status-url",
        metavar="URL",
        help="monitor a real job: GET this http(s) URL at every check, read the job's status from its JSON",
    )
    start.add_argument(
        "--status-field",
        metavar="FIELD",
        help="the JSON field holding the status (default status; a dotted path such as job.state)",
    )
    start.set_defaults(handler=cmd_start)

    demo = commands.add_parser("demo", help="scheduler, worker and one monitor in this process")
    demo.add_argument("--job-id", default=None, help="job to monitor (default job-<uuid>)")
    add_interval_options(demo)
    add_job_options(demo)
    demo.set_defaults(handler=cmd_demo)

    for name, summary in CONTROL_SUMMARY.items():
        control = commands.add_parser(name, help=summary)
        control.add_argument("instance_id", help="the monitor's instance id (printed by start)")
        if name in ("cancel", "terminate", "suspend", "resume"):
            control.add_argument("--reason", default=None, help="why (kept with the monitor)")
        control.set_defaults(handler=cmd_control)
