"""Leases: which worker stream holds which work item, under which completion token, until when.

Every work item goes out under a lease: a completion token minted for that one dispatch (unique across
restarts on the same state file), the stream it went to, and a deadline. A lease ends when the worker
completes or abandons the item, when its stream ends (the worker died, was stopped, or reconnected), or
at its deadline; the part that owns the item then puts it back in its queue (see the hub). A token whose
work was withdrawn (its instance ended or continued as new) is remembered for a while as *revoked*, so a
late completion for it is dropped quietly instead of refused.
"""

from __future__ import annotations

import itertools
import logging
import uuid
from collections.abc import Callable

from monitoring.scheduler.clock import Clock
from monitoring.scheduler.records import Filter, Lease, LeaseKind, Stream

logger = logging.getLogger("monitoring.scheduler.hub")
REVOKED_KEPT = 10_000


class Leases:
    """Streams and the leases they hold (the caller holds the hub's lock)."""

    def __init__(self, clock: Clock, lease_seconds: float) -> None:
        self.clock = clock
        self.lease_seconds = lease_seconds
        self.by_token: dict[str, Lease] = {}
        self.streams: dict[int, Stream] = {}
        self._stream_ids = itertools.count(1)
        self._tokens = itertools.count(1)
        self.epoch = uuid.uuid4().hex[:8]  # the persisted boot number replaces it when there is a file
        self._revoked: dict[str, None] = {}  # oldest first
        self.on_freed: Callable[[], object] = lambda: None  # a full stream can take work of that kind again

    def open_stream(
        self,
        worker: str,
        orchestrations: Filter | None = None,
        activities: Filter | None = None,
        entities: Filter | None = None,
        limits: dict[LeaseKind, int] | None = None,
    ) -> Stream:
        """A new stream, open from now on, with the per-kind ``limits`` it holds to (absent or 0: none)."""
        stream = Stream(
            next(self._stream_ids), worker, orchestrations, activities, entities, limits=dict(limits or {})
        )
        self.streams[stream.id] = stream
        return stream

    def close_stream(self, stream: Stream) -> list[Lease]:
        """The stream ended: its leases, ended too, for their owners to requeue."""
        stream.open = False
        self.streams.pop(stream.id, None)
        ended = [self.by_token.pop(token) for token in stream.tokens if token in self.by_token]
        stream.tokens.clear()
        stream.held.clear()
        return ended

    def grant(self, stream: Stream, kind: LeaseKind, key: str | int) -> str:
        """A new lease on ``key`` for ``stream``; returns its token."""
        token = f"{self.epoch}-{next(self._tokens)}"
        self.by_token[token] = Lease(token, kind, key, stream.id, self.clock.monotonic() + self.lease_seconds)
        stream.tokens.add(token)
        stream.held[kind] = stream.held.get(kind, 0) + 1
        return token

    def get(self, token: str, kind: LeaseKind) -> Lease | None:
        lease = self.by_token.get(token)
        return lease if lease is not None and lease.kind == kind else None

    def drop(self, token: str) -> Lease | None:
        """End a lease (completed, abandoned, or withdrawn); returns it, or None if it had ended already."""
        lease = self.by_token.pop(token, None)
        if lease is not None:
            stream = self.streams.get(lease.stream)
            if stream is not None and token in stream.tokens:
                was_full = stream.full(lease.kind)
                stream.tokens.discard(token)
                stream.held[lease.kind] -= 1
                if was_full:
                    self.on_freed()
        return lease

    def revoke(self, token: str) -> None:
        """End a lease whose work is no longer wanted: its late completion is dropped, not refused."""
        self.drop(token)
        self._revoked[token] = None
        while len(self._revoked) > REVOKED_KEPT:
            del self._revoked[next(iter(self._revoked))]

    def revoked(self, token: str) -> bool:
        return token in self._revoked

    def expired(self) -> list[Lease]:
        """Leases past their deadline (a worker that holds its stream but no longer answers), ended."""
        now = self.clock.monotonic()
        due = [token for token, lease in self.by_token.items() if lease.expires <= now]
        return [lease for lease in map(self.drop, due) if lease is not None]
