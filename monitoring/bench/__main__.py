"""``python -m monitoring.bench [options]``: measure the stacks and print a table (or ``--json``).

``python -m monitoring.bench stack NAME`` and ``... worker`` are the subprocesses the bench starts itself.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import signal
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from monitoring.bench.phases import machine_description, run_all, run_stack
from monitoring.bench.report import results_table, update_readme, update_readme_waiting, waiting_table
from monitoring.bench.stacks import OPTIONAL_STACKS, STACKS, BenchSettings, run_worker_process
from monitoring.bench.waiting import WaitingSettings, measure_waiting, run_waiting
from monitoring.cli.common import EXIT_USAGE, Parser, UsageError, count, counts, seconds

PROG = "python -m monitoring.bench"


def build_parser() -> Parser:
    bench = Parser(prog=PROG, description="measure how many monitors one worker keeps on schedule")
    bench.add_argument("--monitors", type=count, default=1000, help="monitors in the on-time run (1000)")
    bench.add_argument("--interval", type=seconds("interval"), default=5.0, help="their interval (5 s)")
    bench.add_argument("--checks", type=count, default=4, help="checks per monitor (4)")
    bench.add_argument(
        "--saturated-monitors", type=count, default=200, help="monitors checking flat out (200)"
    )
    bench.add_argument("--long-monitors", type=count, default=2, help="monitors of many checks (2)")
    bench.add_argument("--long-checks", type=count, default=1000, help="their checks (1000)")
    bench.add_argument(
        "--reference-long-checks", type=count, default=200, help="the reference's (200: it replays all)"
    )
    bench.add_argument("--workers", type=count, default=2, help="worker processes of the scale-out stack (2)")
    bench.add_argument(
        "--sweep",
        type=counts,
        default=(),
        metavar="N,N,...",
        help="also run the on-time phase with these monitor counts (the table lists their p99)",
    )
    bench.add_argument(
        "--stacks",
        default=",".join(STACKS),
        help=f"which stacks, comma-separated (default all but {', '.join(OPTIONAL_STACKS)})",
    )
    bench.add_argument(
        "--waiting",
        type=counts,
        default=(),
        metavar="N,N,...",
        help="instead of the stacks: N monitors waiting on one local scheduler, for each N (see waiting.py)",
    )
    bench.add_argument(
        "--waiting-interval",
        type=seconds("waiting interval"),
        default=600.0,
        help="their interval (600 s)",
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
    return bench


def run(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    stacks = [name.strip() for name in args.stacks.split(",") if name.strip()]
    unknown = sorted(set(stacks) - set(STACKS) - set(OPTIONAL_STACKS))
    if unknown or not stacks:
        names = ", ".join((*STACKS, *OPTIONAL_STACKS))
        raise UsageError(f"--stacks takes names from {names}, not {args.stacks!r}")
    for option, interval in (("--interval", args.interval), ("--waiting-interval", args.waiting_interval)):
        if not (math.isfinite(interval) and interval > 0):
            raise UsageError(f"{option} must be a number of seconds greater than zero, not {interval!r}")
    if args.checks < 2:
        raise UsageError("--checks must be at least 2")
    if args.waiting:
        return run_waiting_sizes(args, argv)
    # --monitors first, in a fresh process (StackResult.main_on_time), then the other sizes, smallest first.
    sweep = (args.monitors, *sorted(set(args.sweep) - {args.monitors})) if args.sweep else ()
    settings = BenchSettings(
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
    results = run_all(settings, stacks, on_stack=lambda name: print(f"measuring {name} ...", flush=True))
    if args.json:
        print(json.dumps(results.to_json(), indent=2))
    else:
        print(f"{results.date}, {results.machine}\n")
        print(results_table(results))
    if args.update_readme:
        update_readme(results, Path(args.update_readme), f"{PROG} {shlex.join(argv)}".rstrip())
        print(f"updated {args.update_readme}")
    return 0


def run_waiting_sizes(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """``--waiting N,...``: each size in a process of its own, smallest first; one table (or JSON)."""
    when = machine_description()
    runs = []
    for size in sorted(set(args.waiting)):
        print(f"measuring {size} waiting monitors ...", flush=True)
        run = measure_waiting(WaitingSettings(size, interval=args.waiting_interval))
        runs.append(run)
        print(
            f"  {run.starts_per_second:.0f} starts/s; per monitor: "
            f"scheduler {run.scheduler_kb_per_monitor:.2f} KB, "
            f"worker {run.worker_kb_per_monitor:.2f} KB, file {run.state_file_kb_per_monitor:.2f} KB; "
            f"p99 {run.lateness_p99_seconds * 1000:.0f} ms; restart {run.restart_seconds:.1f} s",
            flush=True,
        )
    when = f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} on {when}"
    if args.json:
        print(json.dumps({"date": when, "waiting": [run.to_json() for run in runs]}, indent=2))
    else:
        print(f"{when}\n\n{waiting_table(runs)}")
    if args.update_readme:
        update_readme_waiting(runs, Path(args.update_readme), f"{PROG} {shlex.join(argv)}".rstrip(), when)
        print(f"updated {args.update_readme}")
    return 0


def run_subprocess(argv: Sequence[str]) -> int:
    """``stack NAME``: measure one stack, print its JSON; ``worker``: one worker process of scale-out (and of
    the waiting run); ``waiting``: one size of the waiting run (``--settings``: a WaitingSettings)."""
    parser = argparse.ArgumentParser(prog=PROG)
    parser.add_argument("command", choices=["stack", "worker", "waiting"])
    parser.add_argument("stack", nargs="?", choices=(*STACKS, *OPTIONAL_STACKS))
    parser.add_argument("--settings", default="{}")
    parser.add_argument("--port", type=int)
    parser.add_argument("--spool", type=Path)
    args = parser.parse_args(argv)
    values = json.loads(args.settings)
    if args.command == "waiting":
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
        print(json.dumps(run_waiting(WaitingSettings(**values)).to_json()), flush=True)
        return 0
    values["sweep"] = tuple(values.get("sweep", ()))
    settings = BenchSettings(**values)
    if args.command == "worker":
        run_worker_process(args.port, args.spool, settings)
    else:
        # Stopped (by the bench, ``timeout`` or a person), it closes its stack: no scheduler is left behind.
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
        print(json.dumps(run_stack(args.stack, settings).to_json()), flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["stack"], ["worker"], ["waiting"]):
        return run_subprocess(argv)
    try:
        return run(argv)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
