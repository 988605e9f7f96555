"""Entities under faults, with real processes: a worker process killed (``kill -9``) while entity
operations are out with it, then the scheduler process killed and restarted on its state file. Every
counter ends with exactly the number of operations sent to it (none lost, none applied twice), and every
orchestration that called the entities completes; plus, in process, waiting operations and delayed
signals kept across a scheduler restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from durabletask import entities
from durabletask.client import OrchestrationStatus
from sdk_backends import new_client, retried, wait_for
from test_scheduler import free_port

from monitoring.scheduler import process
from monitoring.scheduler.server import LocalScheduler

TESTS = Path(__file__).resolve().parent
COUNTERS, SIGNALS_EACH, CALLERS, CALLS_EACH = 10, 30, 20, 5
LIMIT = 600  # a hang guard only


class Processes:
    def __init__(self, logs: Path) -> None:
        self.port = free_port()
        self.address = f"http://127.0.0.1:{self.port}"
        self.logs = logs
        self.scheduler = process.spawn_scheduler_process(self.port)
        self.workers: list[subprocess.Popen[bytes]] = []

    def start_worker(self) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"worker-{len(self.workers) + 1}.log", "wb")  # noqa: SIM115 (the child's)
        worker = subprocess.Popen(
            [sys.executable, str(TESTS / "entity_worker.py"), self.address],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=TESTS,
        )  # fmt: skip
        log.close()
        self.workers.append(worker)
        return worker

    def stop(self) -> None:
        process.stop_processes(self.workers)
        process.stop_scheduler_process(self.port)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    running = Processes(tmp_path)
    try:
        yield running
    finally:
        running.stop()


def value(client: Any, key: str) -> int:
    found = client.get_entity(entities.EntityInstanceId("tally", key))
    raw = None if found is None else found.get_state()
    return json.loads(raw) if raw else 0


@pytest.mark.heavy
def test_killed_worker_and_scheduler_lose_and_double_no_entity_operation(processes: Processes) -> None:
    run = uuid.uuid4().hex[:8]
    keys = [f"{run}-{n}" for n in range(COUNTERS)]
    client = new_client(processes.address)
    first = processes.start_worker()
    try:
        callers = [
            client.schedule_new_orchestration(
                "adds_to_tally",
                input={"key": keys[n % COUNTERS], "times": CALLS_EACH},
                instance_id=f"{run}-c{n}",
            )
            for n in range(CALLERS)
        ]
        for _ in range(SIGNALS_EACH):
            for key in keys:
                client.signal_entity(entities.EntityInstanceId("tally", key), "add", 1)
        expected = {key: SIGNALS_EACH for key in keys}
        for n in range(CALLERS):
            expected[keys[n % COUNTERS]] += CALLS_EACH
        total = sum(expected.values())

        def applied() -> int:
            return sum(value(client, key) for key in keys)

        wait_for(applied, lambda done: done >= total // 5, "a fifth of the operations applied")
        first.send_signal(signal.SIGKILL)
        first.wait(60)
        assert retried(applied) < total, "the worker was killed with operations still to run"
        processes.start_worker()
        wait_for(applied, lambda done: done >= total // 2, "half of the operations applied")
        os.kill(processes.scheduler, signal.SIGKILL)
        processes.scheduler = process.spawn_scheduler_process(processes.port)

        final = wait_for(
            lambda: {key: value(client, key) for key in keys}, lambda seen: seen == expected, "every count"
        )
        assert final == expected
        for caller in callers:
            state = retried(
                lambda caller=caller: client.wait_for_orchestration_completion(caller, timeout=60)
            )
            assert state is not None and state.runtime_status == OrchestrationStatus.COMPLETED, caller
            assert state.get_output() == CALLS_EACH
    finally:
        client.close()


def test_waiting_operations_and_delayed_signals_survive_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "hub.sqlite3"
    port = free_port()
    key, later = uuid.uuid4().hex[:8], uuid.uuid4().hex[:8]
    with LocalScheduler(port, state=state) as scheduler:
        client = new_client(scheduler.address)
        try:
            # No worker: the operations wait in the scheduler, the delayed one on its timer.
            client.signal_entity(entities.EntityInstanceId("tally", key), "add", 4)
            at = datetime.now(timezone.utc) + timedelta(seconds=1)
            client.signal_entity(entities.EntityInstanceId("tally", later), "add", 6, signal_time=at)
            hub = scheduler.hub
            assert hub is not None
            with hub.lock:
                assert {e.entity_id: (len(e.queue), len(e.timers)) for e in hub.entities} == {
                    f"@tally@{key}": (1, 0),
                    f"@tally@{later}": (0, 1),
                }
        finally:
            client.close()
    with LocalScheduler(port, state=state) as scheduler:
        hub = scheduler.hub
        assert hub is not None
        with hub.lock:
            kept = {e.entity_id: len(e.queue) + len(e.timers) for e in hub.entities}
        assert kept == {f"@tally@{key}": 1, f"@tally@{later}": 1}, "both operations were kept"
        worker = subprocess.Popen(
            [sys.executable, str(TESTS / "entity_worker.py"), scheduler.address],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=TESTS,
        )  # fmt: skip
        client = new_client(scheduler.address)
        try:
            wait_for(lambda: value(client, key), lambda v: v == 4, "the kept signal applied")
            wait_for(lambda: value(client, later), lambda v: v == 6, "the delayed signal applied")
            assert datetime.now(timezone.utc) >= at
        finally:
            client.close()
            process.stop_processes([worker])
