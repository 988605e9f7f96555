"""Read-only views of orchestration instances: a monitor's snapshot, and any instance's details.

Custom status and output written by this package are parsed into its models; anything else is kept as
plain JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from durabletask.client import OrchestrationState, OrchestrationStatus

from monitoring.core.generations import CONTINUATION_KEYS, parse_monitor_input
from monitoring.core.models import MonitorRequest, MonitorResult, MonitorStatus
from monitoring.core.orchestration import ORCHESTRATOR_NAME
from monitoring.core.payloads import InvalidRequestError, decode_payload, from_iso, json_safe, to_iso
from monitoring.core.sources import hidden_header_value, url_for_messages
from monitoring.core.validation import printable

TERMINAL_RUNTIME_STATUSES = frozenset({"Completed", "Failed", "Terminated"})


def failure_text(state: OrchestrationState) -> str | None:
    """An orchestration's failure as ``ErrorType: message``; None if it has not failed."""
    details = state.failure_details
    return None if details is None else f"{details.error_type}: {details.message}"


def runtime_status_name(status: OrchestrationStatus) -> str:
    """``OrchestrationStatus.CONTINUED_AS_NEW`` -> ``"ContinuedAsNew"``, as the HTTP API spells it."""
    return "".join(part.capitalize() for part in status.name.split("_"))


@dataclass(frozen=True)
class MonitorSnapshot:
    """One look at a monitor: its runtime status, its published progress, and its result once done.

    ``custom_status`` and ``result`` are read tolerantly (:meth:`~monitoring.core.payloads.Payload.read`):
    another worker's orchestrator of the same name may publish other shapes, a plain string or nothing.
    ``custom_status_json`` and ``output_json`` keep what was published, as JSON, whatever its shape.
    """

    instance_id: str
    runtime_status: str
    custom_status: MonitorStatus | None
    result: MonitorResult | None
    failure: str | None
    observed_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    custom_status_json: Any = None
    output_json: Any = None

    @property
    def is_terminal(self) -> bool:
        return self.runtime_status in TERMINAL_RUNTIME_STATUSES

    @property
    def state(self) -> str:
        """One word that is true now, combining the runtime status and the published custom status.

        A suspended orchestration cannot run code, so its custom status stays as last published (its
        ``next_check_time`` may pass): ``Suspended`` comes from the runtime status. A monitor that ended by
        itself says how (``Completed``, ``Failed``, ``Timeout``, ``Cancelled``); a terminated one is
        ``Terminated`` whatever its custom status said last. A running one whose latest attempt failed is
        ``Retrying``. An output without a ``final_status`` leaves the runtime status.
        """
        if self.runtime_status in ("Suspended", "Terminated", "Pending") or (
            self.runtime_status == "Failed" and self.result is None
        ):
            return self.runtime_status
        if self.is_terminal:
            final = self.result.final_status if self.result is not None else None
            return final or self.runtime_status
        status = self.custom_status
        if status is not None and status.failed_attempts > 0:
            return "Retrying"
        return "Running"

    @property
    def final_status(self) -> str | None:
        """The ``final_status`` the monitor's output names, if it names one."""
        return self.result.final_status if self.result is not None else None

    def to_payload(self) -> dict[str, Any]:
        """JSON-ready: what ``python -m monitoring status`` prints (custom status and output as published)."""
        return {
            "instance_id": self.instance_id,
            "runtime_status": self.runtime_status,
            "state": self.state,
            "custom_status": json_safe(self.custom_status_json),
            "result": json_safe(self.output_json),
            "failure": self.failure,
        }

    @classmethod
    def from_state(cls, state: OrchestrationState) -> MonitorSnapshot:
        custom = decode_payload(state.serialized_custom_status)
        output = decode_payload(state.serialized_output)
        return cls(
            instance_id=state.instance_id,
            runtime_status=runtime_status_name(state.runtime_status),
            custom_status=MonitorStatus.read(custom),
            result=MonitorResult.read(output),
            failure=failure_text(state),
            custom_status_json=custom,
            output_json=output,
        )

    def describe(self, *, job_id: bool = True) -> str:
        """One line for a terminal or a log (control characters escaped, whatever was published).

        ``job_id=False`` leaves the job's id out: for lines that follow one monitor, under a line naming it.
        """
        parts = [f"[{self.runtime_status}]", *self._status_parts(job_id)]
        if self.failure:
            parts.append(self.failure)
        return printable(" ".join(parts), limit=500)

    def _status_parts(self, job_id: bool) -> list[str]:
        status = self.custom_status
        if status is None or status == MonitorStatus():  # nothing this package knows: show it as it is
            raw = self.custom_status_json
            return [] if raw is None else [f"custom status: {_compact(raw)}"]
        count = status.check_count
        progress = [
            status.status,
            None if count is None else f"{count} check{'' if count == 1 else 's'}",
            None if status.elapsed_seconds is None else f"elapsed {status.elapsed_seconds:.1f} s",
        ]
        if status.next_check_time and not (
            status.final_status or self.is_terminal or self.runtime_status == "Suspended"
        ):
            progress.append(_next_check(status, status.next_check_time))
        shown = ", ".join(part for part in progress if part is not None)
        named = f"job {status.job_id if status.job_id is not None else '?'}" if job_id else "job"
        parts = [named + (":" if job_id and shown else "") + (f" {shown}" if shown else "")]
        if status.final_status:
            parts.append(f"-> {status.final_status}")
        elif self.runtime_status == "Suspended":
            parts.append("(suspended: no checks until resumed)")
        elif self.runtime_status == "Terminated":
            parts.append("(terminated)")
        if status.reason:
            parts.append(f"({status.reason})")
        elif status.last_error and not self.is_terminal:
            parts.append(f"(last error: {status.last_error})")
        return parts


def _next_check(status: MonitorStatus, due: str) -> str:
    """How long after this status was published the next check is due; its time if the status lacks the
    moment it was published (its start and elapsed seconds) or has an unreadable time."""
    if status.started_at is not None and status.elapsed_seconds is not None:
        try:
            published = from_iso(status.started_at) + timedelta(seconds=status.elapsed_seconds)
            wait = round((from_iso(due) - published).total_seconds(), 1)
        except (ValueError, OverflowError):  # another worker's text, or NaN or infinite seconds
            pass
        else:
            return f"next check in {wait:g} s" if wait > 0 else "next check now"
    return f"next check at {due}"


def _compact(value: Any, limit: int = 160) -> str:
    text = json.dumps(json_safe(value), ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def shown_input(payload: Any) -> Any:
    """A monitor's (or a batch's) stored input as it may be shown (API, dashboard): the values of http
    headers hidden, and the query of a ``notify_url``.

    Any JSON is taken, a continuation's input and a batch's included; nothing else changes.
    """
    if not isinstance(payload, dict):
        return payload
    if set(payload) == CONTINUATION_KEYS:
        return {**payload, "request": shown_input(payload["request"])}
    if isinstance(payload.get("batch"), dict):  # a later generation of a batch
        return {**payload, "batch": shown_input(payload["batch"])}
    shown = _notify_hidden(payload)
    if isinstance(shown.get("jobs"), list):
        shown["jobs"] = [shown_input(job) for job in shown["jobs"]]
    options = shown.get("job_source_options")
    if isinstance(options, dict) and isinstance(options.get("headers"), dict):
        headers = {name: hidden_header_value(value) for name, value in options["headers"].items()}
        shown["job_source_options"] = {**options, "headers": headers}
    return shown


def _notify_hidden(payload: dict[str, Any]) -> dict[str, Any]:
    shown = dict(payload)
    url = shown.get("notify_url")
    if isinstance(url, str) and ("?" in url or "@" in url or "#" in url):
        shown["notify_url"] = url_for_messages(url) + "?(hidden)"
    if isinstance(shown.get("notify_headers"), dict):
        shown["notify_headers"] = {
            name: hidden_header_value(v) for name, v in shown["notify_headers"].items()
        }
    return shown


@dataclass(frozen=True)
class InstanceDetails:
    """Any orchestration instance of the task hub, as the Durable Functions status endpoint shows it."""

    name: str
    instance_id: str
    runtime_status: str
    input: Any
    custom_status: Any
    output: Any
    created_at: datetime
    last_updated_at: datetime
    failure: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.runtime_status in TERMINAL_RUNTIME_STATUSES

    @classmethod
    def from_state(cls, state: OrchestrationState) -> InstanceDetails:
        return cls(
            name=state.name,
            instance_id=state.instance_id,
            runtime_status=runtime_status_name(state.runtime_status),
            input=decode_payload(state.serialized_input),
            custom_status=decode_payload(state.serialized_custom_status),
            output=decode_payload(state.serialized_output),
            created_at=state.created_at,
            last_updated_at=state.last_updated_at,
            failure=failure_text(state),
        )

    def to_payload(self) -> dict[str, Any]:
        """The Durable Functions shape: ``name``, ``instanceId``, ``runtimeStatus``, ``input``, ...

        As in Durable Functions, a failed instance's ``output`` is its failure message.
        """
        return {
            "name": self.name,
            "instanceId": self.instance_id,
            "runtimeStatus": self.runtime_status,
            "input": shown_input(self.input),
            "customStatus": self.custom_status,
            "output": self.output if self.output is not None else self.failure,
            "createdTime": to_iso(self.created_at),
            "lastUpdatedTime": to_iso(self.last_updated_at),
        }

    def monitor_request(self) -> MonitorRequest | None:
        """The input as a :class:`MonitorRequest`, if this is a monitor with a valid input.

        A monitor that continued as new has its request inside the continuation input.
        """
        if self.name != ORCHESTRATOR_NAME:
            return None
        try:
            return parse_monitor_input(self.input, default_job_id=f"job-{self.instance_id}")[0]
        except (InvalidRequestError, TypeError, KeyError, AttributeError):
            return None

    def monitor_started_at(self) -> datetime:
        """When the monitor's clock started: its custom status says so once it has run (if it says it in
        ISO 8601), else its creation."""
        started = self.custom_status.get("started_at") if isinstance(self.custom_status, dict) else None
        if isinstance(started, str):
            try:
                return from_iso(started)
            except (ValueError, OverflowError):
                pass
        return from_iso(to_iso(self.created_at))
