"""Telling someone when a monitor (or a batch) ends: the result POSTed to a ``notify_url``.

When a monitor with a ``notify_url`` ends, its orchestrator calls the ``notify_outcome`` activity, which
POSTs the result JSON there with an ``Idempotency-Key`` header (the instance id and the generation), so a
receiver can drop repeats: delivery is at least once. A failed POST (no answer, or not a 2xx) is retried
by the activity's ``RetryPolicy`` with backoff; an endpoint that stays down does not change the monitor's
result, whose output then says ``"notified": false`` with the last error. Headers may name the worker's
environment variables as ``${NAME}``, as the ``http`` job source's do; only http(s) URLs are taken, and a
URL's query (which may hold a token) is never shown in an error or a log.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from durabletask import task

from monitoring.core.payloads import InvalidRequestError
from monitoring.core.sources import (
    Secrets,
    check_headers,
    no_secrets,
    quiet_httpx,
    url_for_messages,
    with_secrets,
)

NOTIFY_ACTIVITY_NAME = "notify_outcome"
IDEMPOTENCY_HEADER = "Idempotency-Key"
NOTIFY_TIMEOUT_SECONDS = 10.0
NOTIFY_RETRY = task.RetryPolicy(
    first_retry_interval=timedelta(seconds=1), max_number_of_attempts=6, backoff_coefficient=2.0
)


class NotifyError(RuntimeError):
    """The POST did not reach its receiver this time (the activity's retry policy tries again)."""


def check_notify(url: str | None, headers: Mapping[str, Any] | None) -> None:
    """Raise :class:`InvalidRequestError` naming the field unless the notification can be sent."""
    if url is None:
        if headers is not None:
            raise InvalidRequestError("notify_headers needs a notify_url to send them to", "notify_headers")
        return
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as error:
        raise InvalidRequestError(f"notify_url is not a valid URL: {error}", "notify_url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        shown = url_for_messages(url)
        raise InvalidRequestError(
            f"notify_url must be an http:// or https:// URL with a host, not {shown!r}", "notify_url"
        )
    if headers is not None:
        try:
            check_headers(headers)
        except ValueError as error:
            raise InvalidRequestError(f"notify_headers: {error}", "notify_headers") from None


def notification(url: str, headers: Mapping[str, str] | None, key: str, body: Any) -> dict[str, Any]:
    """The activity's input."""
    return {"url": url, "headers": dict(headers or {}), "key": key, "body": body}


def notify(ctx: task.OrchestrationContext, url: str, headers: Any, key: str, body: Any) -> Generator:
    """Orchestrator steps: send the notification; what the result adds (``notified``, ``notify_error``)."""
    try:
        yield ctx.call_activity(
            NOTIFY_ACTIVITY_NAME, input=notification(url, headers, key, body), retry_policy=NOTIFY_RETRY
        )
    except task.TaskFailedError as error:
        return {"notified": False, "notify_error": error.details.message or "the notification failed"}
    return {"notified": True}


class Notifier:
    """The ``notify_outcome`` activity; ``secrets`` looks up the ``${NAME}`` a header refers to (the worker
    passes :func:`monitoring.settings.secret`)."""

    def __init__(self, secrets: Secrets = no_secrets) -> None:
        self.secrets = secrets

    def notify_outcome(self, ctx: task.ActivityContext, payload: dict[str, Any]) -> dict[str, Any]:
        """Activity: POST the body once; raise :class:`NotifyError` unless the receiver answered 2xx."""
        import httpx

        quiet_httpx()
        url, where = payload["url"], url_for_messages(payload["url"])
        given = payload["headers"].items()
        headers = {name: with_secrets(name, value, self.secrets) for name, value in given}
        headers[IDEMPOTENCY_HEADER] = payload["key"]
        try:
            answer = httpx.post(url, json=payload["body"], headers=headers, timeout=NOTIFY_TIMEOUT_SECONDS)
        except httpx.HTTPError as error:
            raise NotifyError(f"{where}: {type(error).__name__}") from None
        if not 200 <= answer.status_code < 300:
            raise NotifyError(f"{where} answered {answer.status_code}")
        return {"status_code": answer.status_code}


notify_outcome = Notifier().notify_outcome  # without secrets; the worker registers one with its environment
