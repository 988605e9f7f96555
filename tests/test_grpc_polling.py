"""gRPC's I/O polled by the threads that wait for it: set when the package is imported, and in effect."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import grpc
import pytest

from monitoring import settings

# Starts an in-memory scheduler in this process, makes CALLS unary calls to it and prints how often
# EventEngine's threads were woken meanwhile (their voluntary context switches, from /proc).
PROBE = """
import glob, json, os, sys
import monitoring
from monitoring.scheduler.server import LocalScheduler
import grpc
from durabletask.internal import orchestrator_service_pb2_grpc as stubs
from google.protobuf import empty_pb2

def engine_wakeups():
    total = 0
    for task in glob.glob(f"/proc/{os.getpid()}/task/*"):
        try:
            if open(task + "/comm").read().strip() == "event_engine":
                status = open(task + "/status").read()
                total += int(status.split("voluntary_ctxt_switches:")[1].split()[0])
        except OSError:
            pass
    return total

scheduler = LocalScheduler(0, state=None).start()
with grpc.insecure_channel(f"127.0.0.1:{scheduler.port}") as channel:
    stub = stubs.TaskHubSidecarServiceStub(channel)
    stub.Hello(empty_pb2.Empty())
    before = engine_wakeups()
    for _ in range(int(sys.argv[1])):
        stub.Hello(empty_pb2.Empty())
    after = engine_wakeups()
scheduler.stop()
print(json.dumps({"experiments": os.environ.get("GRPC_EXPERIMENTS"), "wakeups": after - before}))
"""
CALLS = 1000


def run_probe(environ: dict[str, str]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(CALLS)], env=environ, capture_output=True, text=True, check=True
    )
    assert "Unknown experiment" not in done.stderr, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_installed_grpcio_is_a_release_the_experiment_names_were_checked_against() -> None:
    # requirements.txt pins grpcio; after an upgrade, check the names still exist and extend the list.
    assert settings._grpcio_version() == grpc.__version__
    assert grpc.__version__.startswith(settings.GRPC_POLLING_RELEASES)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts thread wake-ups in /proc")
def test_importing_the_package_keeps_grpc_io_off_eventengine_threads() -> None:
    environ = {k: v for k, v in os.environ.items() if k != settings.GRPC_EXPERIMENTS_ENV}
    ours = run_probe(environ)
    grpc_default = run_probe({**environ, settings.GRPC_EXPERIMENTS_ENV: ""})  # someone's own: left alone
    assert ours["experiments"] == settings.GRPC_POLLING_EXPERIMENTS
    assert grpc_default["experiments"] == ""
    # With EventEngine reading the sockets, every call wakes its threads (both ends are in the probe: about
    # six times a call); without, they wake only for their own timers, more often the longer the probe runs.
    assert grpc_default["wakeups"] >= CALLS  # type: ignore[operator]
    assert ours["wakeups"] < grpc_default["wakeups"] / 10  # type: ignore[operator]


@pytest.fixture
def before_grpc(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """As in a process that has not imported grpc yet, on the pinned release."""
    monkeypatch.delitem(sys.modules, "grpc")
    monkeypatch.setattr(settings, "_grpcio_version", lambda: "1.85.1")
    return monkeypatch


def test_the_variable_is_set_before_grpc_is_imported(before_grpc: pytest.MonkeyPatch) -> None:
    environ: dict[str, str] = {}
    assert settings.prefer_grpc_polling(environ)
    assert environ == {"GRPC_EXPERIMENTS": "-event_engine_client,-event_engine_listener"}


@pytest.mark.parametrize("theirs", ["", "-some_experiment"])
def test_a_variable_someone_set_is_left_alone(before_grpc: pytest.MonkeyPatch, theirs: str) -> None:
    environ = {"GRPC_EXPERIMENTS": theirs}
    assert not settings.prefer_grpc_polling(environ)
    assert environ == {"GRPC_EXPERIMENTS": theirs}


@pytest.mark.parametrize("version", ["1.86.0", "2.0.0", None])
def test_an_unchecked_grpcio_release_is_left_alone(
    before_grpc: pytest.MonkeyPatch, version: str | None
) -> None:
    before_grpc.setattr(settings, "_grpcio_version", lambda: version)
    environ: dict[str, str] = {}
    assert not settings.prefer_grpc_polling(environ)
    assert environ == {}


@pytest.mark.parametrize("error", [OSError("unreadable"), UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad")])
def test_an_unreadable_grpcio_install_is_left_alone(
    before_grpc: pytest.MonkeyPatch, error: Exception
) -> None:
    def unreadable() -> str:
        raise error

    before_grpc.setattr(settings, "_grpcio_version", unreadable)
    environ: dict[str, str] = {}
    assert not settings.prefer_grpc_polling(environ)
    assert environ == {}


def test_nothing_is_set_once_grpc_is_imported() -> None:
    assert "grpc" in sys.modules
    environ: dict[str, str] = {}
    assert not settings.prefer_grpc_polling(environ)
    assert environ == {}
