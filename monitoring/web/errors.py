"""The answers both web apps give to what went wrong: JSON ``{"error", "field"}`` (or a small HTML page for a
browser asking one of the dashboard's pages), the package's errors mapped to status codes, and JSON that any
client can parse whatever others wrote. :mod:`monitoring.web.edge` puts them in front of every route.
"""

from __future__ import annotations

import dataclasses
import html
import json
import typing
from collections.abc import MutableMapping
from typing import Any

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from monitoring.client.errors import (
    InstanceFinishedError,
    InstanceNotFinishedError,
    JobStatusUnavailableError,
    LimitExceededError,
    UnknownInstanceError,
    UnknownJobError,
)
from monitoring.core.payloads import InvalidRequestError, json_safe
from monitoring.core.validation import printable, problems

Scope = MutableMapping[str, Any]


class SafeJSONResponse(JSONResponse):
    """JSON that any client can parse, whatever others wrote: ASCII only (so a lone surrogate is an escape,
    not an encoding error), and NaN or infinities (which JSON cannot carry) as null."""

    def render(self, content: Any) -> bytes:
        return json.dumps(
            json_safe(content), ensure_ascii=True, allow_nan=False, separators=(",", ":")
        ).encode()


def error_response(status: int, message: str, field: str | None = None, **headers: str) -> SafeJSONResponse:
    body: dict[str, Any] = {"error": message}
    if field is not None:
        body["field"] = field
    return SafeJSONResponse(body, status_code=status, headers=headers or None)


def error_page(status: int, message: str) -> str:
    """A small self-contained page saying what went wrong, with a way back to the instance list."""
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{status} - durable monitoring</title></head><body><h1>{status}</h1>"
        f"<p>{html.escape(message)}</p><p><a href='/'>All instances</a></p></body></html>"
    )


def wants_page(scope: Scope | Request, pages: bool) -> bool:
    """True when a browser asks for one of the dashboard's pages (not its JSON routes)."""
    request = scope if isinstance(scope, Request) else Request(scope)
    return (
        pages
        and not request.url.path.startswith("/api/")
        and "text/html" in request.headers.get("accept", "")
    )


def install_error_handlers(app: FastAPI, *, pages: bool = False) -> None:
    """The package's errors (and FastAPI's own) as JSON ``{"error": ...}`` with the right status; with
    ``pages``, a browser asking a page gets an HTML page instead."""

    def answer(request: Request, status: int, message: str, field: str | None = None) -> Response:
        if wants_page(request, pages):
            return Response(error_page(status, message), status, media_type="text/html")
        return error_response(status, message, field)

    @app.exception_handler(InvalidRequestError)
    async def invalid_request(request: Request, error: InvalidRequestError) -> Response:
        return answer(request, 400, str(error), error.field)

    @app.exception_handler(RequestValidationError)
    async def bad_parameters(request: Request, error: RequestValidationError) -> Response:
        found = problems(error.errors(), allowed=_body_fields(request))
        message = "; ".join(text for _, text in found) or "the request is not valid"
        return answer(request, 400, message, found[0][0] if found else None)

    statuses: dict[type[Exception], int] = {
        UnknownInstanceError: 404,
        UnknownJobError: 404,
        InstanceNotFinishedError: 409,
        InstanceFinishedError: 410,
        LimitExceededError: 429,
        JobStatusUnavailableError: 502,
    }
    for kind, status in statuses.items():

        async def known(request: Request, error: Exception, status: int = status) -> Response:
            return answer(request, status, printable(str(error), limit=1000))

        app.add_exception_handler(kind, known)

    @app.exception_handler(grpc.RpcError)
    async def backend_error(request: Request, error: grpc.RpcError) -> Response:
        code = error.code()  # type: ignore[attr-defined]
        details = printable(str(error.details()))  # type: ignore[attr-defined]
        if code == grpc.StatusCode.NOT_FOUND:
            return answer(request, 404, details)
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            return answer(request, 429, f"the scheduler is busy ({details}); try again shortly")
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            return answer(request, 400, f"the scheduler refused the request: {details}")
        return answer(request, 503, f"the scheduler said {code.name}: {details}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        detail = str(error.detail)
        if detail == "There was an error parsing the body":  # FastAPI's words for what json.loads refused
            detail = "the request body is not valid JSON (not UTF-8, nested too deeply, or a number too long)"
        response = answer(request, error.status_code, detail)
        response.headers.update(error.headers or {})
        if error.status_code == 405:  # every method of every route at this path, not only the first's
            response.headers["Allow"] = ", ".join(sorted(_allowed_methods(app, request.scope)))
        return response


def _body_fields(request: Request) -> tuple[str, ...]:
    """The fields the route's JSON body takes, when it is a dataclass (to list them beside an unknown one)."""
    body = getattr(request.scope.get("route"), "body_field", None)
    annotation = getattr(getattr(body, "field_info", None), "annotation", None)
    for kind in (annotation, *typing.get_args(annotation)):
        if isinstance(kind, type) and dataclasses.is_dataclass(kind):
            return tuple(field.name for field in dataclasses.fields(kind))
    return ()


def _allowed_methods(app: FastAPI, scope: Scope) -> set[str]:
    methods: set[str] = set()
    for route in app.router.routes:
        match, _ = route.matches(scope)
        if match is not Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    return methods


class ErrorBody(BaseModel):
    """Every error answer: what went wrong, and the input at fault when one is."""

    error: str
    field: str | None = Field(default=None, description="the request field, parameter or header at fault")


# The error answers every route of both apps may give, for the OpenAPI schema.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "bad input: the message names the field"},
    "4XX": {
        "model": ErrorBody,
        "description": "another client error: 403 cross-site, 404 unknown id, 413 body over the cap, "
        "415 body not JSON, 429 scheduler busy",
    },
    503: {"model": ErrorBody, "description": "the scheduler cannot be reached"},
}
