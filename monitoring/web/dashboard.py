"""A small scheduler dashboard: the task hub's instances, live, and each instance's input, output, custom
status and timeline of checks and timers.

It reads only through :class:`~monitoring.client.monitors.MonitorClient` (one query for the list, one
state and one history call for an instance page), so it works against the local scheduler, the emulator
or Azure.
The pages are static files in ``static/`` (no CDN) that poll two JSON routes::

    GET /api/instances               {"taskhub", "backend", "instances": [status, ...]}
    GET /api/instances/{instanceId}  {"instance": status, "timeline": [entry, ...]}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from monitoring.client.history import build_timeline
from monitoring.client.monitors import MonitorClient
from monitoring.web.api import install_error_handlers

STATIC = Path(__file__).resolve().parent / "static"


def create_dashboard_app(monitors: MonitorClient) -> FastAPI:
    """The dashboard app for the task hub ``monitors`` talks to."""
    app = FastAPI(title="Durable monitoring dashboard", version="1.0")
    install_error_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def list_page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/instances/{instanceId}", include_in_schema=False)
    def instance_page(instanceId: str) -> FileResponse:
        return FileResponse(STATIC / "instance.html")

    @app.get("/api/instances", summary="Every instance of the task hub, newest first (one query)")
    def list_instances() -> dict[str, Any]:
        return {
            "taskhub": monitors.connection.taskhub,
            "backend": monitors.connection.kind,
            "instances": [instance.to_payload() for instance in monitors.list_instances()],
        }

    @app.get("/api/instances/{instanceId}", summary="One instance and the timeline of its checks and timers")
    def instance(instanceId: str) -> dict[str, Any]:
        details = monitors.details(instanceId)
        timeline = build_timeline(monitors.client.get_orchestration_history(instanceId))
        return {
            "taskhub": monitors.connection.taskhub,
            "instance": details.to_payload(),
            "timeline": [entry.to_payload() for entry in timeline],
        }

    return app
