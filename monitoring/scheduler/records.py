"""The local scheduler's working set, as data: instances, activity tasks, entities, lock requests, leases
and worker streams, and the options that bound them. No behaviour beyond reading a record itself."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from durabletask.internal import orchestrator_service_pb2 as pb
from google.protobuf import timestamp_pb2, wrappers_pb2

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
    keep_waiting_history_seconds: float = 30.0  # and so does a history whose instance waits this long
    max_entity_batch: int = 100  # entity operations handed to a worker in one work item
    max_entity_backlog: int = 10_000  # operations waiting for one entity

    def __post_init__(self) -> None:
        for name in ("lease_seconds", "health_ping_seconds", "sweep_seconds"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be greater than zero")
        if not self.retention_seconds >= 0:
            raise ValueError("retention_seconds must be zero or more")
        if not 0 <= self.history_reserve < self.max_history_events:
            raise ValueError("history_reserve must be below max_history_events")


def micros(seconds: float) -> int:
    """A wall-clock time in whole microseconds: how times are shown, compared and paged (one rounding)."""
    return round(seconds * 1_000_000)


def timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromMicroseconds(micros(seconds))
    return stamp


PAST_EVENTS_TAG = b"\x1a"  # OrchestratorRequest.pastEvents: field 3, length-delimited
NO_EVENTS = b""  # shared by every history that lives in the state file only


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

    wire: bytearray | bytes = field(default_factory=bytearray)  # appends in place: never recopied
    count: int = 0

    @classmethod
    def in_file(cls, count: int) -> History:
        """A history of ``count`` events that lives in the state file only (no buffer of its own)."""
        return cls(NO_EVENTS, count)

    def append(self, blob: bytes) -> None:
        """Add one serialized ``HistoryEvent``."""
        if type(self.wire) is not bytearray:
            self.wire = bytearray(self.wire)
        self.wire += PAST_EVENTS_TAG + _length_prefix(len(blob)) + blob
        self.count += 1

    def events(self) -> list[pb.HistoryEvent]:
        """The events, parsed (for history queries and the rare checks that look inside them)."""
        return list(pb.OrchestratorRequest.FromString(self.wire).pastEvents)

    def __len__(self) -> int:
        return self.count


@dataclass(frozen=True, slots=True)
class ParentLink:
    """Where a sub-orchestration reports its end: the parent, the parent's execution, and the task id."""

    instance_id: str
    execution: int
    task_id: int


START_EVENTS = ("orchestratorStarted", "executionStarted")
Inbox = list[tuple[int, pb.HistoryEvent]]  # (event row id, event), oldest first


@dataclass(eq=False, slots=True)
class Instance:
    """One orchestration instance. ``inbox`` holds visible events not yet processed; the first
    ``dispatched`` of them are out with the worker holding ``lease``. ``timers`` holds the event row ids of
    its pending timers (and of a scheduled start's events): the events wait in the hub's timer queue."""

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
    parent: ParentLink | None = None
    history: History = field(default_factory=History)
    inbox: Inbox = field(default_factory=list)
    timers: list[int] = field(default_factory=list)  # a list: most instances hold one or two
    dispatched: int = 0
    started_event: pb.HistoryEvent | None = None  # the OrchestratorStarted made for the current dispatch
    lease: str | None = None
    history_in_store: bool = False  # its history is read back from the store when needed (histories.py)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def started(self) -> bool:
        """True once its ExecutionStarted event is in its history or inbox (not held for a later start)."""
        return self.history.count > 0 or any(e.HasField("executionStarted") for _, e in self.inbox)

    def receive(self, row_id: int, event: pb.HistoryEvent) -> None:
        """Add ``event`` to the inbox. Before the instance has started, its start events (held until a
        scheduled start) go ahead of events raised early, so its first turn begins with ExecutionStarted."""
        if self.history.count == 0 and event.WhichOneof("eventType") in START_EVENTS:
            at = next(
                (n for n, (_, e) in enumerate(self.inbox) if e.WhichOneof("eventType") not in START_EVENTS),
                len(self.inbox),
            )
            self.inbox.insert(at, (row_id, event))
        else:
            self.inbox.append((row_id, event))

    def row(self) -> tuple[Any, ...]:
        """This instance as an ``instances`` row (see :mod:`monitoring.scheduler.store`)."""
        parent = self.parent
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
            parent.instance_id if parent else None,
            parent.execution if parent else None,
            parent.task_id if parent else None,
        )

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Instance:
        (instance_id, name, version, status, input_, output, custom, failure, tags, execution) = row[:10]
        details = None
        if failure is not None:
            details = pb.TaskFailureDetails()
            details.ParseFromString(failure)
        parent_id, parent_execution, parent_task = row[13:16]
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
            parent=ParentLink(parent_id, parent_execution, parent_task) if parent_id is not None else None,
        )

    def state(self, include_payloads: bool) -> pb.OrchestrationState:
        """The instance as the client API shows it."""
        state = pb.OrchestrationState(
            instanceId=self.instance_id,
            name=self.name,
            orchestrationStatus=self.status,  # type: ignore[arg-type]
            customStatus=_text(self.custom_status),
            failureDetails=self.failure,
            createdTimestamp=timestamp(self.created),
            lastUpdatedTimestamp=timestamp(self.updated),
        )
        if self.completed is not None:
            state.completedTimestamp.CopyFrom(timestamp(self.completed))
        if self.version:
            state.version.value = self.version
        if self.parent is not None:
            state.parentInstanceId.value = self.parent.instance_id
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


@dataclass(eq=False, slots=True)
class Entity:
    """One durable entity (``entity_id`` is ``@name@key``). ``queue`` holds the operations waiting for it
    (signals and calls, oldest first, as row id and event); ``dispatched`` the row ids of those out with
    the worker holding ``lease``. ``locked_by`` is the critical section holding it, ``lock_owner`` the
    orchestration that entered it."""

    entity_id: str
    state: str | None = None
    modified: float = 0.0
    queue: Inbox = field(default_factory=list)
    timers: dict[int, bytes] = field(default_factory=dict)  # delayed signals, by row id
    dispatched: list[int] = field(default_factory=list)
    lease: str | None = None
    locked_by: str | None = None
    lock_owner: str | None = None

    @property
    def name(self) -> str:
        """The entity's name, as work-item filters name it (``@counter@a`` -> ``counter``)."""
        return self.entity_id[1:].split("@", 1)[0] if self.entity_id.startswith("@") else ""

    @property
    def empty(self) -> bool:
        """No state, nothing waiting, not locked: a record only storage cleaning removes."""
        return self.state is None and not self.queue and not self.timers and self.locked_by is None

    def row(self) -> tuple[Any, ...]:
        return (self.entity_id, self.state, self.modified, self.locked_by, self.lock_owner)


@dataclass(eq=False, slots=True)
class LockRequest:
    """An orchestration waiting to enter a critical section on every entity of ``entities`` at once."""

    id: int
    section: str
    owner: str
    entities: tuple[str, ...]

    def row(self) -> tuple[Any, ...]:
        return (self.id, self.section, self.owner, json.dumps(list(self.entities)))


LeaseKind = Literal["orchestration", "activity", "entity"]


@dataclass(eq=False)
class Lease:
    """A work item out with one worker stream: ``key`` is the instance id, the task's ``id`` or the
    entity id."""

    token: str
    kind: LeaseKind
    key: str | int
    stream: int
    expires: float  # the clock's monotonic time


Filter = dict[str, frozenset[str]]  # name -> accepted versions (empty: any); None for no filter


@dataclass(eq=False)
class Stream:
    """One open ``GetWorkItems`` call: the worker it belongs to, what it asked for, the leases it holds."""

    id: int
    worker: str
    orchestrations: Filter | None = None
    activities: Filter | None = None
    entities: Filter | None = None
    tokens: set[str] = field(default_factory=set)
    open: bool = True
    turn: int = 0  # which kind of work item it is offered first (they take turns: none starves)
    # Work items of each kind it may hold at once: as many as the worker said it runs (absent or 0: any).
    limits: dict[LeaseKind, int] = field(default_factory=dict)
    held: dict[LeaseKind, int] = field(default_factory=dict)

    def full(self, kind: LeaseKind) -> bool:
        return 0 < self.limits.get(kind, 0) <= self.held.get(kind, 0)


def matches(name: str, version: str | None, accepted: Filter | None) -> bool:
    """True if a work item passes a stream's filter (``None``: no filter; empty versions: any version)."""
    if accepted is None:
        return True
    versions = accepted.get(name)
    if versions is None:
        return False
    return not versions or (version or "") in versions
