"""A monitor's generations: what one hands the next through ``continue_as_new``, and how an
orchestration's input says which generation it is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from monitoring.core.models import MonitorRequest
from monitoring.core.payloads import Payload
from monitoring.core.schedule import JobStatus


@dataclass(frozen=True)
class MonitorProgress(Payload):
    """What one generation hands the next through ``continue_as_new``: the run so far."""

    started_at: str
    checks_done: int
    generation: int
    last_status: JobStatus = "Pending"
    last_check_time: str | None = None
    last_error: str | None = None
    failed_attempts: int = 0


CONTINUATION_KEYS = frozenset({"request", "progress"})


def continuation_payload(request: MonitorRequest, progress: MonitorProgress) -> dict[str, Any]:
    """The input of the next generation of a monitor."""
    return {"request": request.to_payload(), "progress": progress.to_payload()}


def parse_monitor_input(
    payload: Any, *, default_job_id: str
) -> tuple[MonitorRequest, MonitorProgress | None]:
    """A first generation's input (a :class:`MonitorRequest`) or a later one's (request and progress)."""
    if isinstance(payload, dict) and set(payload) == CONTINUATION_KEYS:
        request = MonitorRequest.from_payload(payload["request"], default_job_id=default_job_id)
        return request, MonitorProgress.from_payload(payload["progress"])
    return MonitorRequest.from_payload(payload, default_job_id=default_job_id), None
