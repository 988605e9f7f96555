"""``python -m monitoring`` as a person runs it: real processes, real signals, the default ports.

Tests that need the defaults (no ``ENDPOINT``, so the local scheduler's port 8080) run the CLI in a private
network namespace (``tests/netns.py``), where port 8080 is free and nothing leaks out. The others point the
CLI at a scheduler of their own, or at the session's scheduler and worker.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from durabletask import task
from durabletask.azuremanaged.worker import DurableTaskSchedulerWorker
from netns import PrivateNetwork

from conftest import new_job_id
from monitoring.client.monitors import MonitorClient
from monitoring.client.snapshots import MonitorSnapshot
from monitoring.core.models import MonitorRequest
from monitoring.runtime.connection import Connection
from monitoring.scheduler.server import LocalScheduler

MONITORING = [sys.executable, "-m", "monitoring"]
NEVER = 10**6
LIMIT = 60.0  # only guards against a hang


def environment(**changes: str | None) -> dict[str, str]:
    """This process's environment with ``changes`` (None removes a variable)."""
    env = dict(os.environ)
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, env=env, timeout=LIMIT * 2, stdin=subprocess.DEVNULL
    )


class Running:
    """A process whose output is collected as it comes, so a test can wait for a line of its stderr."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            stdin=subprocess.DEVNULL,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        self._stdout: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stderr, self.lines.put), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stdout, self._stdout.append), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: Any, keep: Any) -> None:
        for line in stream:
            keep(line.rstrip("\n"))
        keep(None)

    @property
    def stdout(self) -> str:
        return "\n".join(line for line in self._stdout if line is not None)

    def wait_for_line(self, text: str) -> str:
        deadline = time.monotonic() + LIMIT
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"never printed {text!r}; printed {self.stderr}") from None
            if line is None:
                raise AssertionError(f"ended without printing {text!r}; printed {self.stderr}")
            self.stderr.append(line)
            if text in line:
                return line

    def stop(self, sig: signal.Signals = signal.SIGINT) -> int:
        """Send ``sig`` and wait for the exit code and the end of its output."""
        self.process.send_signal(sig)
        code = self.process.wait(timeout=LIMIT)
        for reader in self._readers:
            reader.join(timeout=LIMIT)
        while (line := self.lines.get(timeout=LIMIT)) is not None:
            self.stderr.append(line)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def checks(snapshot: MonitorSnapshot) -> int:
    return snapshot.custom_status.check_count if snapshot.custom_status else 0


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


# --- control verbs on a real running monitor ---------------------------------------------------------------


def test_suspend_resume_and_terminate_a_running_monitor_from_the_cli(monitors: MonitorClient) -> None:
    env = environment(ENDPOINT=monitors.connection.endpoint)
    instance_id = monitors.start(MonitorRequest(new_job_id(), 0.2, 60, job_duration_seconds=NEVER))
    monitors.wait_for(instance_id, lambda s: checks(s) >= 1)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return run([*MONITORING, *args], env)

    suspend = cli("suspend", instance_id, "--reason", "maintenance")
    assert suspend.returncode == 0, suspend.stderr
    assert (
        suspend.stderr.strip()
        == f"Suspend requested for monitor {instance_id}: no checks until it is resumed"
    )
    suspended = monitors.wait_for(instance_id, lambda s: s.runtime_status == "Suspended")
    shown = cli("status", instance_id)
    assert shown.returncode == 0 and json.loads(shown.stdout)["state"] == "Suspended"

    resume = cli("resume", instance_id)
    assert resume.returncode == 0, resume.stderr
    assert resume.stderr.strip() == f"Resume requested for monitor {instance_id}: overdue checks run at once"
    monitors.wait_for(instance_id, lambda s: s.runtime_status == "Running" and checks(s) > checks(suspended))

    terminate = cli("terminate", instance_id, "--reason", "operator stop")
    assert terminate.returncode == 0, terminate.stderr
    assert terminate.stderr.strip() == f"Terminated monitor {instance_id}"
    final = monitors.wait_for(instance_id, lambda s: s.runtime_status == "Terminated")
    assert final.state == "Terminated"
    shown = cli("status", instance_id)
    assert shown.returncode == 0 and json.loads(shown.stdout)["state"] == "Terminated"

    for verb in ("terminate", "suspend", "resume"):  # none fits a monitor that has ended
        again = cli(verb, instance_id)
        assert again.returncode == 1, (verb, again.stderr)
        assert instance_id in one_error_line(again)


# --- with no ENDPOINT: the local scheduler's default port, in a private network --------------------------


def test_with_no_endpoint_and_no_scheduler_start_and_control_say_what_to_do(
    private_network: PrivateNetwork,
) -> None:
    env = environment(ENDPOINT=None, TASKHUB=None)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return run(private_network.command(*MONITORING, *args), env)

    start = cli("start", "job-1", "1", "2")
    assert start.returncode == 2 and start.stdout == ""
    assert one_error_line(start) == (
        "error: no scheduler answers at http://localhost:8080: start a worker first "
        "(python -m monitoring worker starts the local scheduler too)"
    )
    for verb in ("status", "cancel", "terminate", "suspend", "resume", "purge"):
        done = cli(verb, "some-id")
        assert done.returncode == 2 and done.stdout == "", verb
        assert one_error_line(done) == (
            "error: no scheduler answers at http://localhost:8080: no monitors to control there"
        )
    stop = cli("stop-scheduler")
    assert stop.returncode == 0
    assert stop.stderr.strip() == "No local scheduler of ours was running on port 8080"


def test_the_default_local_workflow_worker_start_stop_scheduler(private_network: PrivateNetwork) -> None:
    """The README's two terminals with nothing set: the worker starts the local scheduler on 8080."""
    env = environment(ENDPOINT=None, TASKHUB=None)
    worker = Running(private_network.command(*MONITORING, "worker"), env)
    try:
        assert "started it" in worker.wait_for_line("at http://localhost:8080, task hub 'default'")
        worker.wait_for_line("Worker running")
        start = run(
            private_network.command(*MONITORING, "start", "job-123", "0.2", "0.6", "--job-duration", "0.4"),
            env,
        )
        assert start.returncode == 0, start.stderr
        result = json.loads(start.stdout)
        assert (result["final_status"], result["checks_performed"]) == ("Completed", 3)
        assert worker.stop() == 0 and "Worker stopped" in worker.stderr
    finally:
        worker.kill()
        stop = run(private_network.command(*MONITORING, "stop-scheduler"), env)
    assert stop.returncode == 0 and stop.stderr.strip() == "Stopped the local scheduler on port 8080"
    again = run(private_network.command(*MONITORING, "stop-scheduler"), env)
    assert again.returncode == 0
    assert again.stderr.strip() == "No local scheduler of ours was running on port 8080"


# --- start: the hint, Ctrl-C, a failed orchestration, a scheduler error -----------------------------------


def test_start_hints_when_no_worker_runs_and_ctrl_c_exits_130() -> None:
    with LocalScheduler(0) as idle:  # no worker serves it
        start = Running([*MONITORING, "start", "job-idle", "1", "5"], environment(ENDPOINT=idle.address))
        try:
            scheduled = start.wait_for_line("Scheduled monitor")
            instance_id = scheduled.split()[2]
            hint = start.wait_for_line("is a worker running?")
            assert hint == "still Pending after 5 s: is a worker running? (python -m monitoring worker)"
            assert start.stop(signal.SIGINT) == 130
        finally:
            start.kill()
        assert f"stopped following; monitor {instance_id} keeps running" in start.stderr
        assert start.stdout == ""
        with MonitorClient(Connection(idle.address, "default", "emulator")) as monitors:
            assert monitors.snapshot(instance_id).runtime_status == "Pending", "Ctrl-C cancelled nothing"


def monitoring_job_orchestrator(ctx: task.OrchestrationContext, payload: Any) -> Any:
    """Another program's orchestrator under the monitor's name, as on a task hub shared by mistake."""
    raise RuntimeError("this worker runs something else under the monitor's name")


def test_a_failed_orchestration_is_printed_and_exits_1() -> None:
    with LocalScheduler(0) as own:
        foreign = DurableTaskSchedulerWorker(
            host_address=own.address, taskhub="default", token_credential=None, secure_channel=False
        )
        foreign.add_orchestrator(monitoring_job_orchestrator)
        foreign.start()
        try:
            done = run([*MONITORING, "start", "job-f", "1", "5"], environment(ENDPOINT=own.address))
        finally:
            foreign.stop()
    assert done.returncode == 1, done.stderr
    printed = json.loads(done.stdout)
    assert set(printed) == {"instance_id", "runtime_status", "failure"}
    assert printed["runtime_status"] == "Failed"
    assert "this worker runs something else under the monitor's name" in printed["failure"]
    assert "[Failed]" in done.stderr and "Traceback" not in done.stderr


def test_a_task_hub_the_scheduler_does_not_serve_is_one_line_and_exit_2() -> None:
    with LocalScheduler(0) as own:
        done = run(
            [*MONITORING, "start", "job-1", "1", "5"], environment(ENDPOINT=own.address, TASKHUB="nope")
        )
        with MonitorClient(Connection(own.address, "default", "emulator")) as monitors:
            assert monitors.list_instances() == [], "nothing was scheduled"
    assert done.returncode == 2 and done.stdout == ""
    assert "'nope'" in one_error_line(done)


class Refusing(grpc.GenericRpcHandler):
    """A scheduler that refuses every call, as the Durable Task Scheduler does a caller without a role."""

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        def refuse(request: bytes, context: grpc.ServicerContext) -> bytes:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "the caller has no role on this task hub")
            raise AssertionError("abort raises")

        return grpc.unary_unary_rpc_method_handler(refuse)


@pytest.fixture
def refusing_scheduler() -> Iterator[str]:
    server = grpc.server(ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((Refusing(),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop(None)


@pytest.mark.parametrize(
    "command", [["start", "job-1", "1", "5"], ["status", "some-id"], ["cancel", "some-id"]]
)
def test_an_error_from_the_scheduler_is_one_line_and_exit_2(
    refusing_scheduler: str, command: list[str]
) -> None:
    done = run([*MONITORING, *command], environment(ENDPOINT=refusing_scheduler))
    assert done.returncode == 2 and done.stdout == ""
    line = one_error_line(done)
    assert "PERMISSION_DENIED" in line and "the caller has no role on this task hub" in line


# --- demo against ENDPOINT; an extra worker process on its own ---------------------------------------------


def test_demo_runs_on_the_backend_that_endpoint_names() -> None:
    with LocalScheduler(0) as own:
        done = run(
            [
                *MONITORING,
                "demo",
                "--job-id",
                "job-demo",
                *("--interval", "0.2", "--timeout", "0.4", "--job-duration", "0.2"),
            ],
            environment(ENDPOINT=own.address),
        )
        assert done.returncode == 0, done.stderr
        assert "embedded" not in done.stderr and "Using the Durable Task Scheduler emulator" in done.stderr
        result = json.loads(done.stdout)
        assert (result["job_id"], result["final_status"], result["checks_performed"]) == (
            "job-demo",
            "Completed",
            2,
        )
        with MonitorClient(Connection(own.address, "default", "emulator")) as monitors:
            (ran,) = monitors.list_instances()
            assert ran.runtime_status == "Completed" and ran.output["job_id"] == "job-demo"


def test_an_extra_worker_process_serves_monitors_by_itself() -> None:
    """``worker --processes N`` starts N - 1 of these (``worker --of-parent PID``): alone, one works."""
    with LocalScheduler(0) as own:
        extra = Running(
            [*MONITORING, "worker", "--of-parent", str(os.getpid())], environment(ENDPOINT=own.address)
        )
        try:
            with MonitorClient(Connection(own.address, "default", "emulator")) as monitors:
                request = MonitorRequest(new_job_id(), 0.1, 0.3, job_duration_seconds=0.2)
                final = monitors.follow(monitors.start(request), timeout=LIMIT)
                assert final.result is not None
                assert (final.result.final_status, final.result.checks_performed) == ("Completed", 3)
            assert extra.stop(signal.SIGTERM) == 0
        finally:
            extra.kill()
