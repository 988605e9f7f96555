"""The Durable Functions sample's HTTP API over a :class:`~monitoring.client.monitors.MonitorClient`.

Routes (as ``func start`` serves them for the official sample, on http://localhost:7071)::

    POST   /api/start_monitoring_job                                         start a monitor (202)
    GET    /api/job_status/{jobId}                                           the job's status, now
    GET    /runtime/webhooks/durabletask/instances/{instanceId}              status (202 active, 200 done)
    POST   /runtime/webhooks/durabletask/instances/{instanceId}/raiseEvent/{eventName}
    POST   /runtime/webhooks/durabletask/instances/{instanceId}/terminate?reason=...
    DELETE /runtime/webhooks/durabletask/instances/{instanceId}              purge a finished instance

Errors are JSON ``{"error": "..."}``: 400 bad request, 404 unknown id, 409 purge of an active instance,
410 event or terminate for a finished one, 503 backend unreachable. The OpenAPI schema is at
``/openapi.json`` and ``/docs``.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any
from urllib.parse import quote

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from monitoring.client.errors import (
    InstanceFinishedError,
    InstanceNotFinishedError,
    UnknownInstanceError,
    UnknownJobError,
)
from monitoring.client.monitors import MonitorClient
from monitoring.core.models import MAX_JOB_ID_LENGTH, MonitorRequest
from monitoring.core.payloads import InvalidRequestError

logger = logging.getLogger(__name__)
INSTANCES_PATH = "/runtime/webhooks/durabletask/instances"
MAX_BODY_BYTES = 64 * 1024


class ErrorBody(BaseModel):
    error: str


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


START_BODY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "job_id": {"type": "string", "maxLength": MAX_JOB_ID_LENGTH, "description": "default job-<uuid>"},
        "polling_interval_seconds": {"type": "number", "exclusiveMinimum": 0, "default": 5},
        "timeout_seconds": {"type": "number", "exclusiveMinimum": 0, "default": 30},
        "job_duration_seconds": {"type": "number", "minimum": 0, "default": 12},
        "job_outcome": {"type": "string", "enum": ["Completed", "Failed"], "default": "Completed"},
    },
}

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "bad request"},
    404: {"model": ErrorBody, "description": "no such instance"},
}


def _error(status_code: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status_code)


async def _json_body(request: Request, *, required_object: bool) -> Any:
    """The request body as JSON (None if empty); a body that is not JSON is a 400."""
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidRequestError(f"the request body is larger than {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        return None
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidRequestError(f"the request body is not valid JSON ({error})") from None
    if required_object and not isinstance(payload, dict):
        raise InvalidRequestError(f"the request body must be a JSON object, not {type(payload).__name__}")
    return payload


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


def install_error_handlers(app: FastAPI) -> None:
    """Turn the package's errors (and FastAPI's own) into JSON ``{"error": ...}`` with the right status."""

    @app.exception_handler(InvalidRequestError)
    async def invalid_request(request: Request, error: InvalidRequestError) -> JSONResponse:
        return _error(400, str(error))

    @app.exception_handler(UnknownInstanceError)
    async def unknown_instance(request: Request, error: UnknownInstanceError) -> JSONResponse:
        return _error(404, str(error))

    @app.exception_handler(UnknownJobError)
    async def unknown_job(request: Request, error: UnknownJobError) -> JSONResponse:
        return _error(404, str(error))

    @app.exception_handler(InstanceFinishedError)
    async def finished(request: Request, error: InstanceFinishedError) -> JSONResponse:
        return _error(410, str(error))

    @app.exception_handler(InstanceNotFinishedError)
    async def not_finished(request: Request, error: InstanceNotFinishedError) -> JSONResponse:
        return _error(409, str(error))

    @app.exception_handler(grpc.RpcError)
    async def backend_error(request: Request, error: grpc.RpcError) -> JSONResponse:
        code = error.code()  # type: ignore[attr-defined]
        details = error.details()  # type: ignore[attr-defined]
        if code == grpc.StatusCode.NOT_FOUND:
            return _error(404, details)
        return _error(503, f"the scheduler said {code.name}: {details}")

    @app.exception_handler(RequestValidationError)
    async def bad_parameters(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}"
            for problem in error.errors()
        )
        return _error(400, problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"error": str(error.detail)}, status_code=error.status_code, headers=error.headers
        )


def create_app(monitors: MonitorClient, *, log_requests: bool = False) -> FastAPI:
    """The HTTP API app, serving the task hub ``monitors`` talks to.

    With ``log_requests``, each request is logged (method, path, status) on the ``monitoring.http`` logger.
    """
    app = FastAPI(
        title="Durable monitoring HTTP API",
        description="The Durable Functions monitoring sample's routes, served over the Durable Task SDK.",
        version="1.0",
    )
    install_error_handlers(app)
    if log_requests:

        @app.middleware("http")
        async def log_request(request: Request, call_next: Any) -> Response:
            response = await call_next(request)
            path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            logger.info("%s %s -> %d", request.method, path, response.status_code)
            return response

    @app.post(
        "/api/start_monitoring_job",
        status_code=202,
        response_model=ManagementUrls,
        responses=ERRORS,
        openapi_extra={
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": START_BODY_SCHEMA}},
            }
        },
        summary="Start monitoring a job",
    )
    async def start_monitoring_job(request: Request) -> JSONResponse:
        payload = await _json_body(request, required_object=True)
        monitor_request = MonitorRequest.from_payload(payload, default_job_id=f"job-{uuid.uuid4()}")
        instance_id = await run_in_threadpool(monitors.start, monitor_request)
        urls = management_urls(str(request.base_url), instance_id)
        return JSONResponse(urls.model_dump(), status_code=202, headers={"Location": urls.statusQueryGetUri})

    @app.get(
        "/api/job_status/{jobId}",
        response_model=JobStatusBody,
        responses=ERRORS,
        summary="The job's status now, as its newest monitor would check it",
    )
    def job_status(jobId: str) -> JobStatusBody:
        report, monitor = monitors.job_status(jobId)
        return JobStatusBody(
            **report.to_payload(), instanceId=monitor.instance_id, monitorRuntimeStatus=monitor.runtime_status
        )

    @app.get(
        f"{INSTANCES_PATH}/{{instanceId}}",
        response_model=InstanceStatusBody,
        responses={**ERRORS, 202: {"model": InstanceStatusBody, "description": "still active"}},
        summary="Instance status (202 while active, 200 once finished)",
    )
    def instance_status(instanceId: str, request: Request) -> JSONResponse:
        instance = monitors.details(instanceId)
        if instance.is_terminal:
            return JSONResponse(instance.to_payload(), status_code=200)
        location = management_urls(str(request.base_url), instanceId).statusQueryGetUri
        return JSONResponse(instance.to_payload(), status_code=202, headers={"Location": location})

    @app.post(
        f"{INSTANCES_PATH}/{{instanceId}}/raiseEvent/{{eventName}}",
        status_code=202,
        responses={**ERRORS, 410: {"model": ErrorBody, "description": "the instance has finished"}},
        openapi_extra={"requestBody": {"required": False, "content": {"application/json": {"schema": {}}}}},
        summary="Send an event (any JSON body) to an active instance",
    )
    async def raise_event(instanceId: str, eventName: str, request: Request) -> Response:
        data = await _json_body(request, required_object=False)
        await run_in_threadpool(monitors.raise_event, instanceId, eventName, data)
        return Response(status_code=202)

    @app.post(
        f"{INSTANCES_PATH}/{{instanceId}}/terminate",
        status_code=202,
        responses={**ERRORS, 410: {"model": ErrorBody, "description": "the instance has finished"}},
        summary="Terminate an active instance; the reason becomes its output",
    )
    def terminate(instanceId: str, reason: str | None = None) -> Response:
        monitors.terminate(instanceId, reason)
        return Response(status_code=202)

    @app.delete(
        f"{INSTANCES_PATH}/{{instanceId}}",
        response_model=PurgeBody,
        responses={**ERRORS, 409: {"model": ErrorBody, "description": "the instance is still active"}},
        summary="Purge a finished instance and its history",
    )
    def purge(instanceId: str) -> PurgeBody:
        return PurgeBody(instancesDeleted=monitors.purge(instanceId))

    return app
