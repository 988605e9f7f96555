"""Backends for protocol tests: the local scheduler (state file on) or the SDK's own in-memory servicer,
each served on a free loopback port, with the SDK's own worker and client talking to it; and ``local-fast``,
the local scheduler with the project's fast path (:class:`~monitoring.runtime.work_loop.LeanWorker`, what
``create_worker`` builds there) serving the same orchestrations, entities and schedules.

A test module declares its orchestrators, activities and entities once (:class:`Registry`); one worker per
backend serves them for the whole module. The SDK's servicer is served through ``LocalScheduler(servicer=)``
so it too listens on loopback only (its own ``start()`` binds every interface).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from durabletask.azuremanaged.client import DurableTaskSchedulerClient
from durabletask.azuremanaged.worker import DurableTaskSchedulerWorker
from durabletask.client import OrchestrationStatus
from durabletask.testing import InMemoryOrchestrationBackend

from monitoring.runtime.work_loop import LeanWorker
from monitoring.scheduler.server import LocalScheduler

BACKENDS = ("local", "local-fast", "sdk-memory")
OURS = ("local", "local-fast")
T = TypeVar("T")
WAIT = 120  # a hang guard: every wait returns as soon as the state it waits for is observed
TASKHUB = "default"

quiet = logging.getLogger("protocol-tests")
quiet.setLevel(logging.WARNING)
quiet.propagate = False


@dataclass
class Registry:
    """What one test module's worker serves (names as the SDK derives them from the functions)."""

    orchestrators: list[Callable[..., Any]] = field(default_factory=list)
    activities: list[Callable[..., Any]] = field(default_factory=list)
    entities: list[Any] = field(default_factory=list)
    scheduled_tasks: bool = False

    def orchestrator(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        self.orchestrators.append(fn)
        return fn

    def activity(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        self.activities.append(fn)
        return fn

    def entity(self, fn: Any) -> Any:
        self.entities.append(fn)
        return fn


def new_worker(
    address: str, registry: Registry, *, fast: bool = False, **options: Any
) -> DurableTaskSchedulerWorker:
    """The SDK's own worker for ``address`` with ``registry`` on it (not started); ``fast``: the fast path."""
    worker = (LeanWorker if fast else DurableTaskSchedulerWorker)(
        host_address=address,
        taskhub=TASKHUB,
        token_credential=None,
        secure_channel=False,
        logger=quiet,
        **options,
    )
    for orchestrator in registry.orchestrators:
        worker.add_orchestrator(orchestrator)
    for activity in registry.activities:
        worker.add_activity(activity)
    for entity in registry.entities:
        worker.add_entity(entity)
    if registry.scheduled_tasks:
        worker.configure_scheduled_tasks()
    return worker


def new_client(address: str) -> DurableTaskSchedulerClient:
    return DurableTaskSchedulerClient(
        host_address=address, taskhub=TASKHUB, token_credential=None, secure_channel=False, logger=quiet
    )


@dataclass
class Backend:
    """One running backend: its kind, address, scheduler (ours, or serving the SDK's servicer) and client."""

    kind: str
    scheduler: LocalScheduler
    client: DurableTaskSchedulerClient

    @property
    def address(self) -> str:
        return self.scheduler.address

    @property
    def ours(self) -> bool:
        return self.kind in OURS


@contextmanager
def running_backend(kind: str, state_dir: Path) -> Iterator[Backend]:
    if kind in OURS:
        scheduler = LocalScheduler(0, state=state_dir / "hub.sqlite3")
    else:
        scheduler = LocalScheduler(0, servicer=InMemoryOrchestrationBackend())
    with scheduler:
        client = new_client(scheduler.address)
        try:
            yield Backend(kind, scheduler, client)
        finally:
            client.close()


@contextmanager
def backend_with_worker(kind: str, state_dir: Path, registry: Registry, **options: Any) -> Iterator[Backend]:
    """A backend of ``kind`` and one SDK worker serving ``registry`` on it, both stopped at the end."""
    with running_backend(kind, state_dir) as backend:
        worker = new_worker(backend.address, registry, fast=kind == "local-fast", **options)
        worker.start()
        try:
            yield backend
        finally:
            worker.stop()


def wait_for_status(backend: Backend, instance_id: str, status: OrchestrationStatus) -> None:
    """Poll until ``instance_id`` shows ``status`` (the protocol has no call that waits for a suspension)."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        state = backend.client.get_orchestration_state(instance_id)
        if state is not None and state.runtime_status == status:
            return
        time.sleep(0.02)
    pytest.fail(f"{instance_id} never showed {status}")


FAULT_LIMIT = 600  # the hang guard of the fault tests, whose processes are killed and started again


def eventually(observe: Callable[[], T], done: Callable[[T], bool], what: str, limit: float = WAIT) -> T:
    """Poll ``observe`` until ``done`` holds for what it returns; ``limit`` only guards against a hang."""
    deadline = time.monotonic() + limit
    while True:
        seen = observe()
        if done(seen):
            return seen
        assert time.monotonic() < deadline, f"never saw {what}: {seen!r}"
        time.sleep(0.05)


def retried(call: Callable[[], T]) -> T:
    """``call``, again while the scheduler is down (a fault test restarts it on the same port)."""
    deadline = time.monotonic() + FAULT_LIMIT
    while True:
        try:
            return call()
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:  # type: ignore[attr-defined]
                raise
            time.sleep(0.2)


def wait_for(observe: Callable[[], T], done: Callable[[T], bool], what: str) -> T:
    """:func:`eventually`, riding out a scheduler restart, with the fault tests' limit."""
    return eventually(lambda: retried(observe), done, what, FAULT_LIMIT)
