"""Which worker runs where (``monitoring.runtime.worker_choice``), and what happens when the fast path fails.

Real schedulers on free loopback ports: the project's own (which announces itself in its ``Hello`` answer)
and the SDK's in-memory backend served the same way (which does not, as the DTS emulator and Azure do not).
The fast path's failures are provoked by replacing one of its own functions with one that raises: that is
the failure the fallback exists for (an SDK release that renamed what the fast path reads).
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from durabletask.azuremanaged.worker import DurableTaskSchedulerWorker
from durabletask.testing import InMemoryOrchestrationBackend

from conftest import new_job_id
from monitoring import sdk_range
from monitoring.client.monitors import MonitorClient
from monitoring.core.models import MonitorRequest
from monitoring.core.predict import predict
from monitoring.runtime import work_loop, worker_choice
from monitoring.runtime.connection import local_connection
from monitoring.runtime.warm_replay import WarmReplays
from monitoring.runtime.work_loop import LeanWorker
from monitoring.scheduler.server import LocalScheduler
from monitoring.worker import SupervisedWorker, create_worker, receiving

ROOT = Path(__file__).resolve().parent.parent
WAIT = 120  # a hang guard: every wait returns as soon as the state it waits for is observed


@pytest.fixture(autouse=True)
def fast_path_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with the fast path on (a failure in one test must not decide the next)."""
    monkeypatch.setattr(worker_choice, "_failure", None)
    monkeypatch.delenv("MONITORING_WORKER", raising=False)


@pytest.fixture
def ours() -> Iterator[LocalScheduler]:
    with LocalScheduler(0) as scheduler:
        yield scheduler


@pytest.fixture
def foreign() -> Iterator[LocalScheduler]:
    """A scheduler that does not announce itself: the SDK's own in-memory backend."""
    with LocalScheduler(0, servicer=InMemoryOrchestrationBackend()) as scheduler:
        yield scheduler


def run_monitor(address: str, worker: DurableTaskSchedulerWorker, **fields: Any) -> None:
    """Run one monitor of the simulated job on ``worker`` and check its result against the prediction."""
    request = MonitorRequest(
        job_id=new_job_id(),
        polling_interval_seconds=0.1,
        timeout_seconds=30,
        job_duration_seconds=0.3,
        **fields,
    )
    expected = predict(request)
    worker.start()
    try:
        with MonitorClient(local_connection(address)) as monitors:
            instance = monitors.start(request)
            done = monitors.wait_for(instance, lambda snapshot: snapshot.is_terminal, timeout=WAIT)
    finally:
        worker.stop()
    assert done.runtime_status == "Completed", done.failure
    assert done.result is not None
    assert (done.result.final_status, done.result.checks_performed) == (
        expected.final_status,
        expected.checks_performed,
    )


# --- the declared range -----------------------------------------------------------------------------------


def test_pyproject_declares_the_range_the_package_checks_and_requirements_pin_a_verified_release() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    for package in sdk_range.PACKAGES:
        assert f'    "{package}{sdk_range.SUPPORTED_TEXT}",\n' in pyproject
        pinned = re.search(rf"^{package}==(\S+)$", (ROOT / "requirements.txt").read_text(), re.MULTILINE)
        assert pinned is not None and pinned.group(1) in sdk_range.FAST_PATH_VERIFIED
    low, high = sdk_range.SUPPORTED
    assert f">={low[0]}.{low[1]},<{high[0]}.{high[1]}" == sdk_range.SUPPORTED_TEXT
    assert low <= sdk_range.release(sdk_range.OLDEST) < high


@pytest.mark.parametrize(
    ("version", "release"),
    [("1.12.0", (1, 12, 0)), ("1.13.0b1", (1, 13, 0)), ("1.10", (1, 10)), ("2.0.0.post1", (2, 0, 0))],
)
def test_a_release_is_read_from_its_version(version: str, release: tuple[int, ...]) -> None:
    assert sdk_range.release(version) == release


def fake_sdk(folder: Path, version: str) -> dict[str, str]:
    """An environment whose installed SDK, as package metadata says, is ``version`` (nothing else changes)."""
    for package in ("durabletask", "durabletask_azuremanaged"):
        info = folder / f"{package}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n")
    return {**os.environ, "PYTHONPATH": str(folder)}


@pytest.mark.parametrize("version", ["1.9.0", "1.13.0"])
def test_an_sdk_outside_the_range_is_one_line_and_exit_2(tmp_path: Path, version: str) -> None:
    env = fake_sdk(tmp_path, version)
    done = subprocess.run(
        [sys.executable, "-m", "monitoring", "worker"], env=env, capture_output=True, text=True, timeout=WAIT
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: durabletask {version} is installed; this package supports durabletask>=1.10,<1.13 "
        "(pip install -r requirements.txt installs the tested release)"
    ]
    library = subprocess.run(
        [sys.executable, "-c", "import monitoring.worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert "UnsupportedSdkError: durabletask " + version in library.stderr


# --- the choice -------------------------------------------------------------------------------------------


def test_our_scheduler_announces_itself_and_gets_the_fast_path(ours: LocalScheduler) -> None:
    choice = worker_choice.choose_worker(local_connection(ours.address))
    assert choice.fast, choice.reason
    assert "is this project's scheduler" in choice.reason
    worker = create_worker(local_connection(ours.address))
    assert isinstance(worker, LeanWorker)
    run_monitor(ours.address, worker)
    assert worker.replays.resumed > 0  # the fast path really ran: episodes resumed from kept contexts


def test_a_scheduler_that_does_not_announce_itself_gets_the_sdks_own_worker(foreign: LocalScheduler) -> None:
    connection = local_connection(foreign.address)
    choice = worker_choice.choose_worker(connection)
    assert not choice.fast
    assert choice.reason == f"{foreign.address} does not announce itself as this project's scheduler"
    worker = create_worker(connection)
    assert type(worker) is DurableTaskSchedulerWorker  # the SDK's own class, not a subclass
    run_monitor(foreign.address, worker)


def test_the_setting_forces_either_worker(
    ours: LocalScheduler, foreign: LocalScheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MONITORING_WORKER", "sdk")
    assert type(create_worker(local_connection(ours.address))) is DurableTaskSchedulerWorker
    monkeypatch.setenv("MONITORING_WORKER", "Fast")
    forced = create_worker(local_connection(foreign.address))
    assert isinstance(forced, LeanWorker)
    run_monitor(foreign.address, forced)  # forced onto a scheduler it was not verified on, it still works
    assert type(create_worker(local_connection(ours.address), kind="sdk")) is DurableTaskSchedulerWorker


def test_an_sdk_release_the_fast_path_was_not_verified_on_gets_the_sdks_worker(
    ours: LocalScheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sdk_range, "installed", lambda package="durabletask": "1.11.0")
    choice = worker_choice.choose_worker(local_connection(ours.address))
    assert not choice.fast
    assert (
        choice.reason
        == "durabletask 1.11.0 is supported, but the fast path was verified on 1.10.0, 1.12.0 only"
    )


def test_the_worker_command_says_which_worker_runs_and_why(
    ours: LocalScheduler, foreign: LocalScheduler
) -> None:
    for scheduler, expected in (
        (ours, f"Worker: the fast path (LeanWorker): {ours.address} is this project's scheduler"),
        (
            foreign,
            f"Worker: the SDK's DurableTaskSchedulerWorker: {foreign.address} does not announce itself",
        ),
    ):
        env = {**os.environ, "ENDPOINT": scheduler.address}
        with subprocess.Popen(
            [sys.executable, "-m", "monitoring", "worker"], env=env, stderr=subprocess.PIPE, text=True
        ) as worker:
            assert worker.stderr is not None
            lines = []
            for line in worker.stderr:  # until the worker says it runs
                lines.append(line)
                if line.startswith("Worker running"):
                    break
            worker.send_signal(signal.SIGINT)
            rest, _ = worker.communicate(timeout=WAIT)
        assert worker.returncode in (0, 130), rest  # 130: the signal came before its handler was set
        chosen = [line for line in lines if "Worker: " in line]
        assert len(chosen) == 1 and expected in chosen[0], lines


# --- the fast path's own failures -------------------------------------------------------------------------


def test_an_error_of_warm_replay_reruns_the_item_on_the_sdks_executor_and_turns_the_fast_path_off(
    ours: LocalScheduler, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(self: WarmReplays, request: Any) -> Any:
        raise AttributeError("'_RuntimeOrchestrationContext' object has no attribute '_is_replaying'")

    monkeypatch.setattr(WarmReplays, "execute", broken)
    worker = create_worker(local_connection(ours.address))
    assert isinstance(worker, LeanWorker)
    with caplog.at_level(logging.WARNING, logger="monitoring.sdk"):
        run_monitor(ours.address, worker)  # every check still counted exactly: the SDK's executor ran them
    warnings = [
        record.getMessage() for record in caplog.records if "The fast path failed" in record.getMessage()
    ]
    assert len(warnings) == 1 and "warm replay raised AttributeError" in warnings[0]
    assert worker_choice.fast_path_failure() is not None
    later = worker_choice.choose_worker(local_connection(ours.address))  # and the process stays on the SDK's
    assert not later.fast and later.reason.startswith("the fast path failed earlier in this process")


def test_an_error_of_the_receiving_loop_hands_over_to_the_sdks_loop(
    ours: LocalScheduler, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    dispatched: list[str] = []
    original = work_loop._Loop._dispatch
    ours_only: list[object] = []  # the patch is the class's: a loop of an earlier test's worker must pass

    def breaks_once(self: Any, item: Any, stub: Any, channel: Any) -> None:
        if self.worker not in ours_only:
            return original(self, item, stub, channel)
        dispatched.append(item.WhichOneof("request"))
        if len(dispatched) == 1:
            raise TypeError("WorkItem.WhichOneof() got an unexpected keyword argument")
        original(self, item, stub, channel)

    monkeypatch.setattr(work_loop._Loop, "_dispatch", breaks_once)
    sdk_loops: list[object] = []
    sdk_loop = DurableTaskSchedulerWorker._async_run_loop

    async def counted(self: Any) -> None:
        sdk_loops.append(self)
        await sdk_loop(self)

    monkeypatch.setattr(DurableTaskSchedulerWorker, "_async_run_loop", counted)
    worker = create_worker(local_connection(ours.address))
    ours_only.append(worker)
    with caplog.at_level(logging.WARNING, logger="monitoring.sdk"):
        run_monitor(ours.address, worker)  # the item the fast loop dropped is handed out again, and run
    assert dispatched[:1] == ["orchestratorRequest"] and len(dispatched) == 1  # the fast loop took no more
    assert sdk_loops == [worker]
    warnings = [
        record.getMessage() for record in caplog.records if "The fast path failed" in record.getMessage()
    ]
    assert len(warnings) == 1 and "the receiving loop raised TypeError" in warnings[0]


def test_a_dead_receiving_thread_is_noticed_and_the_worker_started_again(
    ours: LocalScheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    sdk_loop = DurableTaskSchedulerWorker._async_run_loop
    calls: list[object] = []

    async def dies_first(self: Any) -> None:
        calls.append(self)
        if len(calls) == 1:
            raise RuntimeError("the receiving thread's unexpected end")
        await sdk_loop(self)

    monkeypatch.setattr(DurableTaskSchedulerWorker, "_async_run_loop", dies_first)
    monkeypatch.setattr("threading.excepthook", lambda args: None)  # the dying thread's traceback: expected
    monkeypatch.setenv("MONITORING_WORKER", "sdk")
    connection = local_connection(ours.address)
    supervised = SupervisedWorker(connection)  # what start_worker runs (not it: that is the session's worker)
    try:
        with MonitorClient(connection) as monitors:
            request = MonitorRequest(
                job_id=new_job_id(), polling_interval_seconds=0.1, job_duration_seconds=0.2
            )
            instance = monitors.start(request)
            done = monitors.wait_for(instance, lambda snapshot: snapshot.is_terminal, timeout=WAIT)
        assert done.runtime_status == "Completed" and done.result is not None
        assert done.result.checks_performed == predict(request).checks_performed
        assert len(calls) == 2 and calls[0] is not calls[1]  # a new worker, started by the supervisor
        assert supervised.restarts == 1 and supervised.alive
    finally:
        supervised.stop()
    assert not supervised.alive


def test_the_worker_command_exits_non_zero_when_its_receiving_thread_dies(ours: LocalScheduler) -> None:
    dies = (
        "import sys\n"
        "from durabletask.azuremanaged.worker import DurableTaskSchedulerWorker\n"
        "async def dies(self):\n"
        "    raise RuntimeError('the receiving thread ends')\n"
        "DurableTaskSchedulerWorker._async_run_loop = dies\n"
        "from monitoring.cli import main\n"
        "sys.exit(main(['worker']))\n"
    )
    env = {**os.environ, "ENDPOINT": ours.address, "MONITORING_WORKER": "sdk"}
    done = subprocess.run([sys.executable, "-c", dies], env=env, capture_output=True, text=True, timeout=WAIT)
    assert done.returncode == 1
    assert "error: the worker's receiving thread died (its error is above); exiting" in done.stderr
    assert "Worker stopped" not in done.stderr


def test_receiving_is_false_before_start_and_after_stop(ours: LocalScheduler) -> None:
    worker = create_worker(local_connection(ours.address))
    assert not receiving(worker)
    worker.start()
    assert receiving(worker)
    worker.stop()
    assert not receiving(worker)
