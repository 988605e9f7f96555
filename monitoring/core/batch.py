"""Many jobs monitored at once: ``monitoring_batch_orchestrator`` and its request.

Each job is a sub-orchestration of ``monitoring_job_orchestrator``, so each child is exactly the single
monitor, with its own custom status, under the instance id ``<batch id>-job-<index>``. At most
``max_concurrent`` children run at once; the next job starts when one ends. The batch publishes one custom
status for the set (:func:`batch_status`) and returns, per job, the child's result, and counts by final
status. A child that fails does not stop the others. A ``cancel`` event is passed on to every child still
running (each ends ``Cancelled`` at once); jobs not started yet end ``Cancelled`` without a check.

The orchestration continues as new every :data:`CHILDREN_PER_GENERATION` children, so its history stays
bounded: it waits for the children it started to end, then carries the outcomes so far into the next
generation. Deterministic, like the single monitor: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

from durabletask import task

from monitoring.core.models import MonitorRequest
from monitoring.core.notify import check_notify, notify
from monitoring.core.orchestration import CANCEL_EVENT, ORCHESTRATOR_NAME
from monitoring.core.payloads import InvalidRequestError
from monitoring.core.validation import shown

BATCH_ORCHESTRATOR_NAME = "monitoring_batch_orchestrator"
MAX_BATCH_JOBS = 10_000
DEFAULT_MAX_CONCURRENT = 100
MAX_CONCURRENT = 1_000
STATUS_JOBS_LIMIT = 100  # past this many jobs, the custom status lists only the jobs not yet ended
CHILDREN_PER_GENERATION = 500
BATCH_FIELDS = ("jobs", "max_concurrent", "notify_url", "notify_headers")
STATES = ("pending", "running", "completed", "failed", "timed_out", "cancelled")
FINAL_STATE = {"Completed": "completed", "Failed": "failed", "Timeout": "timed_out", "Cancelled": "cancelled"}


@dataclass(frozen=True)
class BatchRequest:
    """The jobs of a batch, each a valid :class:`MonitorRequest`, and how many run at once."""

    jobs: tuple[MonitorRequest, ...]
    max_concurrent: int = DEFAULT_MAX_CONCURRENT
    notify_url: str | None = None  # the batch's output is POSTed here when it ends (monitoring.core.notify)
    notify_headers: dict[str, str] | None = None

    @classmethod
    def from_body(cls, body: Any, *, default_job_id: Any = None) -> BatchRequest:
        """Read ``{"jobs": [<start body>, ...], "max_concurrent": N}``; one bad job refuses the whole batch,
        with a message naming its index. ``default_job_id(index)`` names a job that has no ``job_id``."""
        if not isinstance(body, dict):
            raise InvalidRequestError(f"a batch must be a JSON object with a jobs list, not {shown(body)}")
        unknown = sorted(set(body) - set(BATCH_FIELDS))
        if unknown:
            allowed = ", ".join(BATCH_FIELDS)
            raise InvalidRequestError(f"unknown batch field {unknown[0]!r}: a batch has {allowed}")
        url, headers = body.get("notify_url"), body.get("notify_headers")
        if url is not None and not isinstance(url, str):
            raise InvalidRequestError(f"notify_url must be a URL, not {shown(url)}", "notify_url")
        check_notify(url, headers)
        jobs, limit = body.get("jobs"), body.get("max_concurrent", DEFAULT_MAX_CONCURRENT)
        if not isinstance(jobs, list) or not jobs:
            raise InvalidRequestError("jobs must be a non-empty list of monitor requests", "jobs")
        if len(jobs) > MAX_BATCH_JOBS:
            raise InvalidRequestError(
                f"a batch holds at most {MAX_BATCH_JOBS:,} jobs, not {len(jobs):,}: split it", "jobs"
            )
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_CONCURRENT:
            raise InvalidRequestError(
                f"max_concurrent must be a whole number from 1 to {MAX_CONCURRENT}, not {shown(limit)}",
                "max_concurrent",
            )
        requests = []
        for index, job in enumerate(jobs):
            default = default_job_id(index) if default_job_id is not None else f"job-{index}"
            if not isinstance(job, dict):
                raise InvalidRequestError(
                    f"jobs[{index}]: a job is a JSON object (a start body), not {shown(job)}", "jobs"
                )
            try:
                requests.append(MonitorRequest.from_payload(job, default_job_id=default))
            except InvalidRequestError as error:
                raise InvalidRequestError(f"jobs[{index}]: {error}", "jobs") from None
        return cls(tuple(requests), limit, url, dict(headers) if headers is not None else None)

    def to_payload(self) -> dict[str, Any]:
        payload = {"jobs": [job.to_payload() for job in self.jobs], "max_concurrent": self.max_concurrent}
        if self.notify_url is not None:
            payload["notify_url"] = self.notify_url
        if self.notify_headers is not None:
            payload["notify_headers"] = self.notify_headers
        return payload


def child_instance_id(batch_id: str, index: int) -> str:
    return f"{batch_id}-job-{index}"


def outcome_of(child: task.Task[Any]) -> dict[str, Any]:
    """What an ended child left: its result, or the failure of its orchestration, in the result's shape."""
    if child.is_failed:
        message = child.get_exception().details.message or "no message"
        return {
            "final_status": "Failed",
            "checks_performed": 0,
            "reason": f"its orchestration failed: {message}",
        }
    result = child.get_result()
    if not isinstance(result, dict) or result.get("final_status") not in FINAL_STATE:
        return {"final_status": "Failed", "checks_performed": 0, "reason": f"it returned {shown(result)}"}
    return result


def counts_by_state(total: int, outcomes: Sequence[dict[str, Any] | None], running: int) -> dict[str, int]:
    counts = dict.fromkeys(STATES, 0)
    for outcome in outcomes:
        if outcome is not None:
            counts[FINAL_STATE[outcome["final_status"]]] += 1
    counts["running"] = running
    counts["pending"] = total - running - sum(counts[FINAL_STATE[name]] for name in FINAL_STATE)
    return counts


def read_counts(status: Any) -> dict[str, int] | None:
    """The counts by state in a batch's custom status, read tolerantly (None if it holds none): a count
    that is not a whole number reads as 0."""
    counts = status.get("counts") if isinstance(status, dict) else None
    if not isinstance(counts, dict):
        return None
    return {state: _whole(counts.get(state)) for state in STATES}


def _whole(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def batch_status(
    batch_id: str,
    jobs: Sequence[MonitorRequest],
    outcomes: Sequence[dict[str, Any] | None],
    running: set[int],
) -> dict[str, Any]:
    """The batch's custom status: counts by state, checks of the ended jobs, and per job its state
    (every job up to :data:`STATUS_JOBS_LIMIT`, past that only the jobs not yet ended, at most that many)."""
    listed = (
        range(len(jobs))
        if len(jobs) <= STATUS_JOBS_LIMIT
        else [i for i, o in enumerate(outcomes) if o is None]
    )
    entries = []
    for index in list(listed)[:STATUS_JOBS_LIMIT]:
        outcome = outcomes[index]
        state = (
            FINAL_STATE[outcome["final_status"]] if outcome else "running" if index in running else "pending"
        )
        entries.append(
            {
                "index": index,
                "job_id": jobs[index].job_id,
                "instance_id": child_instance_id(batch_id, index),
                "state": state,
            }
        )
    checks = sum(int(outcome.get("checks_performed") or 0) for outcome in outcomes if outcome is not None)
    return {
        "batch": True,
        "jobs_total": len(jobs),
        "counts": counts_by_state(len(jobs), outcomes, len(running)),
        "checks_of_ended_jobs": checks,
        "jobs": entries,
    }


def batch_output(
    batch_id: str, jobs: Sequence[MonitorRequest], outcomes: Sequence[dict[str, Any] | None]
) -> dict[str, Any]:
    results = [
        {"index": index, "instance_id": child_instance_id(batch_id, index), **(outcome or {})}
        for index, outcome in enumerate(outcomes)
    ]
    counts = counts_by_state(len(jobs), outcomes, 0)
    return {
        "jobs": results,
        "counts": {state: counts[state] for state in STATES if state not in ("pending", "running")},
    }


NOT_STARTED = {
    "final_status": "Cancelled",
    "checks_performed": 0,
    "reason": "the batch was cancelled before it started",
}


def monitoring_batch_orchestrator(
    ctx: task.OrchestrationContext, payload: Any
) -> Generator[task.Task[Any], Any, Any]:
    """Monitor every job of the batch, at most ``max_concurrent`` at once (see the module docstring)."""
    carried = payload.get("carried") if isinstance(payload, dict) and "carried" in payload else None
    batch = BatchRequest.from_body(payload["batch"] if carried is not None else payload)
    jobs, batch_id = batch.jobs, ctx.instance_id
    outcomes: list[dict[str, Any] | None] = list(carried["outcomes"]) if carried else [None] * len(jobs)
    next_index = int(carried["next"]) if carried else 0
    cancelled = bool(carried and carried.get("cancelled"))
    cancel = ctx.wait_for_external_event(CANCEL_EVENT)
    running: dict[task.Task[Any], int] = {}
    started_here = 0
    while True:
        while (
            not cancelled
            and next_index < len(jobs)
            and len(running) < batch.max_concurrent
            and started_here < CHILDREN_PER_GENERATION
        ):
            child = ctx.call_sub_orchestrator(
                ORCHESTRATOR_NAME,
                input=jobs[next_index].to_payload(),
                instance_id=child_instance_id(batch_id, next_index),
            )
            running[child] = next_index
            next_index += 1
            started_here += 1
        if not running:
            break
        if not ctx.is_replaying:  # the status of the set is O(jobs): worked out only where it is published
            ctx.set_custom_status(batch_status(batch_id, jobs, outcomes, set(running.values())))
        done = yield task.when_any([*running, *([] if cancelled else [cancel])])
        if done is cancel:
            cancelled = True
            for index in running.values():
                ctx.send_event(
                    child_instance_id(batch_id, index), CANCEL_EVENT, data="the batch was cancelled"
                )
            continue
        outcomes[running.pop(done)] = outcome_of(done)
    generation = int(carried.get("generation", 1)) if carried else 1
    if not cancelled and next_index < len(jobs):  # this generation's share is done: the next one goes on
        carry = {"outcomes": outcomes, "next": next_index, "cancelled": False, "generation": generation + 1}
        ctx.continue_as_new({"batch": batch.to_payload(), "carried": carry}, save_events=True)
        return None
    for index in range(next_index, len(jobs)):
        outcomes[index] = NOT_STARTED
    ctx.set_custom_status(batch_status(batch_id, jobs, outcomes, set()))
    output = batch_output(batch_id, jobs, outcomes)
    if batch.notify_url is None:
        return output
    sent = yield from notify(ctx, batch.notify_url, batch.notify_headers, f"{batch_id}:{generation}", output)
    return {**output, **sent}
