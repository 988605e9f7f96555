"""What one waiting monitor holds in the local scheduler's memory, line by line (tracemalloc).

Starts ``--monitors`` monitors (interval 10 minutes) on a local scheduler keeping a state file, with a real
worker, waits until each has made its first check, stops; then opens a task hub on that file in this
process under tracemalloc and prints the bytes per instance that each allocating line still holds: the
instance record, its pending timers, its history (none: after a restart every history is in the file).

    python benchmarks/waiting_memory.py --monitors 2000
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from pathlib import Path

from monitoring.bench.records import RECORDER
from monitoring.bench.stacks import Stack
from monitoring.core.orchestration import ORCHESTRATOR_NAME
from monitoring.runtime.connection import create_client, local_connection
from monitoring.scheduler.loading import open_hub
from monitoring.scheduler.server import LocalScheduler
from monitoring.scheduler.store import SqliteStore
from monitoring.worker import create_worker


def build(path: Path, monitors: int) -> None:
    with LocalScheduler(0, state=path) as scheduler:
        connection = local_connection(scheduler.address)
        worker = create_worker(connection)
        worker.start()
        try:
            client = create_client(connection)
            for index in range(monitors):
                job_id = f"wait-{index:06d}"
                payload = Stack().request(job_id, 600, 3).to_payload()
                client.schedule_new_orchestration(ORCHESTRATOR_NAME, input=payload, instance_id=job_id)
            while RECORDER.count("wait-") < monitors:
                time.sleep(0.2)
            time.sleep(2)  # the episodes that publish the first checks' results
        finally:
            worker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--monitors", type=int, default=2000)
    parser.add_argument("--lines", type=int, default=12)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "hub.sqlite3"
        build(path, args.monitors)
        tracemalloc.start(1)
        before = tracemalloc.take_snapshot()
        hub = open_hub(SqliteStore(path))
        stats = tracemalloc.take_snapshot().compare_to(before, "lineno")
        print(f"{sum(s.size_diff for s in stats) / args.monitors:.0f} bytes per waiting instance, of which:")
        for stat in stats[: args.lines]:
            print(f"{stat.size_diff / args.monitors:6.0f}  {stat.traceback[0]}")
        sample = hub.instances.get("wait-000000")
        assert sample is not None
        print(
            f"input {len(sample.input or '')} chars, custom status {len(sample.custom_status or '')} chars, "
            f"{len(sample.timers)} pending timers, history of {len(sample.history)} events in the file only: "
            f"{sample.history_in_store}"
        )
        hub.store.close()


if __name__ == "__main__":
    main()
