"""The dashboard's pages of durable entities and of the SDK's schedules, and their JSON routes::

    GET  /entities                           the entities page (static/entities.html)
    GET  /schedules                          the schedules page (static/schedules.html)
    GET  /api/entities?q=&offset=&limit=     one page of entities: id, name, key, last modified, backlog,
                                             lock holder, state as JSON text (cut to 200 characters)
    GET  /api/schedules?q=&offset=&limit=    one page of schedules: id, orchestration, interval, status,
                                             last and next run

``q`` is a prefix: of the entity's name (``counter``, or ``counter@key-start``), of the schedule's id. It is
checked like every other input: at most :data:`MAX_SEARCH_LENGTH` characters, valid UTF-8 (percent-encoded
bytes that are not are refused, not replaced), no control characters; a bad one is a one-line 400.
:func:`add_entity_routes` puts them on the app :func:`~monitoring.web.dashboard.create_dashboard_app` makes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse

from monitoring.client.monitors import MAX_ID_LENGTH, MonitorClient
from monitoring.core.payloads import InvalidRequestError
from monitoring.core.validation import check_text

MAX_SEARCH_LENGTH = MAX_ID_LENGTH


def search_prefix(request: Request, q: str) -> str:
    """``q`` if it is a prefix the scheduler can take; else a one-line :class:`InvalidRequestError`.

    Starlette replaces bytes that are not UTF-8 with U+FFFD, which would search for something nobody sent,
    so the raw query string is decoded again, strictly."""
    raw = request.scope.get("query_string", b"").decode("latin-1")
    try:
        parse_qsl(raw, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise InvalidRequestError("q is not valid UTF-8 (a percent-encoded byte is not)", field="q") from None
    return check_text("q", q, MAX_SEARCH_LENGTH, blank=True)


def _page(rows: list[dict[str, Any]], key: str, offset: int, limit: int, backend: Any) -> dict[str, Any]:
    return {
        "backend": backend,
        "matching": len(rows),
        "offset": offset,
        "limit": limit,
        key: rows[offset : offset + limit],
    }


def add_entity_routes(app: FastAPI, monitors: MonitorClient, backend: dict[str, Any], static: Path) -> None:
    """Register the entities and schedules pages and routes on ``app``."""

    @app.get("/entities", include_in_schema=False)
    def entities_page() -> FileResponse:
        return FileResponse(static / "entities.html")

    @app.get("/schedules", include_in_schema=False)
    def schedules_page() -> FileResponse:
        return FileResponse(static / "schedules.html")

    @app.get("/api/entities", summary="One page of durable entities, with their state as short JSON text")
    def entities(
        request: Request,
        q: str = Query(
            "",
            max_length=MAX_SEARCH_LENGTH,
            description="the start of the entity's name, or name@the start of its key",
        ),
        offset: int = Query(0, ge=0),
        limit: int = Query(25, ge=1, le=200),
    ) -> dict[str, Any]:
        search = search_prefix(request, q)
        rows = monitors.entities(search)
        return _page(rows, "entities", offset, limit, backend)

    @app.get("/api/schedules", summary="One page of the SDK's schedules (durabletask.scheduled)")
    def schedules(
        request: Request,
        q: str = Query("", max_length=MAX_SEARCH_LENGTH, description="the start of the schedule's id"),
        offset: int = Query(0, ge=0),
        limit: int = Query(25, ge=1, le=200),
    ) -> dict[str, Any]:
        search = search_prefix(request, q)
        rows = monitors.schedules(search)
        return _page(rows, "schedules", offset, limit, backend)
