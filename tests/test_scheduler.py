"""The local scheduler: loopback only, one per port, findable and stoppable as a process."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from durabletask.client import TaskHubGrpcClient
from durabletask.testing import InMemoryOrchestrationBackend

from conftest import new_job_id, running_worker
from monitoring.client.errors import UnknownInstanceError
from monitoring.client.monitors import MonitorClient
from monitoring.core.models import MonitorRequest
from monitoring.runtime.connection import Connection, ensure_backend, local_connection
from monitoring.scheduler import process, timers
from monitoring.scheduler.clock import ManualClock
from monitoring.scheduler.records import HubOptions
from monitoring.scheduler.server import LocalScheduler, SchedulerError, probe
from monitoring.worker import start_worker, stop_worker


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _decode_proc_address(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """/proc/net/tcp{,6} write addresses as little-endian 32-bit words in hex."""
    words = [bytes.fromhex(hex_address[i : i + 8])[::-1] for i in range(0, len(hex_address), 8)]
    return ipaddress.ip_address(b"".join(words))


def listening_addresses(port: int) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Local addresses with a listening TCP socket on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:
                found.add(_decode_proc_address(address))
    return found


def is_loopback(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


@contextlib.contextmanager
def scheduler_command(*options: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """``python -m monitoring scheduler --in-memory`` on a free port with ``options``, a process of its own;
    yields its address once it answers, and stops it after."""
    port = free_port()
    command = [sys.executable, "-m", "monitoring", "scheduler", "--port", str(port), "--in-memory", *options]
    scheduler = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60  # only guards against a hang
        while not probe(f"127.0.0.1:{port}", timeout=0.5):
            assert scheduler.poll() is None and time.monotonic() < deadline, "the scheduler did not start"
        yield f"127.0.0.1:{port}"
    finally:
        scheduler.terminate()
        scheduler.wait(30)


@pytest.fixture
def restore_worker(worker: Connection) -> Iterator[None]:
    """For a test that points this process's worker at another scheduler: the session's worker returns."""
    yield
    start_worker(worker)


def test_binds_loopback_only(scheduler: LocalScheduler) -> None:
    addresses = listening_addresses(scheduler.port)
    assert addresses, "the scheduler is listening"
    assert all(is_loopback(address) for address in addresses), addresses


def test_refuses_a_non_loopback_host() -> None:
    with pytest.raises(SchedulerError, match="loopback only"):
        LocalScheduler(0, host="0.0.0.0")


def test_refuses_a_port_another_scheduler_holds(scheduler: LocalScheduler) -> None:
    with pytest.raises(SchedulerError, match=f"port {scheduler.port} on 127.0.0.1 is already in use"):
        LocalScheduler(scheduler.port).start()
    assert probe(scheduler.address), "the first scheduler still answers"


def test_refuses_a_port_any_program_holds() -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        with pytest.raises(SchedulerError, match="already in use"):
            LocalScheduler(other.getsockname()[1]).start()


def test_probe_tells_a_scheduler_from_a_closed_port(scheduler: LocalScheduler) -> None:
    assert probe(scheduler.address)
    assert not probe(f"127.0.0.1:{free_port()}", timeout=0.5)


def test_taskhub_is_honoured_by_the_azuremanaged_client_and_worker(restore_worker: None) -> None:
    with LocalScheduler(0, taskhub="hub-a") as hub:
        right = Connection(hub.address, "hub-a", "emulator")
        start_worker(right)
        try:
            with MonitorClient(right) as monitors:
                request = MonitorRequest(new_job_id(), 0.2, 0.4, job_duration_seconds=0.0)
                final = monitors.follow(monitors.start(request), timeout=10)
                assert final.result is not None and final.result.final_status == "Completed"
            with MonitorClient(Connection(hub.address, "hub-b", "emulator")) as wrong:
                with pytest.raises(grpc.RpcError) as error:
                    wrong.start(MonitorRequest(new_job_id()))
                assert error.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
                assert "task hub 'hub-b' not found" in error.value.details()  # type: ignore[attr-defined]
        finally:
            stop_worker()


def test_on_demand_scheduler_process_starts_once_outlives_clients_and_stops(restore_worker: None) -> None:
    port = free_port()
    connection = Connection(f"http://localhost:{port}", "default", "local")
    assert "started it" in ensure_backend(connection)
    try:
        record = process.SchedulerRecord.load(port)
        assert record is not None and process._is_running_scheduler(record.pid)
        assert "already running" in ensure_backend(connection), "a second call starts no second process"
        # State lives in the scheduler's process, so a monitor survives this process's worker going away.
        start_worker(connection)
        with MonitorClient(connection) as monitors:
            instance_id = monitors.start(MonitorRequest(new_job_id(), 0.2, 0.4, job_duration_seconds=0.0))
            monitors.follow(instance_id, timeout=10)
        stop_worker()
        with MonitorClient(connection) as monitors:
            assert monitors.snapshot(instance_id).runtime_status == "Completed"
    finally:
        stop_worker()
        assert process.stop_scheduler_process(port)
    assert not process._is_running_scheduler(record.pid)
    assert process.SchedulerRecord.load(port) is None
    assert not process.stop_scheduler_process(port), "stopping twice says nothing was running"


def test_a_stale_record_is_not_trusted() -> None:
    port = free_port()
    process.SchedulerRecord(pid=1, port=port, taskhub="default").save()  # pid 1 is not a scheduler
    assert not process.stop_scheduler_process(port)
    assert process.SchedulerRecord.load(port) is None


def test_local_connection_describes_itself(scheduler: LocalScheduler) -> None:
    assert scheduler.address in local_connection(scheduler.address).describe()


def test_timer_queue_fires_in_due_order() -> None:
    fired: list[str] = []
    done = threading.Event()
    clock = ManualClock()
    queue = timers.TimerQueue(clock)
    now = clock.time()
    queue.call_at(now + 0.08, lambda: fired.append("late"))
    queue.call_at(now - 1, lambda: fired.append("overdue"))
    queue.call_at(now + 0.02, lambda: fired.append("soon"))
    queue.call_at(now + 0.12, done.set)
    queue.start()
    clock.advance(0.05)  # the thread wakes when the clock moves: "overdue" and "soon" are due, the rest not
    clock.advance(0.1)
    assert done.wait(30)
    assert fired == ["overdue", "soon", "late"] and len(queue) == 0
    queue.stop()


def test_fire_due_runs_only_what_is_due_without_a_thread() -> None:
    fired: list[str] = []
    clock = ManualClock()
    queue = timers.TimerQueue(clock)
    queue.call_at(clock.time() + 10, lambda: fired.append("later"))
    queue.call_at(clock.time(), lambda: fired.append("now"))
    assert queue.fire_due() == 1 and fired == ["now"] and len(queue) == 1
    clock.advance(10)
    assert queue.fire_due() == 1 and fired == ["now", "later"] and len(queue) == 0


def test_timers_queued_while_stopped_fire_when_started_again() -> None:
    fired = threading.Event()
    clock = ManualClock()
    queue = timers.TimerQueue(clock)
    queue.start()
    queue.call_at(clock.time() + 0.05, fired.set)
    queue.stop()  # joins its thread: from here on nothing can fire until start()
    clock.advance(1)  # the timer is overdue
    assert not fired.is_set() and len(queue) == 1, "a stopped queue fires nothing"
    queue.start()  # as LocalScheduler.start does after a stop
    assert fired.wait(30), "the overdue timer fires at once"
    queue.stop()


def test_the_reference_can_run_on_the_sdks_own_servicer() -> None:
    """The benchmark's reference stack: the SDK's own servicer behind LocalScheduler serves a monitor."""
    with LocalScheduler(0, servicer=InMemoryOrchestrationBackend()) as plain:
        connection = Connection(plain.address, "default", "emulator")
        with running_worker(connection) as monitors:
            # The job answers for each check's due time, so only the guard (at the deadline plus the
            # grace) could change the outcome: 5 s of grace keeps a loaded machine's late check in it.
            request = MonitorRequest(
                new_job_id(), 0.1, 0.3, job_duration_seconds=0.1, deadline_grace_seconds=5
            )
            final = monitors.follow(monitors.start(request), timeout=60)
        # The SDK's servicer sleeps a thread per timer; its last (the guard, at 5.3 s) ends before we go on.
        deadline = time.monotonic() + 60
        while [thread for thread in threading.enumerate() if "fire_timer" in thread.name]:
            assert time.monotonic() < deadline, "the SDK's timer threads never ended"
            time.sleep(0.05)
    assert final.result is not None
    assert (final.result.final_status, final.result.checks_performed) == ("Completed", 2)


def test_waiting_monitors_hold_timers_not_threads(scheduler: LocalScheduler, monitors: MonitorClient) -> None:
    """Each waiting monitor has two pending timers (its next check, its guard): heap entries, no threads."""
    assert scheduler.hub is not None
    threads_before = threading.active_count()
    request = MonitorRequest(new_job_id(), polling_interval_seconds=300, timeout_seconds=600)
    started = [monitors.start(replace(request, job_id=f"{request.job_id}-{n}")) for n in range(30)]
    try:
        for instance_id in started:
            first_check_done = monitors.wait_for(
                instance_id, lambda s: bool(s.custom_status and s.custom_status.check_count)
            )
            assert first_check_done.custom_status is not None
        # 300 s check timers and 610 s guard timers: all 60 of this test's stay queued while it runs.
        assert len(scheduler.hub.timers) >= 60
        # The SDK's own timers would have added a sleeping thread per pending timer (60 or more here);
        # what grows now is only the worker's and the server's thread pools.
        assert not [thread for thread in threading.enumerate() if "fire_timer" in thread.name]
        assert threading.active_count() - threads_before < 60
    finally:
        for instance_id in started:
            monitors.terminate(instance_id, reason="test over")


def test_the_scheduler_command_refuses_a_bad_retention_in_one_line() -> None:
    command = [sys.executable, "-m", "monitoring", "scheduler", "--port", "1", "--retention-days", "-1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error: argument --retention-days: --retention-days='-1': use a number of days from 0 "
        "(purge at once) up to 100000 (see python -m monitoring scheduler --help)"
    ]
    environment = {**os.environ, "MONITORING_RETENTION_DAYS": "soon"}
    done = subprocess.run(command[:-2], capture_output=True, text=True, timeout=60, env=environment)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error: MONITORING_RETENTION_DAYS='soon': use a number of days from 0 (purge at once) up to 100000"
    ]


def test_a_scheduler_process_refuses_starts_beyond_its_max_active_instances() -> None:
    """``--max-active-instances N``: the (N+1)th active orchestration is refused with RESOURCE_EXHAUSTED and
    a message; one ending makes room again. A bad N is refused in one line."""
    bad = [sys.executable, "-m", "monitoring", "scheduler", "--port", "1", "--max-active-instances", "0"]
    done = subprocess.run(bad, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error: argument --max-active-instances: must be a whole number of 1 or more, not '0' "
        "(see python -m monitoring scheduler --help)"
    ]
    with (
        scheduler_command("--max-active-instances", "2") as address,
        MonitorClient(local_connection(f"http://{address}")) as monitors,
    ):
        first, _ = (monitors.start(MonitorRequest(new_job_id())) for _ in range(2))  # no worker: Pending
        client = TaskHubGrpcClient(host_address=address)
        with pytest.raises(grpc.RpcError) as refused:
            client.schedule_new_orchestration("monitoring_job_orchestrator", input={})
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
        assert "already runs 2 instances" in refused.value.details()  # type: ignore[attr-defined]
        monitors.terminate(first, reason="room for one more")
        assert client.schedule_new_orchestration("monitoring_job_orchestrator", input={})


def test_a_scheduler_process_takes_its_retention_from_the_environment() -> None:
    """MONITORING_RETENTION_DAYS reaches schedulers started on demand too: they run this same command."""
    environment = {**os.environ, "MONITORING_RETENTION_DAYS": "0"}
    with scheduler_command(env=environment) as address:
        connection = local_connection(f"http://{address}")
        with running_worker(connection) as monitors:
            request = MonitorRequest(new_job_id(), polling_interval_seconds=0.1, timeout_seconds=0.1)
            instance_id = monitors.start(request)
            assert monitors.follow(instance_id, timeout=60).result is not None
            deadline = time.monotonic() + 120  # only guards against a hang
            while True:  # retention 0: the next sweep purges it
                try:
                    monitors.details(instance_id)
                except UnknownInstanceError:
                    break
                assert time.monotonic() < deadline, "a finished instance outlived a retention of 0 days"
                time.sleep(0.1)


def test_a_scheduler_keeps_its_task_hub_in_its_state_file_across_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "hub.sqlite3"
    with LocalScheduler(0, state=state) as first, MonitorClient(local_connection(first.address)) as monitors:
        instance_id = monitors.start(MonitorRequest(new_job_id()))  # no worker: it stays Pending
    with LocalScheduler(0, state=state) as again, MonitorClient(local_connection(again.address)) as monitors:
        assert monitors.snapshot(instance_id).runtime_status == "Pending"
    with (
        LocalScheduler(0) as memory,
        MonitorClient(local_connection(memory.address)) as monitors,
        pytest.raises(UnknownInstanceError),
    ):
        monitors.snapshot(instance_id)  # in memory: a new scheduler starts empty


def test_a_monitor_whose_history_leaves_memory_while_it_waits_counts_every_check(tmp_path: Path) -> None:
    """With a state file, a history let go while its instance waits (here after 0.3 s) is read back for the
    next check: a real worker's monitor makes each planned check once, and its history reads back whole."""
    options = HubOptions(keep_waiting_history_seconds=0.3, sweep_seconds=0.1)  # let go about once a second
    with LocalScheduler(0, state=tmp_path / "hub.sqlite3", options=options) as scheduler:
        connection = local_connection(scheduler.address)
        with running_worker(connection) as monitors:
            request = MonitorRequest(new_job_id(), polling_interval_seconds=3, timeout_seconds=9)
            instance_id = monitors.start(request)
            hub = scheduler.hub
            assert hub is not None
            in_file_only = 0  # times seen with its history in the file only, between checks
            while monitors.snapshot(instance_id).runtime_status in ("Pending", "Running"):
                instance = hub.instances.get(instance_id)
                in_file_only += instance is not None and instance.history_in_store
                time.sleep(0.05)
            result = monitors.follow(instance_id, timeout=60).result
            history = monitors.history(instance_id)
    assert in_file_only > 0, "its history left memory while it waited"
    assert result is not None and (result.final_status, result.checks_performed) == ("Timeout", 4)
    kinds = [type(event).__name__ for event in history]
    assert kinds.count("TaskCompletedEvent") == 4 and kinds[-1] == "ExecutionCompletedEvent", kinds
