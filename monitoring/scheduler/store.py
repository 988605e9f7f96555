"""Where the local scheduler keeps its state: a SQLite file (durable) or nowhere (in memory, for tests).

The scheduler's working set lives in memory (:mod:`monitoring.scheduler.hub`); every change it makes is also
described as a list of :data:`Op` and handed to :meth:`Store.submit` in the order it happened. A
:class:`SqliteStore` applies them on one writer thread (sqlite3 connections belong to the thread that made
them), as many as have queued up in one transaction (it lets them gather for ``GATHER_SECONDS`` unless someone
waits), so one commit carries many checks and its statements run grouped (see :func:`_grouped`).
Callers that promise durability to someone (a client's start, raise or terminate) wait for their commit
with :meth:`Store.wait`; the workers' completions do not wait, because losing the last few of them in a
crash only means the same work runs again from the state committed before (every transaction is a
consistent step of the hub).

WAL with ``synchronous=NORMAL``: a commit is a write to the WAL file, without an fsync; the WAL is synced
at checkpoints. A killed scheduler process loses nothing committed (the operating system has the pages);
only a crash of the machine itself can lose the last commits, which costs a re-run of that work, never a
corrupt database. ``synchronous=FULL`` would add an fsync to every commit (milliseconds each, on this
machine's disk), the "fsync storm" a busy scheduler must not have.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from durabletask.internal import orchestrator_service_pb2 as pb

from monitoring.scheduler.schema import StateFileError, open_state_file

logger = logging.getLogger(__name__)

# One change, in the order the hub made it. ("instance", row) writes a whole instances row; "history"
# appends (instance_id, seq, serialized event); "event" inserts (id, instance_id, execution, visible_at,
# event); "task" inserts (id, instance_id, execution, task_id, name, version, input); "entity" writes a whole
# entities row; "entity_op" inserts (id, entity_id, visible_at, event); "lock" inserts (id, section, owner,
# entities); "event_del", "task_del", "entity_op_del", "lock_del" take an id, "entity_del" an entity id;
# "history_clear", "events_clear", "tasks_clear" and "purge" take an instance id; "meta" (key, value).
Op = tuple[Any, ...]

_STATEMENTS = {
    "instance": "INSERT OR REPLACE INTO instances VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
    "history": "INSERT OR REPLACE INTO history VALUES (?,?,?)",
    "event": "INSERT OR REPLACE INTO events VALUES (?,?,?,?,?)",
    "task": "INSERT OR REPLACE INTO tasks VALUES (?,?,?,?,?,?,?)",
    "entity": "INSERT OR REPLACE INTO entities VALUES (?,?,?,?,?)",
    "entity_op": "INSERT OR REPLACE INTO entity_ops VALUES (?,?,?,?)",
    "lock": "INSERT OR REPLACE INTO lock_requests VALUES (?,?,?,?)",
    "event_del": "DELETE FROM events WHERE id = ?",
    "task_del": "DELETE FROM tasks WHERE id = ?",
    "entity_op_del": "DELETE FROM entity_ops WHERE id = ?",
    "lock_del": "DELETE FROM lock_requests WHERE id = ?",
    "entity_del": "DELETE FROM entities WHERE entity_id = ?",
    "history_clear": "DELETE FROM history WHERE instance_id = ?",
    "events_clear": "DELETE FROM events WHERE instance_id = ?",
    "tasks_clear": "DELETE FROM tasks WHERE instance_id = ?",
    "meta": "INSERT OR REPLACE INTO meta VALUES (?,?)",
}
_PURGE = (
    "DELETE FROM instances WHERE instance_id = ?",
    "DELETE FROM history WHERE instance_id = ?",
    "DELETE FROM events WHERE instance_id = ?",
    "DELETE FROM tasks WHERE instance_id = ?",
)
_SERIALIZED = {"event", "entity_op"}  # ops whose last column is a HistoryEvent, serialized when written


# Row writes addressed by a key that is never reused, so between two barriers (the clears, purges and meta
# writes, kept in place) they can run grouped by kind, inserts before deletes, and end in the same state.
_GROUPED = (
    "instance", "history", "event", "task", "entity", "entity_op", "lock",
    "event_del", "task_del", "entity_op_del", "lock_del",
)  # fmt: skip
GATHER_SECONDS = 0.01  # how long the writer lets steps gather when nobody waits for the commit


def _grouped(ops: Sequence[Op]) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
    """``ops`` as (kind, rows) runs for ``executemany``: few statements for a transaction of many steps."""
    pending: dict[str, list[tuple[Any, ...]]] = {kind: [] for kind in _GROUPED}
    for op in ops:
        rows = pending.get(op[0])
        if rows is not None:
            rows.append(op[1:])
            continue
        for kind, held in pending.items():
            if held:
                yield kind, held
                pending[kind] = []
        yield op[0], [op[1:]]
    for kind, held in pending.items():
        if held:
            yield kind, held


ENDED = (
    pb.ORCHESTRATION_STATUS_COMPLETED,
    pb.ORCHESTRATION_STATUS_FAILED,
    pb.ORCHESTRATION_STATUS_TERMINATED,
)


class StoreError(RuntimeError):
    """The state file cannot be used, or a write failed; the message says why."""


@dataclass
class Loaded:
    """Everything a :class:`SqliteStore` holds, as rows, for the hub to rebuild its working set from."""

    meta: dict[str, str] = field(default_factory=dict)
    instances: list[tuple[Any, ...]] = field(default_factory=list)
    history_counts: dict[str, int] = field(default_factory=dict)  # events of each active instance
    events: list[tuple[int, str, int, float, bytes]] = field(default_factory=list)  # serialized events
    tasks: list[tuple[Any, ...]] = field(default_factory=list)
    entities: list[tuple[Any, ...]] = field(default_factory=list)
    entity_ops: list[tuple[int, str, float, pb.HistoryEvent]] = field(default_factory=list)
    locks: list[tuple[Any, ...]] = field(default_factory=list)


def _event(blob: bytes) -> pb.HistoryEvent:
    event = pb.HistoryEvent()
    event.ParseFromString(blob)
    return event


class Store:
    """Keeps nothing: the in-memory mode (tests, ``scheduler --in-memory``)."""

    durable = False
    path: Path | None = None
    trouble: str | None = None  # why writes fail right now (a full disk, say); None while they succeed

    def load(self) -> Loaded:
        return Loaded()

    def start(self) -> None:
        return None

    submitted = 0  # steps handed to submit(), and committed: equal when the file holds every change
    committed = 0

    def read_history(self, instance_id: str) -> list[pb.HistoryEvent]:
        return [_event(blob) for blob in self.read_history_blobs(instance_id)]

    def read_history_blobs(self, instance_id: str) -> list[bytes]:
        return []

    def submit(self, ops: Sequence[Op]) -> int:
        return 0

    def wait(self, ticket: int, timeout: float | None = 30.0) -> None:
        return None

    def close(self) -> None:
        return None


# While writes fail (a full disk), the writer tries the same transaction again after this long, doubling.
RETRY_FIRST_SECONDS, RETRY_MAX_SECONDS = 0.05, 1.0
TROUBLE_PATIENCE = 2.0  # a caller waiting for its commit while writes fail is answered after this long


def _cause(path: Path, error: sqlite3.Error) -> str:
    """What keeps ``path`` from being written, in words a person can act on."""
    message = str(error)
    if "full" in message:
        return f"the disk holding {path} is full"
    if "readonly" in message:
        return f"{path} has become read-only"
    if "disk I/O error" in message:
        return f"the disk holding {path} failed to write (disk I/O error)"
    return f"the scheduler could not write its state to {path} ({message})"


class SqliteStore(Store):
    """A SQLite file in WAL mode, written by one thread in transactional batches.

    A transaction that fails because of the disk (full, read-only, an I/O error) is kept, in order, and
    tried again until it succeeds: meanwhile :attr:`trouble` says why, the hub refuses changes it could not
    save, and once writes succeed the scheduler goes on by itself with nothing lost. Any other failure
    (a bug) stops the writer: what was not committed then runs again from the file after a restart.
    """

    durable = True

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            open_state_file(path, self._connect)
        except StateFileError as error:
            raise StoreError(str(error)) from None
        self._changed = threading.Condition()
        self._queue: list[Op] = []
        self.submitted = 0  # tickets: one per submit, committed in order
        self.committed = 0
        self._failure: str | None = None
        self.trouble = None
        self._closing = False
        self._writer_idle = False  # the writer waits for work: a submit wakes it
        self._waiters = 0  # callers blocked in wait(): the writer commits at once for them
        self._readers = threading.local()
        self._thread: threading.Thread | None = None
        self.start()

    def start(self) -> None:
        """Start the writer thread (again, after :meth:`close`)."""
        with self._changed:
            if self._thread is not None and self._thread.is_alive():
                return
            self._closing = False
            self._thread = threading.Thread(
                target=self._write_loop, name="local-scheduler-store", daemon=True
            )
            self._thread.start()

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, isolation_level=None, timeout=10)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        return connection

    def load(self) -> Loaded:
        loaded = Loaded()
        connection = self._connect()
        try:
            loaded.meta = dict(connection.execute("SELECT key, value FROM meta"))
            loaded.instances = connection.execute("SELECT * FROM instances").fetchall()
            # Only how long the active instances' histories are: each is read when needed (histories.py).
            loaded.history_counts = dict(
                connection.execute(
                    "SELECT h.instance_id, COUNT(*) FROM history h JOIN instances i USING (instance_id) "
                    f"WHERE i.status NOT IN ({', '.join(str(s) for s in ENDED)}) GROUP BY h.instance_id"
                )
            )
            loaded.events = connection.execute("SELECT * FROM events ORDER BY visible_at, id").fetchall()
            loaded.tasks = connection.execute("SELECT * FROM tasks ORDER BY id").fetchall()
            loaded.entities = connection.execute("SELECT * FROM entities").fetchall()
            loaded.entity_ops = [
                (row[0], row[1], row[2], _event(row[3]))
                for row in connection.execute("SELECT * FROM entity_ops ORDER BY id")
            ]
            loaded.locks = connection.execute("SELECT * FROM lock_requests ORDER BY id").fetchall()
        except sqlite3.DatabaseError as error:
            raise StoreError(f"cannot read the scheduler's state in {self.path}: {error}") from None
        finally:
            connection.close()
        return loaded

    def read_history_blobs(self, instance_id: str) -> list[bytes]:
        """An instance's history as committed, serialized (a connection per reading thread: sqlite3's
        rule)."""
        connection = getattr(self._readers, "connection", None)
        if connection is None:
            connection = self._readers.connection = sqlite3.connect(self.path, timeout=10)
        rows = connection.execute(
            "SELECT event FROM history WHERE instance_id = ? ORDER BY seq", (instance_id,)
        )
        return [blob for (blob,) in rows]

    def submit(self, ops: Sequence[Op]) -> int:
        """Queue ``ops`` (one consistent step) for the writer; returns a ticket for :meth:`wait`."""
        with self._changed:
            self._queue.extend(ops)
            self.submitted += 1
            if self._writer_idle:
                self._changed.notify_all()
            return self.submitted

    def wait(self, ticket: int, timeout: float | None = 30.0) -> None:
        """Block until the step with ``ticket`` (and every one before it) is committed.

        While writes fail, the answer comes after :data:`TROUBLE_PATIENCE` at most: the step is not saved
        yet (it will be, once writes succeed again)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        troubled_since: float | None = None
        with self._changed:
            self._waiters += 1
            self._changed.notify_all()  # the writer stops gathering
            try:
                while self.committed < ticket:
                    if self._failure is not None:
                        raise StoreError(self._failure)
                    if self._stopped():
                        raise StoreError("the scheduler is stopping: the change was not saved")
                    now = time.monotonic()
                    if self.trouble is not None:
                        troubled_since = troubled_since or now
                        if now - troubled_since >= TROUBLE_PATIENCE:
                            raise StoreError(f"{self.trouble}: the change is not saved yet")
                    if deadline is not None and now >= deadline:
                        raise StoreError(f"the scheduler's state file did not commit within {timeout} s")
                    left = TROUBLE_PATIENCE if deadline is None else min(deadline - now, TROUBLE_PATIENCE)
                    self._changed.wait(left)
            finally:
                self._waiters -= 1

    def _stopped(self) -> bool:
        return self._thread is None or not self._thread.is_alive()

    def close(self) -> None:
        """Commit what is queued, then stop the writer (a transaction it cannot write stays unsaved)."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(30)
        with self._changed:
            self._changed.notify_all()  # waiters see that the writer stopped

    def _write_loop(self) -> None:
        connection = self._connect()
        retry = RETRY_FIRST_SECONDS
        try:
            while True:
                with self._changed:
                    self._writer_idle = True
                    self._changed.wait_for(
                        lambda: self._queue or self.submitted > self.committed or self._closing
                    )
                    self._writer_idle = False
                    # A busy hub's steps gather into one transaction, unless someone waits for a commit.
                    self._changed.wait_for(lambda: self._waiters or self._closing, GATHER_SECONDS)
                    if not self._queue and self.submitted == self.committed and self._closing:
                        self._changed.notify_all()
                        return
                    ops, self._queue = self._queue, []
                    ticket = self.submitted
                try:
                    if ops:
                        self._apply(connection, ops)
                except (sqlite3.OperationalError, sqlite3.DatabaseError) as error:
                    if isinstance(error, sqlite3.IntegrityError | sqlite3.ProgrammingError):
                        self._fail(error)
                        return
                    if not self._keep_for_later(ops, _cause(self.path, error), retry):  # type: ignore[arg-type]
                        return
                    retry = min(retry * 2, RETRY_MAX_SECONDS)
                    continue
                except sqlite3.Error as error:
                    self._fail(error)
                    return
                retry = RETRY_FIRST_SECONDS
                with self._changed:
                    if self.trouble is not None:
                        logger.warning("Writes to %s succeed again: the scheduler goes on", self.path)
                        self.trouble = None
                    self.committed = ticket
                    self._changed.notify_all()
        finally:
            connection.close()

    def _keep_for_later(self, ops: list[Op], cause: str, retry: float) -> bool:
        """Put a transaction that could not be written back at the front, say why once, and wait a little;
        False if the store is closing (the transaction then stays unsaved)."""
        with self._changed:
            if self.trouble is None:
                logger.error("%s: the scheduler takes no changes until it can save them again", cause)
            self.trouble = cause
            self._queue[:0] = ops
            self._changed.notify_all()
            self._changed.wait_for(lambda: self._closing, retry)
            if self._closing:
                logger.error("%s: %d change(s) were not saved before the scheduler stopped", cause, len(ops))
                return False
            return True

    def _fail(self, error: sqlite3.Error) -> None:
        logger.error("The scheduler could not write its state to %s: %s", self.path, error)
        with self._changed:
            self._failure = f"the scheduler could not write its state to {self.path}: {error}"
            self._changed.notify_all()

    @staticmethod
    def _apply(connection: sqlite3.Connection, ops: list[Op]) -> None:
        connection.execute("BEGIN")
        try:
            for kind, rows in _grouped(ops):
                if kind == "purge":
                    for statement in _PURGE:
                        connection.executemany(statement, rows)
                else:
                    if kind in _SERIALIZED:
                        rows = [(*row[:-1], row[-1].SerializeToString()) for row in rows]
                    connection.executemany(_STATEMENTS[kind], rows)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:  # SQLite may have rolled it back already (a full disk does)
                connection.execute("ROLLBACK")
            raise
