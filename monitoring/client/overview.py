"""The dashboard's view of a whole task hub, kept current with a few small queries instead of a full listing.

:class:`InstanceIndex` holds one light row per instance and refreshes at most every ``min_refresh_seconds``
(however many browsers poll), with the SDK's query filters:

* new instances: ``created_time_from`` = the newest creation time seen (with inputs, read once);
* active instances: ``runtime_status`` in Pending/Running/Suspended (no inputs or outputs);
* an instance that left the active set is read once by id (its output says how it ended), and gone if purged;
* every ``reconcile_seconds``, one paged listing (page size ``page_size``, continuation tokens) without
  inputs or outputs finds instances purged or created behind the index's back.

Filtering, search, sorting, paging and the counts then run over the rows in memory, so a page of the list
costs the same with ten thousand instances as with ten. Checks per minute come from each monitor's
``check_count`` rising between refreshes (the checks in between are placed on their planned offsets).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from durabletask.client import OrchestrationQuery, OrchestrationState, OrchestrationStatus

from monitoring.client.card import StatusCard, monitor_request, read_card
from monitoring.client.snapshots import TERMINAL_RUNTIME_STATUSES, runtime_status_name
from monitoring.core.payloads import decode_payload, from_iso, to_iso

SortKey = Literal["created", "updated", "instance", "job", "status"]
ACTIVE_STATUSES = [
    OrchestrationStatus.PENDING,
    OrchestrationStatus.RUNNING,
    OrchestrationStatus.SUSPENDED,
    OrchestrationStatus.CONTINUED_AS_NEW,
]
ACTIVE_NAMES = frozenset(runtime_status_name(status) for status in ACTIVE_STATUSES)
RATE_MINUTES = 10


@dataclass
class InstanceRow:
    """One instance as the list shows it."""

    instance_id: str
    name: str
    runtime_status: str
    created_at: datetime
    last_updated_at: datetime
    card: StatusCard
    input: Any = None  # kept for the card's planned and predicted counts (read once, with the first sighting)

    @property
    def is_active(self) -> bool:
        return self.runtime_status in ACTIVE_NAMES

    def to_payload(self) -> dict[str, Any]:
        card = self.card
        return {
            "instanceId": self.instance_id,
            "name": self.name,
            "runtimeStatus": self.runtime_status,
            "state": card.state,
            "jobId": card.job_id,
            "jobStatus": card.job_status,
            "checkCount": card.check_count,
            "plannedChecks": card.predicted_checks or card.planned_checks,
            "finalStatus": card.final_status,
            "createdTime": to_iso(self.created_at),
            "lastUpdatedTime": to_iso(self.last_updated_at),
        }


@dataclass(frozen=True)
class ListQuery:
    """One page of the list: filter, search, order and window."""

    status: str | None = None
    search: str = ""
    sort: SortKey = "created"
    descending: bool = True
    offset: int = 0
    limit: int = 25


@dataclass(frozen=True)
class ListPage:
    total: int
    matching: int
    rows: list[InstanceRow]


@dataclass
class CheckRate:
    """Checks per minute, from check counts seen rising."""

    minutes: Counter[int] = field(default_factory=Counter)

    def add(self, moments: Iterable[datetime]) -> None:
        for moment in moments:
            self.minutes[int(moment.timestamp() // 60)] += 1

    def series(self, now: datetime, minutes: int = RATE_MINUTES) -> list[dict[str, Any]]:
        """The last ``minutes`` minutes, oldest first; the last one is the current, partial minute."""
        current = int(now.timestamp() // 60)
        for old in [minute for minute in self.minutes if minute < current - 60]:
            del self.minutes[old]
        return [
            {"minute": to_iso(datetime.fromtimestamp(60 * m, timezone.utc)), "checks": self.minutes.get(m, 0)}
            for m in range(current - minutes + 1, current + 1)
        ]


def new_check_times(row: InstanceRow, before: int, window_start: datetime) -> list[datetime]:
    """When checks ``before + 1 .. now`` of ``row`` happened, as far as its custom status tells.

    The newest is its ``last_check_time``; the ones in between sit on their planned offsets (never after
    it). Checks before ``window_start`` are left out (a first sighting of an old monitor adds nothing).
    """
    card = row.card
    count = card.check_count or 0
    if count <= before or card.started_at is None:
        return []
    try:
        started = from_iso(card.started_at)
        last = from_iso(card.last_check_time) if card.last_check_time else row.last_updated_at
    except ValueError:
        return []
    last = last if last.tzinfo else last.replace(tzinfo=timezone.utc)
    request = monitor_request(row.input)
    schedule = request.schedule() if request is not None else None
    moments = [last]
    for number in range(count - 1, before, -1):
        if schedule is None or number > schedule.planned_check_count:
            break
        moment = min(started + timedelta(seconds=schedule.offset_of_check(number)), last)
        if moment < window_start:
            break
        moments.append(moment)
    return [moment for moment in moments if moment >= window_start]


class InstanceIndex:
    """Every instance of a task hub as a light row, refreshed incrementally (see the module docstring)."""

    def __init__(
        self,
        client: Any,
        *,
        min_refresh_seconds: float = 0.5,
        reconcile_seconds: float = 30.0,
        page_size: int = 500,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client  # the SDK's TaskHubGrpcClient (MonitorClient.client)
        self._min_refresh = min_refresh_seconds
        self._reconcile_every = reconcile_seconds
        self._page_size = page_size
        self._clock = clock
        self._lock = threading.Lock()
        self._rows: dict[str, InstanceRow] = {}
        self._newest: datetime | None = None
        self._refreshed_at = -float("inf")
        self._reconciled_at = -float("inf")
        self.rate = CheckRate()
        self.states_read = 0  # instance states the last refresh read from the backend

    # --- reading the backend -----------------------------------------------------------------------------

    def _query(self, **filters: Any) -> list[OrchestrationState]:
        query = OrchestrationQuery(max_instance_count=self._page_size, **filters)
        states = self._client.get_all_orchestration_states(query)
        self.states_read += len(states)
        return states

    def _apply(self, state: OrchestrationState, *, with_payloads: bool) -> None:
        known = self._rows.get(state.instance_id)
        runtime_status = runtime_status_name(state.runtime_status)
        payload_input = decode_payload(state.serialized_input) if with_payloads else None
        if known is not None and not with_payloads:
            payload_input = known.input
        output = decode_payload(state.serialized_output) if with_payloads else None
        if output is None and state.failure_details is not None:
            output = f"{state.failure_details.error_type}: {state.failure_details.message}"
        custom = decode_payload(state.serialized_custom_status)
        row = InstanceRow(
            instance_id=state.instance_id,
            name=state.name,
            runtime_status=runtime_status,
            created_at=state.created_at,
            last_updated_at=state.last_updated_at,
            card=read_card(runtime_status, custom, payload_input, output),
            input=payload_input,
        )
        before = (known.card.check_count or 0) if known is not None else 0
        window = datetime.now(timezone.utc) - timedelta(minutes=RATE_MINUTES)
        self.rate.add(new_check_times(row, before, window))
        self._rows[state.instance_id] = row
        if self._newest is None or state.created_at > self._newest:
            self._newest = state.created_at

    def _read_one(self, instance_id: str) -> None:
        state = self._client.get_orchestration_state(instance_id, fetch_payloads=True)
        self.states_read += 1
        if state is None:
            self._rows.pop(instance_id, None)
        else:
            self._apply(state, with_payloads=True)

    def _sync_new(self) -> None:
        for state in self._query(created_time_from=self._newest, fetch_inputs_and_outputs=True):
            self._apply(state, with_payloads=True)

    def _sync_active(self) -> None:
        seen = set()
        for state in self._query(runtime_status=ACTIVE_STATUSES):
            seen.add(state.instance_id)
            if state.instance_id in self._rows:
                self._apply(state, with_payloads=False)
            else:
                self._read_one(state.instance_id)
        for row in [row for row in self._rows.values() if row.is_active and row.instance_id not in seen]:
            self._read_one(row.instance_id)

    def _reconcile(self) -> None:
        states = self._query()
        present = {state.instance_id for state in states}
        for gone in set(self._rows) - present:
            del self._rows[gone]
        for state in states:
            known = self._rows.get(state.instance_id)
            changed = known is not None and runtime_status_name(state.runtime_status) != known.runtime_status
            if known is None or (changed and state.runtime_status not in ACTIVE_STATUSES):
                self._read_one(state.instance_id)  # new to the index, or ended: its input or output is needed
            elif known.is_active:
                self._apply(state, with_payloads=False)

    def refresh(self, *, force: bool = False) -> None:
        """Bring the rows up to date, unless that was done less than ``min_refresh_seconds`` ago."""
        with self._lock:
            now = self._clock()
            if not force and now - self._refreshed_at < self._min_refresh:
                return
            self.states_read = 0
            first = self._newest is None and not self._rows
            self._sync_new()
            if not first and now - self._reconciled_at >= self._reconcile_every:
                self._reconcile()
                self._reconciled_at = now
            elif first:
                self._reconciled_at = now
            self._sync_active()
            self._refreshed_at = now

    def forget(self, instance_id: str) -> None:
        """Drop a purged instance at once (the next reconcile would too)."""
        with self._lock:
            self._rows.pop(instance_id, None)

    # --- answering the dashboard ---------------------------------------------------------------------------

    def page(self, query: ListQuery) -> ListPage:
        with self._lock:
            rows = list(self._rows.values())
        total = len(rows)
        if query.status:
            rows = [row for row in rows if row.runtime_status == query.status]
        needle = query.search.strip().lower()
        if needle:
            rows = [
                row
                for row in rows
                if needle in row.instance_id.lower() or needle in (row.card.job_id or "").lower()
            ]
        key: Callable[[InstanceRow], Any] = {
            "created": lambda row: (row.created_at, row.instance_id),
            "updated": lambda row: (row.last_updated_at, row.instance_id),
            "instance": lambda row: row.instance_id,
            "job": lambda row: ((row.card.job_id or "").lower(), row.created_at),
            "status": lambda row: (row.runtime_status, row.created_at),
        }[query.sort]
        rows.sort(key=key, reverse=query.descending)
        return ListPage(total, len(rows), rows[query.offset : query.offset + query.limit])

    def checks_per_minute(self, now: datetime, minutes: int = RATE_MINUTES) -> list[dict[str, Any]]:
        """The last ``minutes`` minutes of :class:`CheckRate`, read under the lock refreshes write under."""
        with self._lock:
            return self.rate.series(now, minutes)

    def counts(self) -> tuple[int, dict[str, int], dict[str, int]]:
        """(total, by runtime status, by final status of those that ended)."""
        with self._lock:
            rows = list(self._rows.values())
        by_runtime = Counter(row.runtime_status for row in rows)
        by_final = Counter(row.card.state for row in rows if row.runtime_status in TERMINAL_RUNTIME_STATUSES)
        return len(rows), dict(by_runtime), dict(by_final)
