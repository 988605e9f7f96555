"""The Durable Functions sample's HTTP API over a :class:`~monitoring.client.monitors.MonitorClient`.

Routes (as ``func start`` serves them for the official sample, on http://localhost:7071)::

    POST   /api/start_monitoring_job                                         start a monitor (202)
    POST   /api/start_monitoring_batch                                       start a batch monitor (202)
    GET    /api/job_status/{jobId}                                           the job's status, now
    GET    /runtime/webhooks/durabletask/instances/{instanceId}              status (202 active, 200 done)
    POST   /runtime/webhooks/durabletask/instances/{instanceId}/raiseEvent/{eventName}
    POST   /runtime/webhooks/durabletask/instances/{instanceId}/terminate?reason=...
    DELETE /runtime/webhooks/durabletask/instances/{instanceId}              purge a finished instance

The start body is :class:`~monitoring.core.models.MonitorRequest` itself: FastAPI validates it and draws
the OpenAPI schema (``/openapi.json``, ``/docs``) from it. Errors are JSON ``{"error": "...", "field":
...}``: 400 bad input (naming the field), 403 cross-site, 404 unknown id, 409 purge of an active instance,
410 event or terminate for a finished one, 413 body over 1 MB, 415 body not JSON, 429 scheduler busy, 503
backend unreachable (see :mod:`monitoring.web.edge`, which checks every request first).
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Body, FastAPI, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from monitoring.client.monitors import MAX_ID_LENGTH, MAX_REASON_LENGTH, MonitorClient
from monitoring.core.batch import DEFAULT_MAX_CONCURRENT, MAX_BATCH_JOBS, MAX_CONCURRENT, BatchRequest
from monitoring.core.jobs import job_source_is_local_only
from monitoring.core.models import MAX_JOB_ID_LENGTH, MonitorRequest, new_job_id
from monitoring.core.payloads import InvalidRequestError
from monitoring.web.edge import (
    DEFAULT_MAX_BODY_BYTES,
    ErrorBody,
    SafeJSONResponse,
    edge_app,
    is_loopback,
    json_body,
)

INSTANCES_PATH = "/runtime/webhooks/durabletask/instances"

# The batch body's schema, for the OpenAPI document; the route reads it with BatchRequest.from_body.
BATCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["jobs"],
    "additionalProperties": False,
    "properties": {
        "jobs": {
            "type": "array",
            "minItems": 1,
            # Not maxItems: a body past 1 MB is refused (413) before it is read as a batch.
            "description": f"at most {MAX_BATCH_JOBS:,} jobs, and the body at most 1 MB",
            "items": {"$ref": "#/components/schemas/MonitorRequest"},
        },
        "max_concurrent": {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_CONCURRENT,
            "default": DEFAULT_MAX_CONCURRENT,
        },
    },
}

InstanceId = Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH, description="the instance id")]


class ManagementUrls(BaseModel):
    """What ``POST /api/start_monitoring_job`` answers: the instance id and where to manage it."""

    id: str
    statusQueryGetUri: str
    sendEventPostUri: str
    terminatePostUri: str
    purgeHistoryDeleteUri: str


class InstanceStatusBody(BaseModel):
    """An instance as the Durable Functions status endpoint shows it."""

    name: str
    instanceId: str
    runtimeStatus: str = Field(description="Pending, Running, Completed, Failed, Terminated, ...")
    input: Any = None
    customStatus: Any = None
    output: Any = None
    createdTime: str
    lastUpdatedTime: str


class JobStatusBody(BaseModel):
    """The simulated job's status right now, as its newest monitor would see it."""

    job_id: str
    status: str
    checked_at: str
    instanceId: str = Field(description="the monitor whose input and start time were used")
    monitorRuntimeStatus: str


class PurgeBody(BaseModel):
    instancesDeleted: int


def _errors(*extra: tuple[int, str]) -> dict[int | str, dict[str, Any]]:
    """Error answers a route declares beside the app's own (:data:`~monitoring.web.edge.ERROR_RESPONSES`)."""
    return {code: {"model": ErrorBody, "description": text} for code, text in extra}


def base_url(request: Request) -> str:
    """Where this server is, for the URLs it hands out: the Host the client used when that is a loopback
    name, else the address the connection arrived at (a foreign Host is never echoed)."""
    if is_loopback(request.url.hostname or ""):
        return str(request.base_url)
    host, port = request.scope.get("server") or ("127.0.0.1", 80)
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


def management_urls(base_url: str, instance_id: str) -> ManagementUrls:
    """The Durable Functions management URLs of one instance, under ``base_url``."""
    status = f"{base_url.rstrip('/')}{INSTANCES_PATH}/{quote(instance_id, safe='')}"
    return ManagementUrls(
        id=instance_id,
        statusQueryGetUri=status,
        sendEventPostUri=f"{status}/raiseEvent/{{eventName}}",
        terminatePostUri=f"{status}/terminate?reason={{text}}",
        purgeHistoryDeleteUri=status,
    )


def startable_over_http(request: MonitorRequest) -> MonitorRequest:
    """``request``, unless its job source runs code the request names (start those from Python or the CLI).

    The HTTP API's start route and the dashboard's start form both ask this."""
    if job_source_is_local_only(request.job_source):
        raise InvalidRequestError(
            f"job_source {request.job_source!r} runs code the request names: start it from "
            "Python or the command line, not over HTTP",
            "job_source",
        )
    return request


def create_app(
    monitors: MonitorClient,
    *,
    log_requests: bool = False,
    allow_remote: bool = False,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    """The HTTP API app, serving the task hub ``monitors`` talks to.

    With ``log_requests``, each request is logged (method, path, status) on the ``monitoring.http`` logger;
    ``allow_remote`` accepts any ``Host`` header (the server binds a non-loopback address);
    ``max_body_bytes`` caps request bodies (413 past it).
    """
    app = edge_app(
        "Durable monitoring HTTP API",
        description="The Durable Functions monitoring sample's routes, served over the Durable Task SDK.",
        allow_remote=allow_remote,
        max_body_bytes=max_body_bytes,
        log_requests=log_requests,
    )

    @app.post(
        "/api/start_monitoring_job",
        status_code=202,
        response_model=ManagementUrls,
        summary="Start monitoring a job (every field optional; an empty body takes the defaults)",
    )
    async def start_monitoring_job(
        request: Request, body: Annotated[MonitorRequest | None, Body()] = None
    ) -> Response:
        monitor_request = startable_over_http(body if body is not None else MonitorRequest())
        instance_id = await run_in_threadpool(monitors.start, monitor_request)
        urls = management_urls(base_url(request), instance_id)
        return SafeJSONResponse(
            urls.model_dump(), status_code=202, headers={"Location": urls.statusQueryGetUri}
        )

    @app.post(
        "/api/start_monitoring_batch",
        status_code=202,
        response_model=ManagementUrls,
        responses=_errors((400, "a job that cannot run (named by its index): nothing is scheduled")),
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/json": {"schema": BATCH_SCHEMA}}}
        },
        summary="Start monitoring many jobs: one batch, each job a monitor of its own (a start body each)",
    )
    async def start_monitoring_batch(request: Request) -> Response:
        batch = BatchRequest.from_body(await json_body(request), default_job_id=lambda _: new_job_id())
        for index, job in enumerate(batch.jobs):
            try:
                startable_over_http(job)
            except InvalidRequestError as error:
                raise InvalidRequestError(f"jobs[{index}]: {error}", "jobs") from None
        instance_id = await run_in_threadpool(monitors.start_batch, batch)
        urls = management_urls(base_url(request), instance_id)
        return SafeJSONResponse(
            urls.model_dump(), status_code=202, headers={"Location": urls.statusQueryGetUri}
        )

    @app.get(
        "/api/job_status/{jobId}",
        response_model=JobStatusBody,
        responses=_errors((404, "no monitor of this job"), (502, "the job's status source could not answer")),
        summary="The job's status now, as its newest monitor would check it",
    )
    def job_status(jobId: Annotated[str, Path(min_length=1, max_length=MAX_JOB_ID_LENGTH)]) -> JobStatusBody:
        report, monitor = monitors.job_status(jobId)
        return JobStatusBody(
            **report.to_payload(), instanceId=monitor.instance_id, monitorRuntimeStatus=monitor.runtime_status
        )

    @app.get(
        f"{INSTANCES_PATH}/{{instanceId}}",
        response_model=InstanceStatusBody,
        responses={202: {"model": InstanceStatusBody, "description": "still active"}},
        summary="Instance status (202 while active, 200 once finished)",
    )
    def instance_status(instanceId: InstanceId, request: Request) -> Response:
        instance = monitors.details(instanceId)
        if instance.is_terminal:
            return SafeJSONResponse(instance.to_payload(), status_code=200)
        location = management_urls(base_url(request), instanceId).statusQueryGetUri
        return SafeJSONResponse(instance.to_payload(), status_code=202, headers={"Location": location})

    @app.post(
        f"{INSTANCES_PATH}/{{instanceId}}/raiseEvent/{{eventName}}",
        status_code=202,
        response_class=Response,
        responses={**_errors((410, "the instance has finished")), 202: {"description": "accepted"}},
        openapi_extra={"requestBody": {"required": False, "content": {"application/json": {"schema": {}}}}},
        summary="Send an event (any JSON body, up to 100 levels deep) to an active instance",
    )
    async def raise_event(
        instanceId: InstanceId,
        eventName: Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH)],
        request: Request,
    ) -> Response:
        data = await json_body(request)
        await run_in_threadpool(monitors.raise_event, instanceId, eventName, data)
        return Response(status_code=202)

    @app.post(
        f"{INSTANCES_PATH}/{{instanceId}}/terminate",
        status_code=202,
        response_class=Response,
        responses={**_errors((410, "the instance has finished")), 202: {"description": "accepted"}},
        summary="Terminate an active instance; the reason becomes its output",
    )
    def terminate(
        instanceId: InstanceId, reason: Annotated[str | None, Query(max_length=MAX_REASON_LENGTH)] = None
    ) -> Response:
        monitors.terminate(instanceId, reason)
        return Response(status_code=202)

    @app.delete(
        f"{INSTANCES_PATH}/{{instanceId}}",
        response_model=PurgeBody,
        responses=_errors((409, "the instance is still active")),
        summary="Purge a finished instance and its history",
    )
    def purge(instanceId: InstanceId) -> PurgeBody:
        return PurgeBody(instancesDeleted=monitors.purge(instanceId))

    return app
