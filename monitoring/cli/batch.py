"""``start-batch``: monitor many jobs as one batch (:mod:`monitoring.core.batch`), and follow it.

The jobs come from job ids on the command line (each with the interval, timeout and job options given)
or from a JSON file: a list of start bodies, or ``{"jobs": [...], "max_concurrent": N}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from monitoring.cli.common import (
    EXIT_COMPLETED,
    EXIT_INTERRUPTED,
    EXIT_NOT_COMPLETED,
    UsageError,
    add_interval_options,
    add_job_options,
    add_notify_options,
    backend_to_start_on,
    bounded_count,
    notify_fields,
)
from monitoring.client.monitors import MonitorClient
from monitoring.client.snapshots import MonitorSnapshot
from monitoring.core.batch import DEFAULT_MAX_CONCURRENT, MAX_CONCURRENT, STATES, BatchRequest, read_counts
from monitoring.core.models import new_job_id
from monitoring.core.payloads import json_safe

MAX_FILE_BYTES = 16 * 1024 * 1024


def _body_from(args: argparse.Namespace) -> dict[str, Any]:
    if args.file is not None:
        if args.job_ids:
            raise UsageError("give job ids or --file, not both")
        path = Path(args.file)
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                raise UsageError(f"{path} is larger than {MAX_FILE_BYTES // 2**20} MB: split the batch")
            body = json.loads(path.read_bytes())
        except OSError as error:
            raise UsageError(f"cannot read {path}: {error.strerror}") from None
        except (ValueError, UnicodeDecodeError) as error:
            raise UsageError(f"{path} is not JSON: {error}") from None
        body = {"jobs": body} if isinstance(body, list) else body
        if isinstance(body, dict) and args.max_concurrent is not None:
            body = {**body, "max_concurrent": args.max_concurrent}
        return {**body, **notify_fields(args)} if isinstance(body, dict) else body
    if not args.job_ids:
        raise UsageError("give the job ids to monitor, or --file with their start bodies")
    options = {
        "polling_interval_seconds": args.polling_interval,
        "timeout_seconds": args.timeout,
        "job_duration_seconds": args.job_duration,
        "job_outcome": args.job_outcome,
    }
    limit = DEFAULT_MAX_CONCURRENT if args.max_concurrent is None else args.max_concurrent
    jobs = [{"job_id": job_id, **options} for job_id in args.job_ids]
    return {"jobs": jobs, "max_concurrent": limit, **notify_fields(args)}


def describe(snapshot: MonitorSnapshot) -> str:
    """One progress line: the batch's counts by state, from its custom status."""
    counts = read_counts(snapshot.custom_status_json)
    if counts is None:
        return f"batch {snapshot.runtime_status}"
    shown = ", ".join(f"{counts[state]} {state.replace('_', ' ')}" for state in STATES)
    return f"batch {snapshot.runtime_status}: {shown}"


def cmd_start_batch(args: argparse.Namespace) -> int:
    batch = BatchRequest.from_body(_body_from(args), default_job_id=lambda _: new_job_id())
    connection = backend_to_start_on()
    with MonitorClient(connection) as monitors:
        instance_id = monitors.start_batch(batch)
        print(
            f"Scheduled batch {instance_id} of {len(batch.jobs)} jobs, at most {batch.max_concurrent} "
            f"at once, on the {connection.describe()}",
            file=sys.stderr,
            flush=True,
        )
        try:
            final = monitors.follow(
                instance_id, on_change=lambda s: print(describe(s), file=sys.stderr, flush=True)
            )
        except KeyboardInterrupt:
            print(f"\nstopped following; batch {instance_id} keeps running", file=sys.stderr)
            return EXIT_INTERRUPTED
    print(json.dumps(json_safe(final.output_json), indent=2))
    counts = final.output_json.get("counts", {}) if isinstance(final.output_json, dict) else {}
    everything_completed = final.runtime_status == "Completed" and counts.get("completed") == len(batch.jobs)
    return EXIT_COMPLETED if everything_completed else EXIT_NOT_COMPLETED


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    batch = commands.add_parser("start-batch", help="monitor many jobs as one batch and follow it")
    batch.add_argument("job_ids", nargs="*", metavar="JOB_ID", help="the jobs to monitor")
    batch.add_argument(
        "--file", metavar="JSON", help="the jobs' start bodies: a list, or {jobs, max_concurrent}"
    )
    batch.add_argument(
        "--max-concurrent",
        type=bounded_count(MAX_CONCURRENT),
        default=None,
        metavar="N",
        help=f"jobs monitored at once (default {DEFAULT_MAX_CONCURRENT})",
    )
    add_interval_options(batch, each="each job's ")
    add_job_options(batch)
    add_notify_options(batch)
    batch.set_defaults(handler=cmd_start_batch)
