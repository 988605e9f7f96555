"""Where the local scheduler keeps its state: a SQLite file (durable) or nowhere (in memory, for tests).

The scheduler's working set lives in memory (:mod:`monitoring.backend.hub`); every change it makes is also
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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from durabletask.internal import orchestrator_service_pb2 as pb

logger = logging.getLogger(__name__)

SCHEMA_VERSION = "1"
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS instances (
    instance_id TEXT PRIMARY KEY, name TEXT NOT NULL, version TEXT, status INTEGER NOT NULL,
    input TEXT, output TEXT, custom_status TEXT, failure BLOB, tags TEXT, execution INTEGER NOT NULL,
    created REAL NOT NULL, updated REAL NOT NULL, completed REAL);
CREATE TABLE IF NOT EXISTS history (
    instance_id TEXT NOT NULL, seq INTEGER NOT NULL, event BLOB NOT NULL,
    PRIMARY KEY (instance_id, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, instance_id TEXT NOT NULL, execution INTEGER NOT NULL,
    visible_at REAL NOT NULL, event BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_instance ON events (instance_id);
CREATE TABLE IF NOT EXISTS tasks (
    id INTEGER PRIMARY KEY, instance_id TEXT NOT NULL, execution INTEGER NOT NULL, task_id INTEGER NOT NULL,
    name TEXT NOT NULL, version TEXT, input TEXT);
CREATE INDEX IF NOT EXISTS tasks_by_instance ON tasks (instance_id);
"""

# One change, in the order the hub made it. ("instance", row) writes a whole instances row; "history"
# appends (instance_id, seq, serialized event); "event" inserts (id, instance_id, execution, visible_at,
# event); "task" inserts (id, instance_id, execution, task_id, name, version, input); "event_del"/"task_del"
# take an id; "history_clear", "events_clear", "tasks_clear" and "purge" take an instance id; "meta" (key,
# value).
Op = tuple[Any, ...]

_STATEMENTS = {
    "instance": "INSERT OR REPLACE INTO instances VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
    "history": "INSERT OR REPLACE INTO history VALUES (?,?,?)",
    "event": "INSERT OR REPLACE INTO events VALUES (?,?,?,?,?)",
    "task": "INSERT OR REPLACE INTO tasks VALUES (?,?,?,?,?,?,?)",
    "event_del": "DELETE FROM events WHERE id = ?",
    "task_del": "DELETE FROM tasks WHERE id = ?",
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


# Row writes addressed by a key that is never reused, so between two barriers (the clears, purges and meta
# writes, kept in place) they can run grouped by kind, inserts before deletes, and end in the same state.
_GROUPED = ("instance", "history", "event", "task", "event_del", "task_del")
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
    """The state file cannot be used (another version, unreadable) or a write failed; the message says why."""


@dataclass
class Loaded:
    """Everything a :class:`SqliteStore` holds, as rows, for the hub to rebuild its working set from."""

    meta: dict[str, str] = field(default_factory=dict)
    instances: list[tuple[Any, ...]] = field(default_factory=list)
    history: dict[str, list[bytes]] = field(default_factory=dict)  # serialized events, in order
    events: list[tuple[int, str, int, float, pb.HistoryEvent]] = field(default_factory=list)
    tasks: list[tuple[Any, ...]] = field(default_factory=list)


def _event(blob: bytes) -> pb.HistoryEvent:
    event = pb.HistoryEvent()
    event.ParseFromString(blob)
    return event


class Store:
    """Keeps nothing: the in-memory mode (tests, ``scheduler --in-memory``)."""

    durable = False
    path: Path | None = None

    def load(self) -> Loaded:
        return Loaded()

    def start(self) -> None:
        return None

    def read_history(self, instance_id: str) -> list[pb.HistoryEvent]:
        return []

    def submit(self, ops: Sequence[Op]) -> int:
        return 0

    def wait(self, ticket: int, timeout: float | None = 30.0) -> None:
        return None

    def close(self) -> None:
        return None


class SqliteStore(Store):
    """A SQLite file in WAL mode, written by one thread in transactional batches."""

    durable = True

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._changed = threading.Condition()
        self._queue: list[Op] = []
        self._submitted = 0  # tickets: one per submit, committed in order
        self._committed = 0
        self._failure: str | None = None
        self._closing = False
        self._writer_idle = False  # the writer waits for work: a submit wakes it
        self._waiters = 0  # callers blocked in wait(): the writer commits at once for them
        self._readers = threading.local()
        connection = self._connect()
        try:
            connection.executescript(SCHEMA)
            found = connection.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if found is None:
                connection.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
            elif found[0] != SCHEMA_VERSION:
                raise StoreError(f"{path} has schema {found[0]}, this scheduler writes {SCHEMA_VERSION}")
            connection.commit()
        except sqlite3.DatabaseError as error:
            raise StoreError(f"cannot use {path} as the scheduler's state: {error}") from None
        finally:
            connection.close()
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
            # Only the histories of active instances: an ended one's is read when asked (read_history).
            for instance_id, blob in connection.execute(
                "SELECT h.instance_id, h.event FROM history h JOIN instances i USING (instance_id) "
                f"WHERE i.status NOT IN ({', '.join(str(s) for s in ENDED)}) ORDER BY h.instance_id, h.seq"
            ):
                loaded.history.setdefault(instance_id, []).append(blob)
            loaded.events = [
                (row[0], row[1], row[2], row[3], _event(row[4]))
                for row in connection.execute("SELECT * FROM events ORDER BY visible_at, id")
            ]
            loaded.tasks = connection.execute("SELECT * FROM tasks ORDER BY id").fetchall()
        except sqlite3.DatabaseError as error:
            raise StoreError(f"cannot read the scheduler's state in {self.path}: {error}") from None
        finally:
            connection.close()
        return loaded

    def read_history(self, instance_id: str) -> list[pb.HistoryEvent]:
        """An instance's history as committed (a connection per reading thread: sqlite3's rule)."""
        connection = getattr(self._readers, "connection", None)
        if connection is None:
            connection = self._readers.connection = sqlite3.connect(self.path, timeout=10)
        rows = connection.execute(
            "SELECT event FROM history WHERE instance_id = ? ORDER BY seq", (instance_id,)
        )
        return [_event(blob) for (blob,) in rows]

    def submit(self, ops: Sequence[Op]) -> int:
        """Queue ``ops`` (one consistent step) for the writer; returns a ticket for :meth:`wait`."""
        with self._changed:
            self._queue.extend(ops)
            self._submitted += 1
            if self._writer_idle:
                self._changed.notify_all()
            return self._submitted

    def wait(self, ticket: int, timeout: float | None = 30.0) -> None:
        """Block until the step with ``ticket`` (and every one before it) is committed."""
        with self._changed:
            self._waiters += 1
            self._changed.notify_all()  # the writer stops gathering
            try:
                committed = self._changed.wait_for(
                    lambda: self._committed >= ticket or self._failure is not None or self._stopped(), timeout
                )
            finally:
                self._waiters -= 1
            if not committed:
                raise StoreError(f"the scheduler's state file did not commit within {timeout} s")
            if self._committed < ticket:
                raise StoreError(self._failure or "the scheduler is stopping: the change was not saved")

    def _stopped(self) -> bool:
        return self._thread is None or not self._thread.is_alive()

    def close(self) -> None:
        """Commit what is queued, then stop the writer."""
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
        try:
            while True:
                with self._changed:
                    self._writer_idle = True
                    self._changed.wait_for(
                        lambda: self._queue or self._submitted > self._committed or self._closing
                    )
                    self._writer_idle = False
                    # A busy hub's steps gather into one transaction, unless someone waits for a commit.
                    self._changed.wait_for(lambda: self._waiters or self._closing, GATHER_SECONDS)
                    if not self._queue and self._submitted == self._committed and self._closing:
                        self._changed.notify_all()
                        return
                    ops, self._queue = self._queue, []
                    ticket = self._submitted
                try:
                    if ops:
                        self._apply(connection, ops)
                except sqlite3.Error as error:
                    logger.error("The scheduler could not write its state to %s: %s", self.path, error)
                    with self._changed:
                        self._failure = f"the scheduler could not write its state to {self.path}: {error}"
                        self._changed.notify_all()
                    return  # writing on would leave a gap in the file: stop, and let callers see the failure
                with self._changed:
                    self._committed = ticket
                    self._changed.notify_all()
        finally:
            connection.close()

    @staticmethod
    def _apply(connection: sqlite3.Connection, ops: list[Op]) -> None:
        connection.execute("BEGIN")
        try:
            for kind, rows in _grouped(ops):
                if kind == "purge":
                    for statement in _PURGE:
                        connection.executemany(statement, rows)
                else:
                    if kind == "event":
                        rows = [(*row[:-1], row[-1].SerializeToString()) for row in rows]
                    connection.executemany(_STATEMENTS[kind], rows)
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
