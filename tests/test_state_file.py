"""The local scheduler's SQLite state file, with real processes (``python -m monitoring scheduler``).

A file it cannot use (not a database, someone else's SQLite file, a newer schema, one it cannot write) is
refused in one line (``error: ...``, exit code 2) and left as it was; a schema-1 file is migrated after a
copy of it is kept beside it; a full disk makes the scheduler refuse changes (gRPC UNAVAILABLE, naming the
disk) and it goes on by itself, nothing it acknowledged lost, once the disk has room again.

The read-only and full-disk cases run the scheduler in a mount namespace of its own (``unshare -rm``) on a
small tmpfs; the test reaches that namespace's files through ``/proc/<pid>/root`` (and reads the state file
with SQLite through ``nsenter``). Every wait is for an observed state; the limits only guard against hangs.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from durabletask import task
from durabletask.client import OrchestrationState, OrchestrationStatus
from durabletask.internal import orchestrator_service_pb2 as pb
from sdk_backends import TASKHUB, Registry, new_client, new_worker
from test_scheduler import free_port

from monitoring.scheduler import process, schema
from monitoring.scheduler.server import probe
from monitoring.scheduler.store import SqliteStore

WAIT = 60  # a hang guard
SCHEDULER = [sys.executable, "-m", "monitoring", "scheduler"]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def state_file_of_ours(path: Path) -> Path:
    """A real state file of the current schema, written and closed the way the scheduler does it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    SqliteStore(path).close()
    return path


def meta_schema(path: Path) -> str:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0]


def run_scheduler(state_dir: Path, port: int) -> subprocess.CompletedProcess[str]:
    """The scheduler CLI on ``port`` with its state in ``state_dir``, expected to exit (it is killed after
    the hang guard if it serves instead)."""
    return subprocess.run(
        [*SCHEDULER, "--port", str(port)],
        env={**os.environ, "MONITORING_STATE_DIR": str(state_dir)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=WAIT,
    )


def refusal(result: subprocess.CompletedProcess[str]) -> str:
    """The one ``error: ...`` line of a scheduler that refused to start."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert result.stdout == ""
    return lines[0]


def only_file_in(folder: Path) -> str:
    """The name of the only file in ``folder`` (no -wal, -shm or anything else beside it)."""
    names = sorted(os.listdir(folder))
    assert len(names) == 1, names
    return names[0]


# --- files it refuses ------------------------------------------------------------------------------------


def test_a_file_that_is_not_a_database_is_refused_in_one_line_and_left_as_it_was(tmp_path: Path) -> None:
    port = free_port()
    path = process.state_file(port, TASKHUB, tmp_path)
    path.write_bytes(b"not SQLite: " + os.urandom(8192))
    before = digest(path)
    line = refusal(run_scheduler(tmp_path, port))
    assert line.startswith(f"error: {path} is not a scheduler state file (SQLite: file is not a database): ")
    assert line.endswith("move it away (the scheduler then starts a new one), or start it with --in-memory")
    assert digest(path) == before
    assert only_file_in(tmp_path) == path.name  # no -wal or -shm beside it


def test_someone_elses_sqlite_file_is_refused_in_one_line_and_left_as_it_was(tmp_path: Path) -> None:
    port = free_port()
    path = process.state_file(port, TASKHUB, tmp_path)
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)")
        db.execute("INSERT INTO notes (text) VALUES ('buy milk')")
    before = digest(path)
    line = refusal(run_scheduler(tmp_path, port))
    assert line == (
        f"error: {path} is a SQLite file, but not a scheduler's state file (it has no schema version): "
        "move it away, or start the scheduler with --in-memory"
    )
    assert digest(path) == before
    assert only_file_in(tmp_path) == path.name


def test_a_state_file_of_a_newer_schema_is_refused_in_one_line_and_left_as_it_was(tmp_path: Path) -> None:
    port = free_port()
    path = state_file_of_ours(process.state_file(port, TASKHUB, tmp_path))
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
    before = digest(path)
    line = refusal(run_scheduler(tmp_path, port))
    assert line == (
        f"error: {path} was written by a newer version of this project (state schema 99; this one reads up "
        f"to {schema.SCHEMA_VERSION}): upgrade the project, or move the file away"
    )
    assert digest(path) == before
    assert only_file_in(tmp_path) == path.name  # the read-only look at it leaves no -wal or -shm
    assert meta_schema(path) == "99"


# --- in a mount namespace of its own ---------------------------------------------------------------------


def mount_namespace_or_skip(folder: Path) -> None:
    """Skip unless ``unshare -rm`` can mount a tmpfs on ``folder`` here (util-linux; CI installs it)."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare is missing (util-linux): it runs the scheduler on a tmpfs of its own")
    tried = subprocess.run(
        ["unshare", "-rm", "sh", "-c", 'mount -t tmpfs -o size=1m tmpfs "$1"', "sh", str(folder)],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    if tried.returncode != 0:
        pytest.skip(f"unshare -rm cannot mount a tmpfs here: {tried.stderr.strip()}")


def test_a_state_file_it_cannot_write_is_refused_in_one_line(tmp_path: Path) -> None:
    port = free_port()
    good = state_file_of_ours(process.state_file(port, TASKHUB, tmp_path / "good"))
    before = digest(good)
    folder = tmp_path / "read-only"
    folder.mkdir()
    path = process.state_file(port, TASKHUB, folder)
    if os.geteuid() == 0:  # root writes through chmod: a read-only mount, in a mount namespace of its own
        mount_namespace_or_skip(folder)
        script = (
            'mount -t tmpfs -o size=4m tmpfs "$1" && cp "$2" "$1"/ && mount -o remount,ro "$1" '
            '&& exec "$3" -m monitoring scheduler --port "$4"'
        )
        result = subprocess.run(
            ["unshare", "-rm", "sh", "-c", script, "sh", str(folder), str(good), sys.executable, str(port)],
            env={**os.environ, "MONITORING_STATE_DIR": str(folder)},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=WAIT,
        )
        assert os.listdir(folder) == [], "the mount stayed in the namespace"
    else:
        shutil.copy2(good, path)
        path.chmod(0o444)
        folder.chmod(0o555)
        try:
            result = run_scheduler(folder, port)
        finally:
            folder.chmod(0o755)
            path.chmod(0o644)
        assert digest(path) == before
    line = refusal(result)
    assert line.startswith(f"error: {path} cannot be written (SQLite: "), line
    assert line.endswith("): make it and its folder writable, or start the scheduler with --in-memory")
    assert digest(good) == before


# --- migration -------------------------------------------------------------------------------------------


def test_a_schema_1_file_is_migrated_after_a_copy_of_it_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MONITORING_STATE_DIR", str(tmp_path))
    port = free_port()
    path = process.state_file(port, TASKHUB)
    instance_id = f"legacy-{uuid.uuid4().hex[:8]}"
    output = json.dumps({"checks": 3, "final_status": "Completed"})
    now = time.time()
    row = (instance_id, "legacy_orchestrator", None, pb.ORCHESTRATION_STATUS_COMPLETED, json.dumps("in"))
    row += (output, None, None, None, 1, now - 60, now - 30, now - 30)
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("PRAGMA journal_mode=WAL")  # as the scheduler kept it
        db.executescript(schema.TABLES_V1)
        db.execute("INSERT INTO meta VALUES ('schema', '1')")
        db.execute("INSERT INTO instances VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", row)

    process.spawn_scheduler_process(port)
    try:
        client = new_client(f"http://127.0.0.1:{port}")
        try:
            state = client.get_orchestration_state(instance_id)
        finally:
            client.close()
    finally:
        stopped = process.stop_scheduler_process(port)
    assert stopped, "the scheduler process ran until it was stopped"
    assert state is not None and state.name == "legacy_orchestrator"
    assert state.runtime_status == OrchestrationStatus.COMPLETED
    assert state.serialized_output == output

    backup = path.with_name(f"{path.name}.schema-1.bak")
    assert meta_schema(backup) == "1"
    with contextlib.closing(sqlite3.connect(f"file:{backup}?mode=ro", uri=True)) as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert tables == {"meta", "instances", "history", "events", "tasks"}  # schema 1's
        assert db.execute("SELECT * FROM instances").fetchall() == [row]
    assert meta_schema(path) == str(schema.SCHEMA_VERSION) == "2"
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        assert db.execute("SELECT * FROM instances").fetchall() == [(*row, None, None, None)]
    log = (tmp_path / f"scheduler-{port}.log").read_text()
    assert f"Migrated {path} from state schema 1 to 2" in log
    assert "Traceback" not in log


# --- a full disk -----------------------------------------------------------------------------------------

registry = Registry()


@registry.orchestrator
def waits_for_go(ctx: task.OrchestrationContext, _: Any) -> Any:
    value = yield ctx.wait_for_external_event("go")
    return value


@registry.orchestrator
def echo(ctx: task.OrchestrationContext, value: Any) -> Any:
    return value


@dataclass
class Contained:
    """A scheduler process in a mount namespace of its own, its state folder on a small tmpfs."""

    process: subprocess.Popen[bytes]
    port: int
    state_file: Path  # as the scheduler names it
    log: Path

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reach(self, path: Path) -> Path:
        """``path`` in the scheduler's mount namespace, as this process reaches it."""
        return Path(f"/proc/{self.process.pid}/root{path}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(WAIT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


def until(done: Callable[[], Any], what: str, limit: float = WAIT) -> Any:
    deadline = time.monotonic() + limit
    while not (result := done()):
        assert time.monotonic() < deadline, f"not within {limit} s: {what}"
        time.sleep(0.05)
    return result


@contextlib.contextmanager
def scheduler_on_a_small_disk(tmp_path: Path, size: str) -> Iterator[Contained]:
    """The scheduler CLI with its state folder on a tmpfs of ``size``, mounted in its own namespace."""
    folder = tmp_path / "state"
    folder.mkdir()
    mount_namespace_or_skip(folder)
    if shutil.which("nsenter") is None:
        pytest.skip("nsenter is missing (util-linux): it reads the state file in the scheduler's namespace")
    port = free_port()
    log = tmp_path / "scheduler.log"
    script = f'mount -t tmpfs -o size={size} tmpfs "$1" && exec "$2" -m monitoring scheduler --port "$3"'
    with open(log, "wb") as output:
        child = subprocess.Popen(
            ["unshare", "-rm", "sh", "-c", script, "sh", str(folder), sys.executable, str(port)],
            env={**os.environ, "MONITORING_STATE_DIR": str(folder)},
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    contained = Contained(child, port, process.state_file(port, TASKHUB, folder), log)
    try:
        until(lambda: child.poll() is not None or probe(contained.address, timeout=0.5), "it answers")
        assert child.poll() is None, log.read_text(errors="replace")
        yield contained
    finally:
        contained.stop()


def fill(path: Path) -> int:
    """Write ``path`` until its disk has no room left; returns how many bytes that took."""
    written = 0
    with open(path, "wb", buffering=0) as filler:
        while True:
            try:
                written += filler.write(b"\xa5" * 65536) or 0
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
                return written


def unavailable(error: grpc.RpcError) -> str:
    """The details of an UNAVAILABLE answer (any other answer fails the test)."""
    code, details = error.code(), str(error.details())  # type: ignore[attr-defined]
    assert code == grpc.StatusCode.UNAVAILABLE, (code, details)
    return details


def completed(client: Any, instance_id: str) -> OrchestrationState:
    state = client.wait_for_orchestration_completion(instance_id, timeout=WAIT)
    assert state is not None and state.runtime_status == OrchestrationStatus.COMPLETED, (instance_id, state)
    return state


def committed_as_completed(scheduler: Contained, instance_ids: list[str]) -> bool:
    """True once the state file itself shows every one of ``instance_ids`` completed (read in the scheduler's
    mount namespace: SQLite resolves the ``/proc/<pid>/root`` link, which would lead it to this one's)."""
    read = (
        "import json, sqlite3, sys; db = sqlite3.connect(f'file:{sys.argv[1]}?mode=ro', uri=True); "
        "print(json.dumps(dict(db.execute('SELECT instance_id, status FROM instances'))))"
    )
    inside = [
        "nsenter",
        "--preserve-credentials",
        "--target",
        str(scheduler.process.pid),
        "--user",
        "--mount",
    ]
    found = subprocess.run(
        [*inside, sys.executable, "-c", read, str(scheduler.state_file)],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert found.returncode == 0, found.stderr
    rows = json.loads(found.stdout)
    return all(rows.get(i) == pb.ORCHESTRATION_STATUS_COMPLETED for i in instance_ids)


def test_a_full_disk_refuses_changes_naming_it_and_the_scheduler_resumes_by_itself(tmp_path: Path) -> None:
    with scheduler_on_a_small_disk(tmp_path, "8m") as scheduler:
        state_file = scheduler.reach(scheduler.state_file)
        assert state_file.exists() and not scheduler.state_file.exists(), "its state is on a tmpfs of its own"
        full = f"the disk holding {scheduler.state_file} is full"
        worker = new_worker(scheduler.address, registry)
        worker.start()
        client = new_client(scheduler.address)
        try:
            prefix = f"disk-{uuid.uuid4().hex[:8]}"
            first = client.schedule_new_orchestration(waits_for_go, instance_id=f"{prefix}-first")
            started = client.wait_for_orchestration_start(first, timeout=WAIT)
            assert started is not None and started.runtime_status == OrchestrationStatus.RUNNING

            filler = scheduler.reach(scheduler.state_file.parent / "filler")
            assert fill(filler) > 0
            # Starts the scheduler acknowledged before a write found the disk full, then the first it did not.
            acknowledged: list[str] = []
            deadline = time.monotonic() + WAIT
            while True:
                instance_id = f"{prefix}-echo-{len(acknowledged)}"
                try:
                    client.schedule_new_orchestration(echo, input=instance_id, instance_id=instance_id)
                except grpc.RpcError as error:
                    details = unavailable(error)
                    break
                acknowledged.append(instance_id)
                assert time.monotonic() < deadline, "a write never failed on the full disk"
            refusing = f"{full}: the scheduler takes no changes until it can save them again"
            held: list[str] = []
            refused = [f"{prefix}-refused"]
            if details == f"{full}: the change is not saved yet":
                held.append(instance_id)  # its own write found the disk full: kept, saved once it has room
            else:
                assert details == refusing, details  # a worker's write found it first: nothing of it is kept
                refused.append(instance_id)
            # While the disk is full, every change is refused at once, and nothing of it is kept.
            with pytest.raises(grpc.RpcError) as raised_early:
                client.raise_orchestration_event(first, "go", data="too early")
            assert unavailable(raised_early.value) == refusing
            with pytest.raises(grpc.RpcError) as started_then:
                client.schedule_new_orchestration(echo, input="never", instance_id=f"{prefix}-refused")
            assert unavailable(started_then.value) == refusing

            filler.unlink()

            # Nothing restarts: the scheduler finds by itself that writes succeed again.
            def raised() -> bool:
                try:
                    client.raise_orchestration_event(first, "go", data={"after": "the disk had room"})
                except grpc.RpcError as error:
                    assert full in unavailable(error)
                    return False
                return True

            until(raised, "the scheduler takes changes again")
            assert completed(client, first).serialized_output == json.dumps({"after": "the disk had room"})
            after = client.schedule_new_orchestration(echo, input="after", instance_id=f"{prefix}-after")
            assert completed(client, after).serialized_output == json.dumps("after")
            for instance_id in [*acknowledged, *held]:
                assert completed(client, instance_id).serialized_output == json.dumps(instance_id)
            for instance_id in refused:
                assert client.get_orchestration_state(instance_id) is None, instance_id
            every = [first, after, *acknowledged, *held]
            until(lambda: committed_as_completed(scheduler, every), "the state file holds every end")
        finally:
            client.close()
            worker.stop()
        assert scheduler.stop() == 0
    log = scheduler.log.read_text(errors="replace")
    assert "Traceback" not in log, log
    assert f"{full}: the scheduler takes no changes until it can save them again" in log
    assert f"Writes to {scheduler.state_file} succeed again: the scheduler goes on" in log
