"""What both web apps (the HTTP API, the dashboard) do before any route: :func:`edge_app` makes the app.

Every request first passes :class:`EdgeGuard`, plain ASGI middleware that checks, in this order:

* the ``Host`` header names a loopback host (``localhost``, ``127.0.0.1``, ``[::1]``, ...) unless the app
  was made with ``allow_remote`` (else 400): a DNS-rebinding page cannot reach a local server;
* a request that changes something (not GET, HEAD or OPTIONS) comes from no browser page or a local one
  (else 403), and says ``Content-Type: application/json`` if it has a body or any content type at all
  (else 415): a cross-site form cannot start a monitor;
* the body is at most ``max_body_bytes`` (default 1 MB, else 413): a larger ``Content-Length`` is refused
  before anything is read, a streamed body is counted as it arrives and refused once it passes the cap,
  so a large body never sits in memory.

Each request can be logged (method, path, status, time) with control characters escaped. Errors are JSON
``{"error": "...", "field": ...}`` (``field`` names the input at fault, when one is), or a small HTML page
for a browser asking one of the dashboard's pages. Responses never carry NaN or lone surrogates (JSON
written by others may), and the package's errors map to status codes
(:mod:`monitoring.web.errors`); nothing a client sends gets a 5xx other than 503 for an unreachable backend.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from monitoring.core.payloads import MAX_JSON_DEPTH, InvalidRequestError, json_depth
from monitoring.core.validation import json_type, printable
from monitoring.web.errors import (
    ERROR_RESPONSES,
    ErrorBody,
    SafeJSONResponse,
    error_page,
    error_response,
    install_error_handlers,
    wants_page,
)
from monitoring.web.sockets import is_loopback

__all__ = ["ErrorBody", "SafeJSONResponse", "edge_app", "is_loopback", "json_body"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_MAX_BODY_BYTES = 1_000_000
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
logger = logging.getLogger("monitoring.http")


def host_name(authority: str) -> str:
    """The host of a ``Host`` header or an origin's authority, lower case, without port or brackets."""
    authority = authority.strip().lower()
    if authority.startswith("["):
        return authority[1 : authority.find("]")] if "]" in authority else authority
    return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class EdgeGuard:
    """ASGI middleware: Host, origin, content type and body size checks, and request logging."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        allow_remote: bool = False,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        log_requests: bool = False,
        pages: bool = False,
    ) -> None:
        self.app = app
        self.allow_remote = allow_remote
        self.max_body_bytes = max_body_bytes
        self.log_requests = log_requests
        self.pages = pages

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = [0]

        async def noting_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        started = time.monotonic()
        try:
            refusal = self._refusal(scope)
            body = b""
            if refusal is None:
                body, refusal = await self._read_body(receive)
            if refusal is None:
                await self.app(scope, _replay(body, receive), noting_status)
            else:
                await self._refuse(scope, noting_status, *refusal)
        finally:
            if self.log_requests:
                query = scope.get("query_string", b"").decode("latin-1")
                target = scope.get("path", "") + (f"?{query}" if query else "")
                logger.info(
                    "%s %s -> %d (%.0f ms)",
                    printable(scope.get("method", "")),
                    printable(target),
                    status[0],
                    (time.monotonic() - started) * 1000,
                )

    def _refusal(self, scope: Scope) -> tuple[int, str, str] | None:
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        host = headers.get("host", "")
        if not self.allow_remote and not is_loopback(host_name(host)):
            return (
                400,
                (
                    f"Host {printable(host, 80)!r} is not a loopback name: this server answers only "
                    "localhost, 127.0.0.1 or [::1] (it was not started with --allow-remote)"
                ),
                "Host",
            )
        method = scope.get("method", "GET")
        if method in SAFE_METHODS:
            return None
        origin = headers.get("origin")
        if origin is not None and not self._same_site(origin, host):
            return 403, f"{method} from a page of another site ({printable(origin, 80)}) is refused", "Origin"
        if headers.get("sec-fetch-site") == "cross-site":
            return 403, f"{method} from a page of another site is refused", "Sec-Fetch-Site"
        length = headers.get("content-length")
        if length is not None and not length.strip().isdigit():
            return 400, f"Content-Length {printable(length, 40)!r} is not a number", "Content-Length"
        has_body = (length is not None and int(length) > 0) or "transfer-encoding" in headers
        content_type = headers.get("content-type")
        if (content_type is not None or has_body) and not _is_json(content_type or ""):
            shown = printable(content_type, 80) if content_type else "none"
            return (
                415,
                f"send the body as JSON, with Content-Type: application/json (not {shown})",
                "Content-Type",
            )
        if length is not None and int(length) > self.max_body_bytes:
            return 413, f"the request body is larger than {self.max_body_bytes} bytes", "body"
        return None

    def _same_site(self, origin: str, host: str) -> bool:
        authority = origin.split("://", 1)[-1]
        if authority.strip().lower() == host.strip().lower():
            return True
        return not self.allow_remote and is_loopback(host_name(authority))

    async def _read_body(self, receive: Receive) -> tuple[bytes, tuple[int, str, str] | None]:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return b"", (400, "the request ended before its body", "body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return b"", (413, f"the request body is larger than {self.max_body_bytes} bytes", "body")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), None

    async def _refuse(self, scope: Scope, send: Send, status: int, message: str, field: str) -> None:
        if wants_page(scope, self.pages):
            response: Response = Response(error_page(status, message), status, media_type="text/html")
        else:
            response = error_response(status, message, field)
        if status == 413:
            response.headers["Connection"] = "close"  # the rest of the body is never read

        async def nothing() -> Message:
            return {"type": "http.disconnect"}

        await response(scope, nothing, send)


def parse_json(raw: bytes, *, required_object: bool = False) -> Any:
    """A request body as strict JSON (None if empty): no NaN or Infinity, nested at most
    :data:`~monitoring.core.payloads.MAX_JSON_DEPTH` levels, an object if ``required_object``; else
    :class:`~monitoring.core.payloads.InvalidRequestError` (400) naming the body."""
    if not raw.strip():
        return None

    def refuse_constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    try:
        data = json.loads(raw, parse_constant=refuse_constant)
    except (ValueError, RecursionError) as error:
        reason = "it nests too deeply" if isinstance(error, RecursionError) else str(error)[:120]
        raise InvalidRequestError(f"the request body is not valid JSON ({reason})", field="body") from None
    if json_depth(data) > MAX_JSON_DEPTH:
        raise InvalidRequestError(f"the request body nests deeper than {MAX_JSON_DEPTH} levels", field="body")
    if required_object and not isinstance(data, dict):
        raise InvalidRequestError(
            f"the request body must be a JSON object, not {json_type(data)}", field="body"
        )
    return data


async def json_body(request: Request, *, required_object: bool = False) -> Any:
    """The request's body through :func:`parse_json` (already read and capped by :class:`EdgeGuard`)."""
    return parse_json(await request.body(), required_object=required_object)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the body already read, then whatever the client sends next."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def edge_app(
    title: str,
    *,
    allow_remote: bool = False,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    log_requests: bool = False,
    pages: bool = False,
    **options: Any,
) -> FastAPI:
    """A FastAPI app behind :class:`EdgeGuard`, with the error handlers and :class:`SafeJSONResponse`
    (``pages``: it serves HTML pages to browsers, which then get errors as pages too)."""
    app = FastAPI(
        title=title,
        default_response_class=SafeJSONResponse,
        responses=ERROR_RESPONSES,
        **{"version": "1.0", **options},
    )
    install_error_handlers(app, pages=pages)
    app.add_middleware(
        EdgeGuard,
        allow_remote=allow_remote,
        max_body_bytes=max_body_bytes,
        log_requests=log_requests,
        pages=pages,
    )
    return app
