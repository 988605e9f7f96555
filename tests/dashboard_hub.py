"""A task hub of its own for the dashboard's sub-orchestration, entity and schedule pages: a local scheduler,
the SDK's own worker serving the orchestrations and the entity below (and the SDK's schedules), and the
dashboard over it on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from durabletask import entities, task
from sdk_backends import Backend, Registry, backend_with_worker

from monitoring.client.monitors import MonitorClient
from monitoring.runtime.connection import local_connection
from monitoring.web.dashboard import create_dashboard_app
from monitoring.web.serving import BackgroundServer

hub_app = Registry(scheduled_tasks=True)


@hub_app.orchestrator
def leaf(ctx: task.OrchestrationContext, n: int) -> Any:
    return n * 2


@hub_app.orchestrator
def waits_for_go(ctx: task.OrchestrationContext, _: Any) -> Any:
    return (yield ctx.wait_for_external_event("go"))


@hub_app.orchestrator
def fan_out(ctx: task.OrchestrationContext, _: Any) -> Any:
    """Two children: one with the SDK's default id (``<parent>:0000``), one named (``<parent>-waiting``)."""
    quick = ctx.call_sub_orchestrator(leaf, input=21)
    waiting = ctx.call_sub_orchestrator(waits_for_go, instance_id=f"{ctx.instance_id}-waiting")
    return (yield task.when_all([quick, waiting]))


@hub_app.orchestrator
def nightly(ctx: task.OrchestrationContext, label: Any) -> Any:
    return f"ran {label}"


@hub_app.entity
def counter(ctx: entities.EntityContext, value: Any) -> Any:
    if ctx.operation == "set":
        ctx.set_state(value)
    return None


@dataclass
class Hub:
    backend: Backend
    monitors: MonitorClient
    server: BackgroundServer

    @property
    def url(self) -> str:
        return self.server.url


@contextmanager
def dashboard_hub(state_dir: Path) -> Iterator[Hub]:
    with (
        backend_with_worker("local", state_dir, hub_app) as backend,
        MonitorClient(local_connection(backend.address)) as monitors,
        BackgroundServer(create_dashboard_app(monitors)) as server,
    ):
        yield Hub(backend, monitors, server)
