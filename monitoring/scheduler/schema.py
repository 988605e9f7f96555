"""The state file's tables, its schema version, and opening a file safely: a file that is not ours, is of a
newer schema, or cannot be written is refused in one line (and left untouched); an older schema is
migrated forward explicitly, after a copy of the file is kept beside it."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger("monitoring.scheduler.store")

SCHEMA_VERSION = 2
TABLES_V1 = """
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
# Schema 2: sub-orchestrations know their parent; durable entities, their waiting operations (and delayed
# signals, visible later) and the lock requests of orchestrations waiting to enter a critical section.
TABLES_V2_ADDED = """
CREATE TABLE IF NOT EXISTS entities (
    entity_id TEXT PRIMARY KEY, state TEXT, modified REAL NOT NULL, locked_by TEXT, lock_owner TEXT);
CREATE TABLE IF NOT EXISTS entity_ops (
    id INTEGER PRIMARY KEY, entity_id TEXT NOT NULL, visible_at REAL NOT NULL, event BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS entity_ops_by_entity ON entity_ops (entity_id);
CREATE TABLE IF NOT EXISTS lock_requests (
    id INTEGER PRIMARY KEY, section TEXT NOT NULL, owner TEXT NOT NULL, entities TEXT NOT NULL);
"""
PARENT_COLUMNS = ("parent_id TEXT", "parent_execution INTEGER", "parent_task INTEGER")


class StateFileError(RuntimeError):
    """The state file cannot be used; the message names it and says what to do."""


def _tables(connection: sqlite3.Connection) -> set[str]:
    return {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _run(connection: sqlite3.Connection, script: str) -> None:
    """Each statement of ``script`` inside the caller's transaction (``executescript`` would commit it)."""
    for statement in script.split(";"):
        if statement.strip():
            connection.execute(statement)


def _create(connection: sqlite3.Connection) -> None:
    """A new file: schema 1, then every migration (so each migration runs on every new file too)."""
    _run(connection, TABLES_V1)
    connection.execute("INSERT INTO meta VALUES ('schema', '1')")
    for step in range(1, SCHEMA_VERSION):
        MIGRATIONS[step](connection)


def _migrate_1_to_2(connection: sqlite3.Connection) -> None:
    for column in PARENT_COLUMNS:
        connection.execute(f"ALTER TABLE instances ADD COLUMN {column}")
    _run(connection, TABLES_V2_ADDED)


MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _migrate_1_to_2}  # from version n to n+1


def _version(connection: sqlite3.Connection, path: Path) -> int | None:
    """The file's schema version; None for a new, empty file."""
    tables = _tables(connection)
    if not tables:
        return None
    found = (
        connection.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if "meta" in tables
        else None
    )
    if found is None or not str(found[0]).isdigit():
        raise StateFileError(
            f"{path} is a SQLite file, but not a scheduler's state file (it has no schema version): "
            "move it away, or start the scheduler with --in-memory"
        )
    return int(found[0])


def _refuse(path: Path, error: sqlite3.Error) -> StateFileError:
    message = str(error)
    if "not a database" in message or "malformed" in message:
        return StateFileError(
            f"{path} is not a scheduler state file (SQLite: {message}): move it away "
            "(the scheduler then starts a new one), or start it with --in-memory"
        )
    # A WAL file in a read-only folder cannot even be opened (SQLite: "unable to open database file").
    if "readonly" in message or "read-only" in message or not _writable(path):
        return StateFileError(
            f"{path} cannot be written (SQLite: {message}): make it and its folder writable, "
            "or start the scheduler with --in-memory"
        )
    return StateFileError(f"cannot use {path} as the scheduler's state (SQLite: {message})")


def _writable(path: Path) -> bool:
    """True if ``path`` (if it exists) and its folder (where SQLite keeps the -wal and -shm) are writable."""
    return (not path.exists() or os.access(path, os.W_OK)) and os.access(path.parent, os.W_OK)


def open_state_file(path: Path, connect: Callable[[], sqlite3.Connection]) -> None:
    """Make ``path`` a state file of :data:`SCHEMA_VERSION`: create it, migrate it forward, or refuse it
    (:class:`StateFileError`, the file as it was). ``connect`` opens it the way the store does."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StateFileError(f"cannot create the folder of {path}: {error.strerror}") from None
    version = _peek(path) if path.exists() and path.stat().st_size else None
    if version is not None and version > SCHEMA_VERSION:
        raise StateFileError(
            f"{path} was written by a newer version of this project (state schema {version}; this one "
            f"reads up to {SCHEMA_VERSION}): upgrade the project, or move the file away"
        )
    if version is not None and version < SCHEMA_VERSION:
        _back_up(path, version)
    try:
        connection = connect()
    except sqlite3.Error as error:
        raise _refuse(path, error) from None
    try:
        connection.execute("BEGIN IMMEDIATE")
        if version is None:
            _create(connection)
        else:
            for step in range(version, SCHEMA_VERSION):
                MIGRATIONS[step](connection)
        if version != SCHEMA_VERSION:
            connection.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION),))
        connection.execute("COMMIT")
    except sqlite3.Error as error:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise _refuse(path, error) from None
    finally:
        connection.close()
    if version is not None and version < SCHEMA_VERSION:
        logger.warning("Migrated %s from state schema %d to %d", path, version, SCHEMA_VERSION)


def _peek(path: Path) -> int | None:
    """The schema version of an existing file, read without writing to it (nor leaving beside it the empty
    -wal and the -shm that a read-only connection to a WAL file creates and cannot remove)."""
    wal, shm = (path.with_name(f"{path.name}{suffix}") for suffix in ("-wal", "-shm"))
    created = not wal.exists() and not shm.exists()
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return _version(connection, path)
        finally:
            connection.close()
            with contextlib.suppress(OSError):
                if created and wal.stat().st_size == 0:
                    wal.unlink()
                    shm.unlink()
    except sqlite3.Error as error:
        raise _refuse(path, error) from None


def _back_up(path: Path, version: int) -> None:
    """A copy of the file as it was, before it is migrated (``<file>.schema-<n>.bak``)."""
    copy = path.with_name(f"{path.name}.schema-{version}.bak")
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as source, sqlite3.connect(copy) as target:
            source.backup(target)
    except (sqlite3.Error, OSError) as error:
        raise StateFileError(
            f"cannot keep a copy of {path} before migrating it ({error}): nothing changed"
        ) from None
    shutil.copymode(path, copy)
