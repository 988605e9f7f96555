"""The dashboard: a live overview of the task hub, each instance's timeline and card, and its controls.

It reads and acts only through :class:`~monitoring.client.monitors.MonitorClient` (the CLI's client API), so
it works against the local scheduler, the emulator or Azure. The pages are static files in ``static/`` (no
CDN) that poll these JSON routes::

    GET  /api/overview                      the backend, counts by runtime and final status, checks per minute
    GET  /api/instances?status=&q=&sort=&order=&offset=&limit=    one page of the list (server-side)
    GET  /api/instances/{instanceId}        instance, card, timeline in time order, the actions that apply,
                                            its parent orchestration and its sub-orchestrations
    POST /api/instances/{instanceId}/{action}   cancel, terminate, suspend, resume or purge ({"reason"})
    GET  /api/start-options                 the job sources and the form's defaults
    POST /api/plan                          a monitor request checked by the API's model, and its prediction
    POST /api/monitors                      start that monitor

The entities and schedules pages and their routes are in :mod:`monitoring.web.dashboard_entities`. The
``POST`` routes accept only same-origin JSON
(:func:`~monitoring.web.dashboard_controls.mutation_refusal`).
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from monitoring.client.card import read_card
from monitoring.client.errors import InstanceStateError
from monitoring.client.history import build_timeline, in_time_order
from monitoring.client.lineage import read_lineage
from monitoring.client.monitors import MonitorClient
from monitoring.client.overview import InstanceIndex, ListQuery
from monitoring.core.jobs import job_source_names
from monitoring.core.models import SIMULATED_JOB_FIELDS, MonitorRequest
from monitoring.core.payloads import InvalidRequestError, to_iso
from monitoring.core.predict import predict
from monitoring.runtime.connection import Connection
from monitoring.scheduler import process
from monitoring.web.api import startable_over_http
from monitoring.web.dashboard_controls import ACTIONS, available_actions, mutation_refusal, perform
from monitoring.web.dashboard_entities import add_entity_routes
from monitoring.web.edge import SafeJSONResponse, edge_app, error_response, json_body

STATIC = Path(__file__).resolve().parent / "static"
RUNTIME_STATUSES = ("Pending", "Running", "Suspended", "Completed", "Failed", "Terminated", "ContinuedAsNew")
NOT_FOUND_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Not found · Durable monitoring dashboard</title><link rel="stylesheet" href="/static/dashboard.css">
</head><body><header><h1>Durable monitoring dashboard</h1></header><main>
<p class="problem">There is no page at this address.</p><p><a href="/">All instances</a></p>
</main></body></html>
"""


# --- the backend, named truthfully ------------------------------------------------------------------------


def describe_backend(connection: Connection, state_file: Path | None = None) -> dict[str, Any]:
    """What the header says: the kind of backend and where it is; for the local scheduler, the state
    directory and the file it keeps the task hub in."""
    endpoint = connection.endpoint
    label, detail = {
        "local": (f"the local scheduler at {endpoint}", "in a process of its own (run by you, or on demand)"),
        "embedded": (f"a local scheduler in this process at {endpoint}", "it stops with this process"),
        "emulator": (f"the Durable Task Scheduler emulator at {endpoint}", "no credential"),
        "azure": (f"Durable Task Scheduler in Azure at {endpoint}", "DefaultAzureCredential"),
    }.get(connection.kind, (f"{connection.kind} at {endpoint}", ""))
    state_dir = None
    if connection.kind == "local" and state_file is not None:
        state_dir = str(state_file.parent)
        label += f" (state directory {state_dir})"
        detail += f"; the task hub is kept in {state_file.name} there"
    return {
        "kind": connection.kind,
        "endpoint": endpoint,
        "taskhub": connection.taskhub,
        "label": label,
        "detail": detail,
        "stateDir": state_dir,
    }


def _plan_text(request: MonitorRequest) -> dict[str, Any]:
    """The planned and predicted checks of a request, in numbers and one sentence."""
    schedule = request.schedule()
    planned = schedule.planned_check_count
    offsets = [round(schedule.offset_of_check(n), 3) for n in range(1, min(planned, 6) + 1)]
    shown = ", ".join(f"{offset:g}" for offset in offsets) + (", …" if planned > len(offsets) else "")
    text = f"{planned} checks at most (at {shown} s; the last at the {request.timeout_seconds:g} s deadline)"
    payload: dict[str, Any] = {"planned_checks": planned, "offsets": offsets, "predicted": None}
    if request.job_source == "simulated":
        prediction = predict(request)
        payload["predicted"] = prediction.__dict__
        seen = f"ends {prediction.final_status}"
        text = (
            f"Predicted: {prediction.checks_performed} checks, {seen} at +{prediction.ended_at_offset:g} s. "
            + text[0].upper()
            + text[1:]
            + "."
        )
    payload["text"] = text
    return payload


def _monitor_request(payload: Any) -> MonitorRequest:
    """The start form's fields, validated by the model the HTTP API's start route uses."""
    return startable_over_http(MonitorRequest.from_payload(payload, default_job_id=f"job-{uuid.uuid4()}"))


# The job sources the start form offers, with the request fields each one shows ("a.b" is key b of the
# request's object field a). A source appears once it is registered (monitoring.core.jobs) and the request
# model has its fields: "http" with a status URL in job_source_options.url.
FORM_SOURCES: dict[str, tuple[str, tuple[str, ...]]] = {
    "simulated": ("simulated job", SIMULATED_JOB_FIELDS),
    "http": ("status URL (http)", ("job_source_options.url",)),
}


def start_form_options() -> dict[str, Any]:
    """The job sources a person can start a monitor with from the page, and the fields each one uses."""
    request_fields = {field.name for field in dataclasses.fields(MonitorRequest)}
    return {
        "sources": [
            {"name": name, "label": label, "fields": list(shown)}
            for name, (label, shown) in FORM_SOURCES.items()
            if name in job_source_names()
            and request_fields.issuperset(field.split(".")[0] for field in shown)
        ],
        "defaults": MonitorRequest(job_id="job").to_payload() | {"job_id": ""},
    }


def create_dashboard_app(
    monitors: MonitorClient,
    *,
    allow_remote: bool = False,
    state_file: Path | None = None,
    log_requests: bool = False,
) -> FastAPI:
    """The dashboard app for the task hub ``monitors`` talks to (behind :mod:`monitoring.web.edge`)."""
    # No /docs page: FastAPI's loads its scripts from a CDN, and the dashboard loads nothing from outside.
    app = edge_app(
        "Durable monitoring dashboard",
        version="2.0",
        docs_url=None,
        redoc_url=None,
        allow_remote=allow_remote,
        log_requests=log_requests,
        pages=True,
    )
    api_errors = app.exception_handlers[StarletteHTTPException]

    @app.exception_handler(StarletteHTTPException)
    async def not_a_page(request: Request, error: StarletteHTTPException) -> Any:
        """A person who mistypes a page's address gets a page that says so; the API keeps JSON errors."""
        if error.status_code != 404 or request.url.path.startswith(("/api/", "/static/")):
            return await api_errors(request, error)
        return HTMLResponse(NOT_FOUND_PAGE, status_code=404)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    connection = monitors.connection
    if state_file is None and connection.kind == "local":
        state_file = process.state_file(connection.local_port, connection.taskhub)
    backend = describe_backend(connection, state_file)
    index = InstanceIndex(monitors.client)
    add_entity_routes(app, monitors, backend, STATIC)

    @app.get("/", include_in_schema=False)
    def list_page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/instances/{instanceId}", include_in_schema=False)
    def instance_page(instanceId: str) -> FileResponse:
        return FileResponse(STATIC / "instance.html")

    @app.get("/api/overview", summary="Counts by runtime and final status, and checks per minute")
    def overview() -> dict[str, Any]:
        index.refresh()
        total, by_runtime, by_final = index.counts()
        return {
            "backend": backend,
            "total": total,
            "byRuntimeStatus": by_runtime,
            "byFinalStatus": by_final,
            "checksPerMinute": index.checks_per_minute(datetime.now(timezone.utc)),
        }

    @app.get("/api/instances", summary="One page of instances: filtered, searched and sorted on the server")
    def list_instances(
        status: Literal[RUNTIME_STATUSES] | None = None,  # type: ignore[valid-type]
        q: str = Query("", max_length=200, description="part of a job id or instance id"),
        sort: Literal["created", "updated", "instance", "job", "status"] = "created",
        order: Literal["asc", "desc"] = "desc",
        offset: int = Query(0, ge=0),
        limit: int = Query(25, ge=1, le=200),
    ) -> dict[str, Any]:
        index.refresh()
        page = index.page(ListQuery(status, q, sort, order == "desc", offset, limit))
        return {
            "backend": backend,
            "total": page.total,
            "matching": page.matching,
            "offset": offset,
            "limit": limit,
            "instances": [row.to_payload() for row in page.rows],
        }

    @app.get("/api/instances/{instanceId}", summary="One instance: card, timeline in time order, actions")
    def instance(instanceId: str) -> dict[str, Any]:
        details = monitors.details(instanceId)
        events = monitors.history(instanceId)
        entries = in_time_order(build_timeline(events))
        lineage = read_lineage(events)
        ended = next((e.at for e in reversed(entries) if e.kind == "ended"), None)
        if ended is None and details.is_terminal:
            ended = to_iso(details.last_updated_at)
        output = details.output if details.output is not None else details.failure
        card = read_card(details.runtime_status, details.custom_status, details.input, output)
        return {
            "backend": backend,
            "now": to_iso(datetime.now(timezone.utc)),
            "instance": details.to_payload(),
            "card": card.to_payload(),
            "timeline": [entry.to_payload() for entry in entries],
            "endedAt": ended,
            "actions": available_actions(details),
            "parent": lineage.parent,
            "children": monitors.children(instanceId, lineage.children),
            "childCount": len(lineage.children),
        }

    @app.post("/api/instances/{instanceId}/{action}", summary="Cancel, terminate, suspend, resume or purge")
    async def act(instanceId: str, action: str, request: Request) -> SafeJSONResponse:
        refusal = mutation_refusal(request)
        if refusal:
            return error_response(*refusal)
        chosen = ACTIONS.get(action)
        if chosen is None:
            return SafeJSONResponse({"error": f"no action {action!r}; use one of {', '.join(ACTIONS)}"}, 404)
        body = await json_body(request, required_object=True) or {}
        reason = body.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise InvalidRequestError("reason must be a string")
        try:
            message = await run_in_threadpool(perform, monitors, index, chosen, instanceId, reason)
        except InstanceStateError as error:
            return SafeJSONResponse({"error": str(error)}, 409)
        return SafeJSONResponse({"action": chosen.name, **message})

    @app.get("/api/start-options", summary="The start form's job sources and defaults")
    def start_options() -> dict[str, Any]:
        return start_form_options()

    @app.post("/api/plan", summary="Check a monitor request with the API's model; its planned checks")
    async def plan(request: Request) -> SafeJSONResponse:
        refusal = mutation_refusal(request)
        if refusal:
            return error_response(*refusal)
        monitor_request = _monitor_request(await json_body(request, required_object=True))
        return SafeJSONResponse(_plan_text(monitor_request))

    @app.post("/api/monitors", status_code=201, summary="Start a monitor (the API's request model)")
    async def start(request: Request) -> SafeJSONResponse:
        refusal = mutation_refusal(request)
        if refusal:
            return error_response(*refusal)
        monitor_request = _monitor_request(await json_body(request, required_object=True))
        instance_id = await run_in_threadpool(monitors.start, monitor_request)
        index.refresh(force=True)
        return SafeJSONResponse(
            {"instanceId": instance_id, "url": f"/instances/{instance_id}", **_plan_text(monitor_request)},
            status_code=201,
        )

    return app
