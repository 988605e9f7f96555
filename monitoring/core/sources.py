"""Job sources for real systems: ``http`` (a status URL) and ``callable`` (a Python function).

Both register through :func:`monitoring.core.jobs.register_job_source`, the door a user's own source uses
too. Both turn the job's own word for its state into the pattern's three, the same way
(:func:`map_status`): case-insensitively, ``completed``, ``succeeded``, ``success``, ``done`` are
``Completed``; ``failed``, ``error``, ``cancelled`` (or ``canceled``) are ``Failed``; anything else is
``Running``. A request's ``mapping`` is consulted first (``{"green": "Completed"}``).

``http`` options: ``url`` (http or https only), ``field`` (default ``status``; a dotted path such as
``job.state`` reads nested objects), ``mapping``, ``headers`` (sent, never shown: not in custom status,
outputs, errors or logs), ``timeout_seconds`` (default 10). A header value may name environment
variables of the worker, ``{"Authorization": "Bearer ${CI_TOKEN}"}``: the secret then never enters the
monitor's input (which the task hub stores and the API and dashboard show), only its name does. A
timeout, an answer that is not 2xx or not JSON, or a missing field raise :class:`JobSourceError`: a failed
check, retried by the monitor's retry policy, with the reason in ``last_error``. Errors name the URL
without its query (which may hold a token).

``callable`` options: ``function`` (``package.module:function``, ``__main__:f`` in a notebook) and
``mapping``. The worker imports it and calls it with the job id; it returns the job's word for its state.
It runs code the request names, so it is ``local_only``: the HTTP API does not accept it.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from monitoring.core.jobs import JobCheckRequest, JobStatusReport, register_job_source, validate_job_source
from monitoring.core.payloads import to_iso
from monitoring.core.schedule import JobStatus

DEFAULT_MAPPING: dict[str, JobStatus] = {
    **dict.fromkeys(("completed", "succeeded", "success", "done"), "Completed"),
    **dict.fromkeys(("failed", "error", "cancelled", "canceled"), "Failed"),
}
STATUSES = ("Running", "Completed", "Failed")
DEFAULT_FIELD = "status"
DEFAULT_HTTP_TIMEOUT_SECONDS = 10.0
MAX_HTTP_TIMEOUT_SECONDS = 300.0
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def hidden_header_value(value: object) -> str:
    """What a person may see of an http header's value: nothing of it, only the ``${NAME}`` it refers to."""
    names = _VARIABLE.findall(value) if isinstance(value, str) else []
    return "(hidden" + "".join(f"; uses ${{{name}}}" for name in names) + ")"


_FUNCTION = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


class JobSourceError(RuntimeError):
    """The job's status could not be read this time (a failed check: the monitor retries it)."""


def map_status(value: Any, mapping: Mapping[str, str] | None = None) -> JobStatus:
    """The pattern's status for the job's own word ``value`` (see the module docstring)."""
    word = str(value).lower().strip()  # true/false for JSON booleans, as JSON writes them
    if isinstance(value, bool):
        word = "true" if value else "false"
    for table in (mapping or {}, DEFAULT_MAPPING):
        if word in table:
            return table[word]  # type: ignore[return-value]
    return "Running"


def _mapping(options: dict[str, Any]) -> dict[str, JobStatus] | None:
    given = options.pop("mapping", None)
    if given is None:
        return None
    if not isinstance(given, dict) or not given:
        raise ValueError('mapping must be a JSON object such as {"green": "Completed"}')
    mapping: dict[str, JobStatus] = {}
    for word, status in given.items():
        if status not in STATUSES:
            raise ValueError(f"mapping[{word!r}] must be one of {', '.join(STATUSES)}, not {status!r}")
        mapping[str(word).lower().strip()] = status
    return mapping


def _no_more(source: str, options: dict[str, Any], allowed: str) -> None:
    if options:
        raise ValueError(f"unknown {source} option(s) {', '.join(sorted(options))}; allowed: {allowed}")


def _field_value(document: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(document, dict) or part not in document:
            raise KeyError(path)
        document = document[part]
    return document


def url_for_messages(url: str) -> str:
    """``url`` without user info, query or fragment: safe to show in ``last_error``."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


@dataclass(frozen=True)
class HttpOptions:
    url: str
    field: str = DEFAULT_FIELD
    mapping: dict[str, JobStatus] | None = None
    headers: dict[str, str] | None = None
    timeout_seconds: float = DEFAULT_HTTP_TIMEOUT_SECONDS

    @classmethod
    def parse(cls, given: dict[str, Any]) -> HttpOptions:
        options = dict(given)
        url = options.pop("url", None)
        if not isinstance(url, str) or not url.strip():
            raise ValueError("the http job source needs a url (the job's status URL)")
        try:
            parts = urlsplit(url.strip())
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError as error:
            raise ValueError(f"url is not a valid URL: {error}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"url must be an http:// or https:// URL with a host, not {url_for_messages(url)!r}"
            )
        field = options.pop("field", None) or DEFAULT_FIELD
        if not isinstance(field, str) or not all(part.strip() for part in field.split(".")):
            raise ValueError(
                f"field must be a JSON field name or dotted path such as job.state, not {field!r}"
            )
        headers = options.pop("headers", None)
        if headers is not None:
            check_headers(headers)
        timeout = options.pop("timeout_seconds", DEFAULT_HTTP_TIMEOUT_SECONDS)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise ValueError(f"timeout_seconds must be a number of seconds, not {timeout!r}")
        if not 0 < timeout <= MAX_HTTP_TIMEOUT_SECONDS:
            raise ValueError(f"timeout_seconds must be above 0 and at most {MAX_HTTP_TIMEOUT_SECONDS:g}")
        mapping = _mapping(options)
        _no_more("http", options, "url, field, mapping, headers, timeout_seconds")
        return cls(url.strip(), field, mapping, headers or None, float(timeout))

    def to_payload(self) -> dict[str, Any]:
        payload = {"url": self.url, "field": self.field, "mapping": self.mapping, "headers": self.headers}
        payload["timeout_seconds"] = self.timeout_seconds
        return {key: value for key, value in payload.items() if value is not None}


Secrets = Callable[[str], "str | None"]


def no_secrets(name: str) -> str | None:
    return None


def quiet_httpx() -> None:
    """httpx logs every request's full URL at INFO, and a URL's query may hold a token: WARNING at least."""
    logging.getLogger("httpx").setLevel(max(logging.getLogger("httpx").level, logging.WARNING))


def check_headers(headers: Any) -> None:
    """Raise ValueError unless ``headers`` is a JSON object of valid HTTP headers (values never shown)."""
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise ValueError("headers must be a JSON object of strings")
    for name, value in headers.items():
        if not _HEADER_NAME.match(name) or "\n" in value or "\r" in value:
            raise ValueError(f"header {name!r} is not a valid HTTP header (its value is not shown)")


def with_secrets(header: str, value: str, secrets: Secrets) -> str:
    """``value`` with each ``${NAME}`` replaced by the worker's secret NAME."""

    def substitute(found: re.Match[str]) -> str:
        secret = secrets(found.group(1))
        if secret is None:
            raise JobSourceError(f"header {header}: the worker has no environment variable {found.group(1)}")
        return secret

    return _VARIABLE.sub(substitute, value)


class HttpJobSource:
    """GET the job's status URL and read one JSON field (see the module docstring).

    ``secrets`` looks up the ``${NAME}`` a header refers to; the worker passes
    :func:`monitoring.settings.secret` (the environment is read there, not in the pattern's core).
    """

    reads_simulated_job = False  # a real job: no simulated length or outcome

    def __init__(self, secrets: Secrets = no_secrets) -> None:
        self.secrets = secrets

    def validate_options(self, options: dict[str, Any]) -> dict[str, Any]:
        return HttpOptions.parse(options).to_payload()

    def check(self, request: JobCheckRequest, now: datetime) -> JobStatusReport:
        import httpx  # only workers that check an http source pay for the import

        quiet_httpx()

        options = HttpOptions.parse(request.source_options or {})
        where = url_for_messages(options.url)
        given = (options.headers or {}).items()
        headers = {name: with_secrets(name, value, self.secrets) for name, value in given}
        try:
            response = httpx.get(options.url, headers=headers, timeout=options.timeout_seconds)
        except httpx.TimeoutException:
            raise JobSourceError(f"GET {where} timed out after {options.timeout_seconds:g} s") from None
        except httpx.HTTPError as error:
            raise JobSourceError(f"GET {where} failed: {type(error).__name__}: {error}") from None
        if not response.is_success:
            raise JobSourceError(f"GET {where} answered {response.status_code} {response.reason_phrase}")
        try:
            document = response.json()
        except ValueError:
            kind = response.headers.get("content-type", "no content type")
            raise JobSourceError(f"GET {where} answered {kind}, not JSON") from None
        try:
            value = _field_value(document, options.field)
        except KeyError:
            raise JobSourceError(f"GET {where} answered JSON with no field {options.field!r}") from None
        status = map_status(value, options.mapping)
        answered = datetime.now(timezone.utc)  # the job's answer is as of now, not of when the GET began
        return JobStatusReport(job_id=request.job_id, status=status, checked_at=to_iso(answered))


def _function_options(given: dict[str, Any]) -> tuple[str, dict[str, JobStatus] | None]:
    options = dict(given)
    function = options.pop("function", None)
    if not isinstance(function, str) or not _FUNCTION.match(function):
        raise ValueError(f"function must be 'package.module:function', not {function!r}")
    mapping = _mapping(options)
    _no_more("callable", options, "function, mapping")
    return function, mapping


class CallableJobSource:
    """Call ``package.module:function`` with the job id; it returns the job's word for its state."""

    reads_simulated_job = False  # a real job: no simulated length or outcome

    def validate_options(self, options: dict[str, Any]) -> dict[str, Any]:
        function, mapping = _function_options(options)
        return {"function": function, **({"mapping": mapping} if mapping else {})}

    def check(self, request: JobCheckRequest, now: datetime) -> JobStatusReport:
        name, mapping = _function_options(request.source_options or {})
        module_name, _, attributes = name.partition(":")
        try:
            target: Any = importlib.import_module(module_name)
            for attribute in attributes.split("."):
                target = getattr(target, attribute)
        except (ImportError, AttributeError) as error:
            raise JobSourceError(f"cannot load {name}: {type(error).__name__}: {error}") from None
        if not callable(target):
            raise JobSourceError(f"{name} is not callable")
        status = map_status(target(request.job_id), mapping)
        return JobStatusReport(job_id=request.job_id, status=status, checked_at=to_iso(now))


register_job_source("http", HttpJobSource())
register_job_source("callable", CallableJobSource(), local_only=True)


def resolve_job_source(
    job_source: Any, options: Any, status_url: Any = None, status_field: Any = None
) -> tuple[str, dict[str, Any] | None]:
    """A request's job source and its validated options, from its fields as given.

    ``status_url`` (and ``status_field``) are shorthand for ``job_source: "http"`` with those options, so a
    request carries its source once: as ``job_source`` and ``job_source_options``. Raises ``ValueError``.
    """
    if status_url is None and status_field is None:
        return job_source, validate_job_source(job_source, options)
    if status_url is None:
        raise ValueError("status_field names a field of the status URL's answer: give status_url too")
    if job_source not in ("simulated", "http"):
        raise ValueError(f"status_url is for the http job source, not {job_source!r}")
    if isinstance(options, dict) and {"url", "field"} & set(options):
        raise ValueError("give the URL and field once: status_url/status_field or job_source_options")
    given = {**(options if isinstance(options, dict) else {}), "url": status_url}
    if status_field is not None:
        given["field"] = status_field
    return "http", validate_job_source("http", given)
