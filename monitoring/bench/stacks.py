"""The stacks the bench compares: this project (one worker, or scaled out), the sample's loop, asyncio."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from durabletask.client import OrchestrationQuery, OrchestrationStatus, TaskHubGrpcClient
from durabletask.testing import InMemoryOrchestrationBackend
from durabletask.worker import ConcurrencyOptions, TaskHubGrpcWorker

from monitoring.bench.baselines import (
    PROTOCOL_FLOOR_ORCHESTRATOR,
    REFERENCE_ORCHESTRATOR,
    protocol_floor_orchestrator,
    reference_check_job,
    reference_sample_orchestrator,
)
from monitoring.bench.records import (
    RECORDER,
    free_loopback_port,
    process_memory_mb,
)
from monitoring.bench.worker_processes import WorkerProcesses
from monitoring.core.batch import BATCH_ORCHESTRATOR_NAME, MAX_CONCURRENT, BatchRequest
from monitoring.core.jobs import check_job
from monitoring.core.models import DEFAULT_CHECKS_PER_GENERATION, MonitorRequest
from monitoring.core.orchestration import ORCHESTRATOR_NAME
from monitoring.core.payloads import to_iso
from monitoring.runtime.connection import create_client, local_connection
from monitoring.scheduler import process, server
from monitoring.worker import create_worker

STACKS = (
    "project",
    "project-in-memory",
    "project-sdk-loop",
    "scale-out",
    "protocol-floor",
    "reference",
    "floor",
)
# Asked for by name only (--stacks project,project-batch), not part of the README's table.
OPTIONAL_STACKS = ("project-batch",)
# The SDK's defaults on 2 cores (100 x cores work items, cores + 4 threads): other settings measured no
# better (work items 16-400, threads 3-16; benchmarks/PROFILE.md).
PROJECT_WORK_ITEMS = 200
PROJECT_THREADS = 6
ACTIVE = (OrchestrationStatus.PENDING, OrchestrationStatus.RUNNING, OrchestrationStatus.SUSPENDED)


# --- the stacks -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchSettings:
    monitors: int = 1000
    interval: float = 5.0
    checks: int = 4
    saturated_monitors: int = 200
    saturated_checks: int = 10
    long_monitors: int = 2
    long_checks: int = 1000
    long_interval: float = 0.01
    reference_long_checks: int = 200  # its history is never cut: replays grow with every check
    checks_per_generation: int = DEFAULT_CHECKS_PER_GENERATION
    work_items: int = PROJECT_WORK_ITEMS  # the project worker's ConcurrencyOptions, to compare settings
    threads: int = PROJECT_THREADS
    scale_out_workers: int = 2  # worker processes of the scale-out stack
    sweep: tuple[int, ...] = ()  # the on-time runs' monitor counts, in order (default: just ``monitors``)

    def on_time_sizes(self) -> tuple[int, ...]:
        return self.sweep or (self.monitors,)


class Stack:
    """Starts monitors of the ``bench`` job and reports on the processes that run them."""

    name = ""
    scheduler_pid: int | None = None
    checks_per_generation = DEFAULT_CHECKS_PER_GENERATION

    @property
    def worker_pids(self) -> list[int]:
        """The processes that run the checks (this one, unless workers run in processes of their own)."""
        return [os.getpid()]

    def peak_worker_mb(self) -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def schedule(self, job_id: str, interval: float, checks: int) -> None:
        raise NotImplementedError

    def scheduled(self) -> None:
        """Called once a phase has scheduled its last monitor (a batch stack starts its batch here)."""

    def wait_all_done(self, prefix: str, timeout: float) -> None:
        """Wait until every monitor whose instance id starts with ``prefix`` has ended (one query a tick)."""

    def close(self) -> None:
        pass

    def request(self, job_id: str, interval: float, checks: int) -> MonitorRequest:
        # The job never finishes within the run, so every planned check happens: at 0, I, ..., (C-1)I.
        timeout = interval * (checks - 1) if checks > 1 else interval
        return MonitorRequest(
            job_id=job_id,
            polling_interval_seconds=interval,
            timeout_seconds=timeout,
            job_duration_seconds=timeout * 10 + 3600,
            checks_per_generation=self.checks_per_generation,
            deadline_grace_seconds=600.0,  # every planned check must happen, however late under overload
            job_source="bench",
        )


class _DurableStack(Stack):
    client: TaskHubGrpcClient

    def wait_all_done(self, prefix: str, timeout: float) -> None:
        # Called once every check is recorded, so only the last episodes remain: ask for the monitors that
        # have not ended (the scheduler filters), which keeps the answers small and the polling cheap.
        deadline = time.monotonic() + timeout
        query = OrchestrationQuery(
            instance_id_prefix=prefix, runtime_status=list(ACTIVE), fetch_inputs_and_outputs=False
        )
        while time.monotonic() < deadline:
            if not self.client.get_all_orchestration_states(query):
                return
            time.sleep(0.2)
        raise TimeoutError(f"{prefix}: monitors still running after {timeout:g} s")


def _concurrency(settings: BenchSettings) -> ConcurrencyOptions:
    return ConcurrencyOptions(
        maximum_concurrent_activity_work_items=settings.work_items,
        maximum_concurrent_orchestration_work_items=settings.work_items,
        maximum_thread_pool_workers=settings.threads,
    )


class ProjectStack(_DurableStack):
    """The tutorial's layout: the local scheduler in a process of its own, the worker in this process."""

    name = "project"
    in_memory = False  # the scheduler keeps its task hub in its state file, as the tutorial's does

    def __init__(self, settings: BenchSettings) -> None:
        self.checks_per_generation = settings.checks_per_generation
        self.port = free_loopback_port()
        self.scheduler_pid = process.spawn_scheduler_process(self.port, in_memory=self.in_memory)
        self.connection = local_connection(f"http://127.0.0.1:{self.port}")
        self.client = create_client(self.connection)
        try:
            self.start_workers(settings)
        except BaseException:
            process.stop_scheduler_process(self.port)
            raise

    def start_workers(self, settings: BenchSettings) -> None:
        self.worker = create_worker(self.connection, _concurrency(settings))
        self.worker.start()

    def schedule(self, job_id: str, interval: float, checks: int) -> None:
        payload = self.request(job_id, interval, checks).to_payload()
        self.client.schedule_new_orchestration(ORCHESTRATOR_NAME, input=payload, instance_id=job_id)

    def stop_workers(self) -> None:
        self.worker.stop()

    def close(self) -> None:
        try:
            self.stop_workers()
        finally:
            process.stop_scheduler_process(self.port)


class BatchProjectStack(ProjectStack):
    """The project's layout, each phase's monitors started as the jobs of one batch
    (:mod:`monitoring.core.batch`), all of them at once: what a batch costs next to separate monitors."""

    name = "project-batch"

    def __init__(self, settings: BenchSettings) -> None:
        super().__init__(settings)
        self.pending: list[MonitorRequest] = []
        self.batches = 0

    def schedule(self, job_id: str, interval: float, checks: int) -> None:
        self.pending.append(self.request(job_id, interval, checks))

    def scheduled(self) -> None:
        batch = BatchRequest(tuple(self.pending), max_concurrent=min(MAX_CONCURRENT, len(self.pending)))
        prefix = self.pending[0].job_id.rstrip("0123456789")  # the phase's prefix: its children match it
        self.batches += 1
        instance_id = f"{prefix}batch-{self.batches}"
        self.client.schedule_new_orchestration(
            BATCH_ORCHESTRATOR_NAME, input=batch.to_payload(), instance_id=instance_id
        )
        self.pending = []


class InMemoryProjectStack(ProjectStack):
    """The project's layout with the scheduler's task hub in memory only: what persistence costs."""

    name = "project-in-memory"
    in_memory = True


class ScaleOutStack(ProjectStack):
    """The same scheduler with ``scale_out_workers`` worker processes on its task hub; this one only starts.

    This is how the Durable Task Scheduler scales too: more workers on the same task hub share the work.
    """

    name = "scale-out"

    def start_workers(self, settings: BenchSettings) -> None:
        count = settings.scale_out_workers
        self.workers = WorkerProcesses(self.port, count, json.dumps(asdict(settings))).start()

    @property
    def worker_pids(self) -> list[int]:
        return self.workers.pids

    def peak_worker_mb(self) -> float:
        return sum(process_memory_mb(pid, "VmHWM") for pid in self.worker_pids)

    def stop_workers(self) -> None:
        self.workers.stop()


def run_worker_process(port: int, spool: Path, settings: BenchSettings) -> None:
    """A scale-out worker: check and record until SIGTERM, or until the process that started it is gone."""
    RECORDER.spool_to(spool)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    process.stop_with_parent(os.getppid())
    worker = create_worker(local_connection(f"http://127.0.0.1:{port}"), _concurrency(settings))
    worker.start()
    (spool / f"ready-{os.getpid()}").touch()
    try:
        stopping.wait()
    finally:
        worker.stop()


class SdkLoopProjectStack(ProjectStack):
    """The project on the SDK's own worker (its asyncio loop, full replays): what
    :class:`~monitoring.runtime.work_loop.LeanWorker` saves."""

    name = "project-sdk-loop"

    def start_workers(self, settings: BenchSettings) -> None:
        self.worker = create_worker(self.connection, _concurrency(settings), kind="sdk")
        self.worker.start()


class ProtocolFloorStack(ProjectStack):
    """The project's scheduler process and worker running :func:`protocol_floor_orchestrator`: what the
    SDK's executors, gRPC and this scheduler cost per check before any of the monitor's own work."""

    name = "protocol-floor"

    def start_workers(self, settings: BenchSettings) -> None:
        self.worker = create_worker(self.connection, _concurrency(settings))
        self.worker.add_orchestrator(protocol_floor_orchestrator)
        self.worker.add_activity(reference_check_job)
        self.worker.start()

    def schedule(self, job_id: str, interval: float, checks: int) -> None:
        payload = {"job_id": job_id, "interval": interval, "checks": checks}
        self.client.schedule_new_orchestration(PROTOCOL_FLOOR_ORCHESTRATOR, input=payload, instance_id=job_id)


class ReferenceStack(_DurableStack):
    name = "reference"

    def __init__(self) -> None:
        # In this process, as the sample runs it, and the SDK's own servicer (its thread per timer included),
        # bound to loopback by the project's LocalScheduler.
        self.backend = server.LocalScheduler(0, servicer=InMemoryOrchestrationBackend()).start()
        address = f"127.0.0.1:{self.backend.port}"
        self.worker = TaskHubGrpcWorker(host_address=address)
        self.worker.add_orchestrator(reference_sample_orchestrator)
        self.worker.add_activity(reference_check_job)
        self.worker.start()
        self.client = TaskHubGrpcClient(host_address=address)

    def schedule(self, job_id: str, interval: float, checks: int) -> None:
        # The sample loops while elapsed < timeout, and its timers drift (each is *now + interval*), so
        # the timeout is left wide and the run is cut at exactly ``checks`` checks to compare like for like.
        payload = {**self.request(job_id, interval, checks).to_payload(), "max_checks": checks}
        payload["timeout_seconds"] = interval * checks * 100 + 60
        self.client.schedule_new_orchestration(REFERENCE_ORCHESTRATOR, input=payload, instance_id=job_id)

    def close(self) -> None:
        self.worker.stop()
        self.backend.stop()


class FloorStack(Stack):
    """No durability: one asyncio task per monitor, sleeping until each check is due."""

    name = "floor"

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="bench-floor", daemon=True)
        self.thread.start()
        self.pending: dict[str, Any] = {}

    async def _monitor(self, request: MonitorRequest) -> None:
        started = datetime.now(timezone.utc)
        schedule = request.schedule()
        for number in range(1, schedule.planned_check_count + 1):
            due = started + timedelta(seconds=schedule.offset_of_check(number))
            await asyncio.sleep(max(0.0, (due - datetime.now(timezone.utc)).total_seconds()))
            check_job(request.check_request(to_iso(started), number, due_at=to_iso(due)))

    def schedule(self, job_id: str, interval: float, checks: int) -> None:
        request = self.request(job_id, interval, checks)
        self.pending[job_id] = asyncio.run_coroutine_threadsafe(self._monitor(request), self.loop)

    def wait_all_done(self, prefix: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for job_id, future in list(self.pending.items()):
            if job_id.startswith(prefix):
                future.result(timeout=max(0.1, deadline - time.monotonic()))
                del self.pending[job_id]

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def open_stack(name: str, settings: BenchSettings) -> Stack:
    projects = {
        "project": ProjectStack,
        "project-in-memory": InMemoryProjectStack,
        "project-batch": BatchProjectStack,
        "project-sdk-loop": SdkLoopProjectStack,
        "scale-out": ScaleOutStack,
        "protocol-floor": ProtocolFloorStack,
    }
    if name in projects:
        return projects[name](settings)
    return {"reference": ReferenceStack, "floor": FloorStack}[name]()
