"""Do finished and stuck instances slow the checks of the others? The same load on a scheduler process whose
state file is empty, and on one that already holds many finished (terminated) and suspended instances.

    python benchmarks/idle_instances.py                        # 20,000 finished, 500 suspended, two rounds
    python benchmarks/idle_instances.py --finished 5000 --rounds 1

Prints the CPU milliseconds per check of the scheduler process and of the worker process for each run
(the monitors and their measurement are those of ``benchmarks/persistence_cost.py``).
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

from durabletask.internal import orchestrator_service_pb2 as pb
from persistence_cost import run

from monitoring.core.models import MonitorRequest
from monitoring.core.orchestration import ORCHESTRATOR_NAME
from monitoring.scheduler.hub import Hub
from monitoring.scheduler.store import SqliteStore


def fill(path: Path, finished: int, suspended: int) -> None:
    """Write ``finished`` terminated and ``suspended`` suspended monitors into a scheduler's state file."""
    hub = Hub(SqliteStore(path))
    hub.start()
    waiting = MonitorRequest(job_id="idle", polling_interval_seconds=3600, timeout_seconds=86_400)
    request = pb.CreateInstanceRequest(name=ORCHESTRATOR_NAME)
    request.input.value = json.dumps(waiting.to_payload())
    ticket = 0
    for number in range(finished + suspended):
        instance_id = f"idle-{number}"
        request.instanceId = instance_id
        hub.create(request, instance_id)
        if number < finished:
            ticket = hub.terminate(instance_id, None)
        else:
            ticket = hub.suspend(instance_id, "parked by the benchmark")
    hub.commit(ticket)
    hub.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--finished", type=int, default=20_000)
    parser.add_argument("--suspended", type=int, default=500)
    parser.add_argument("--monitors", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    loaded = functools.partial(fill, finished=args.finished, suspended=args.suspended)
    for _ in range(args.rounds):
        for label, prefill in (("empty state  ", None), ("idle instances", loaded)):
            checks, scheduler_ms, worker_ms = run(False, args.monitors, args.interval, args.timeout, prefill)
            cost = f"scheduler {scheduler_ms:.2f} ms/check, worker {worker_ms:.2f} ms/check"
            print(f"{label} {checks} checks: {cost}", flush=True)


if __name__ == "__main__":
    main()
