"""The local scheduler's working set: instances, activity tasks, leases and worker streams (data only)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from durabletask.internal import orchestrator_service_pb2 as pb
from google.protobuf import wrappers_pb2

from monitoring.settings import DEFAULT_RETENTION_DAYS

TERMINAL = frozenset(
    {pb.ORCHESTRATION_STATUS_COMPLETED, pb.ORCHESTRATION_STATUS_FAILED, pb.ORCHESTRATION_STATUS_TERMINATED}
)


@dataclass(frozen=True)
class HubOptions:
    """Leases, limits and retention of one local scheduler (see the README's durability section)."""

    lease_seconds: float = 120.0  # a work item not completed by then goes back to the queue
    health_ping_seconds: float = 20.0  # an idle stream gets a ping this often (workers reopen after 120 s)
    max_pending_events: int = 1_000  # events waiting for one instance's orchestrator
    max_history_events: int = 10_000  # one instance's history (the SDK's own cap)
    history_reserve: int = 1_000  # of which raised events may not take the last ones, except a new name
    max_active_instances: int = 100_000
    retention_seconds: float = DEFAULT_RETENTION_DAYS * 86_400  # finished instances: purged this long after
    max_finished_instances: int = 50_000  # and the oldest beyond this many
    sweep_seconds: float = 1.0
    keep_ended_history_seconds: float = 60.0  # then an ended instance's history lives in the file only

    def __post_init__(self) -> None:
        for name in ("lease_seconds", "health_ping_seconds", "sweep_seconds"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be greater than zero")
        if not self.retention_seconds >= 0:
            raise ValueError("retention_seconds must be zero or more")
        if not 0 <= self.history_reserve < self.max_history_events:
            raise ValueError("history_reserve must be below max_history_events")


def utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, timezone.utc)


PAST_EVENTS_TAG = b"\x1a"  # OrchestratorRequest.pastEvents: field 3, length-delimited


def _length_prefix(size: int) -> bytes:
    """``size`` as a protobuf varint (what precedes a length-delimited field's bytes)."""
    out = bytearray()
    while size > 0x7F:
        out.append(size & 0x7F | 0x80)
        size >>= 7
    out.append(size)
    return bytes(out)


@dataclass(eq=False, slots=True)
class History:
    """One execution's history, kept as the worker receives it: serialized events, already framed as
    ``OrchestratorRequest.pastEvents``, in one growing buffer.

    A dispatch merges :attr:`wire` into its request (no message copies), and a waiting monitor's history
    weighs its serialized size, not a protobuf object per event (about 1 KB each in memory).
    """

    wire: bytearray = field(default_factory=bytearray)  # appends in place: a long history is not recopied
    count: int = 0

    def append(self, blob: bytes) -> None:
        """Add one serialized ``HistoryEvent``."""
        self.wire += PAST_EVENTS_TAG + _length_prefix(len(blob)) + blob
        self.count += 1

    def events(self) -> list[pb.HistoryEvent]:
        """The events, parsed (for history queries and the rare checks that look inside them)."""
        return list(pb.OrchestratorRequest.FromString(self.wire).pastEvents)

    def __len__(self) -> int:
        return self.count


@dataclass(eq=False, slots=True)
class Instance:
    """One orchestration instance. ``inbox`` holds visible events not yet processed, oldest first, as
    (event row id, event); the first ``dispatched`` of them are out with the worker holding ``lease``.
    ``timers`` holds its pending timers' ``TimerFired`` events, serialized, by event row id."""

    instance_id: str
    name: str
    version: str | None
    status: int
    input: str | None
    created: float
    updated: float
    execution: int = 1
    output: str | None = None
    custom_status: str | None = None
    failure: pb.TaskFailureDetails | None = None
    completed: float | None = None
    tags: dict[str, str] | None = None
    history: History = field(default_factory=History)
    inbox: list[tuple[int, pb.HistoryEvent]] = field(default_factory=list)
    timers: dict[int, bytes] = field(default_factory=dict)
    dispatched: int = 0
    started_event: pb.HistoryEvent | None = None  # the OrchestratorStarted made for the current dispatch
    lease: str | None = None
    history_in_store: bool = False  # an ended instance's history is read from the store when asked

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def row(self) -> tuple[Any, ...]:
        """This instance as an ``instances`` row (see :mod:`monitoring.backend.store`)."""
        return (
            self.instance_id,
            self.name,
            self.version,
            self.status,
            self.input,
            self.output,
            self.custom_status,
            self.failure.SerializeToString() if self.failure is not None else None,
            json.dumps(self.tags) if self.tags else None,
            self.execution,
            self.created,
            self.updated,
            self.completed,
        )

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Instance:
        (instance_id, name, version, status, input_, output, custom, failure, tags, execution) = row[:10]
        details = None
        if failure is not None:
            details = pb.TaskFailureDetails()
            details.ParseFromString(failure)
        return cls(
            instance_id=instance_id,
            name=name,
            version=version,
            status=status,
            input=input_,
            output=output,
            custom_status=custom,
            failure=details,
            tags=json.loads(tags) if tags else None,
            execution=execution,
            created=row[10],
            updated=row[11],
            completed=row[12],
        )

    def state(self, include_payloads: bool) -> pb.OrchestrationState:
        """The instance as the client API shows it."""
        state = pb.OrchestrationState(
            instanceId=self.instance_id,
            name=self.name,
            orchestrationStatus=self.status,  # type: ignore[arg-type]
            customStatus=_text(self.custom_status),
            failureDetails=self.failure,
        )
        state.createdTimestamp.FromDatetime(utc(self.created))
        state.lastUpdatedTimestamp.FromDatetime(utc(self.updated))
        if self.completed is not None:
            state.completedTimestamp.FromDatetime(utc(self.completed))
        if self.version:
            state.version.value = self.version
        if include_payloads:
            if self.input is not None:
                state.input.value = self.input
            if self.output is not None:
                state.output.value = self.output
        if self.tags:
            state.tags.update(self.tags)
        return state


def _text(value: str | None) -> Any:
    return wrappers_pb2.StringValue(value=value) if value is not None else None


@dataclass(eq=False)
class Task:
    """An activity an orchestrator scheduled (``id``: unique in the scheduler; ``task_id``: in its run)."""

    id: int
    instance_id: str
    execution: int
    task_id: int
    name: str
    version: str | None
    input: str | None
    lease: str | None = None

    def row(self) -> tuple[Any, ...]:
        return (self.id, self.instance_id, self.execution, self.task_id, self.name, self.version, self.input)


LeaseKind = Literal["orchestration", "activity"]


@dataclass(eq=False)
class Lease:
    """A work item out with one worker stream: ``key`` is the instance id or the task's ``id``."""

    token: str
    kind: LeaseKind
    key: str | int
    stream: int
    expires: float  # time.monotonic()


@dataclass(eq=False)
class Stream:
    """One open ``GetWorkItems`` call: the worker it belongs to and the leases it holds."""

    id: int
    worker: str
    orchestrations: dict[str, frozenset[str]] | None = None  # name -> versions filter, None: everything
    activities: dict[str, frozenset[str]] | None = None
    tokens: set[str] = field(default_factory=set)
    open: bool = True
    activity_first: bool = False


def matches(name: str, version: str | None, accepted: dict[str, frozenset[str]] | None) -> bool:
    """True if a work item passes a stream's filter (``None``: no filter; empty versions: any version)."""
    if accepted is None:
        return True
    versions = accepted.get(name)
    if versions is None:
        return False
    return not versions or (version or "") in versions
