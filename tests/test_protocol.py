"""Every client call and worker exchange of the Durable Task protocol that the local scheduler serves, through
the SDK's own client and worker, against the local scheduler (state file on) and against the SDK's own
in-memory servicer: the same test on both, so a difference in behaviour shows. Where the two differ by
design, the test says which does what."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import grpc
import pytest
from durabletask import task
from durabletask.client import OrchestrationQuery, OrchestrationStatus
from durabletask.internal import orchestrator_service_pb2 as pb
from durabletask.internal import orchestrator_service_pb2_grpc as stubs
from google.protobuf import empty_pb2
from sdk_backends import (
    BACKENDS,
    Backend,
    Registry,
    backend_with_worker,
    new_client,
    new_worker,
    wait_for_status,
)

WAIT = 60  # a hang guard: every wait returns as soon as the state it waits for is observed
app = Registry()


@app.activity
def greet(ctx: task.ActivityContext, name: str) -> str:
    return f"Hello, {name}!"


@app.orchestrator
def hello(ctx: task.OrchestrationContext, name: str) -> Any:
    ctx.set_custom_status({"greeting": "in progress"})
    greeting = yield ctx.call_activity(greet, input=name)
    return greeting


@app.orchestrator
def waiter(ctx: task.OrchestrationContext, _: Any) -> Any:
    data = yield ctx.wait_for_external_event("go")
    return {"got": data}


@app.orchestrator
def sleeper(ctx: task.OrchestrationContext, seconds: float) -> Any:
    yield ctx.create_timer(timedelta(seconds=seconds))
    return "slept"


@app.orchestrator
def fails(ctx: task.OrchestrationContext, _: Any) -> Any:
    raise ValueError("boom")


@app.orchestrator
def counts_to(ctx: task.OrchestrationContext, state: dict[str, int]) -> Any:
    if state["n"] < state["to"]:
        ctx.continue_as_new({"n": state["n"] + 1, "to": state["to"]})
        return None
    return state["n"]


attempts: dict[str, int] = {}


@app.orchestrator
def tells_its_start(ctx: task.OrchestrationContext, _: Any) -> Any:
    return {"version": ctx.version, "at": ctx.current_utc_datetime.isoformat()}


@app.activity
def flaky(ctx: task.ActivityContext, key: str) -> int:
    attempts[key] = attempts.get(key, 0) + 1
    if attempts[key] < 3:
        raise RuntimeError(f"attempt {attempts[key]} fails")
    return attempts[key]


@app.orchestrator
def retries(ctx: task.OrchestrationContext, key: str) -> Any:
    policy = task.RetryPolicy(first_retry_interval=timedelta(milliseconds=50), max_number_of_attempts=5)
    return (yield ctx.call_activity(flaky, input=key, retry_policy=policy))


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    with backend_with_worker(request.param, tmp_path_factory.mktemp(request.param), app) as running:
        yield running


def new_id(prefix: str = "p") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def finished(backend: Backend, instance_id: str) -> Any:
    state = backend.client.wait_for_orchestration_completion(instance_id, timeout=WAIT)
    assert state is not None
    return state


def test_start_wait_and_get_an_orchestration_with_input_output_and_custom_status(backend: Backend) -> None:
    instance_id = backend.client.schedule_new_orchestration(hello, input="you", instance_id=new_id())
    started = backend.client.wait_for_orchestration_start(instance_id, timeout=WAIT)
    assert started is not None and started.runtime_status != OrchestrationStatus.PENDING
    state = finished(backend, instance_id)
    assert state.runtime_status == OrchestrationStatus.COMPLETED
    assert state.name == "hello" and state.instance_id == instance_id
    assert state.serialized_input == '"you"' and state.get_output() == "Hello, you!"
    assert state.get_custom_status() == {"greeting": "in progress"}
    assert state.created_at <= state.last_updated_at
    got = backend.client.get_orchestration_state(instance_id, fetch_payloads=False)
    assert got is not None and got.serialized_input is None and got.serialized_output is None


def test_an_unknown_instance_is_none_and_a_generated_id_is_returned(backend: Backend) -> None:
    assert backend.client.get_orchestration_state(new_id("missing")) is None
    instance_id = backend.client.schedule_new_orchestration(hello, input="anyone")
    assert instance_id and finished(backend, instance_id).runtime_status == OrchestrationStatus.COMPLETED


def test_a_raised_event_reaches_the_waiting_orchestration(backend: Backend) -> None:
    instance_id = backend.client.schedule_new_orchestration(waiter, instance_id=new_id())
    backend.client.wait_for_orchestration_start(instance_id, timeout=WAIT)
    backend.client.raise_orchestration_event(instance_id, "go", data={"x": 1})
    assert finished(backend, instance_id).get_output() == {"got": {"x": 1}}


def test_an_event_raised_before_the_start_waits_for_the_orchestration(backend: Backend) -> None:
    start_at = datetime.now(timezone.utc) + timedelta(seconds=6)
    instance_id = backend.client.schedule_new_orchestration(waiter, instance_id=new_id(), start_at=start_at)
    early = backend.client.get_orchestration_state(instance_id)
    assert early is not None
    if backend.ours:  # the SDK's in-memory backend does not hold a scheduled start: it runs it at once
        assert early.runtime_status == OrchestrationStatus.PENDING
    backend.client.raise_orchestration_event(instance_id, "go", data="early")
    assert finished(backend, instance_id).get_output() == {"got": "early"}


def test_terminate_ends_a_running_orchestration_with_the_given_output(backend: Backend) -> None:
    instance_id = backend.client.schedule_new_orchestration(waiter, instance_id=new_id())
    backend.client.wait_for_orchestration_start(instance_id, timeout=WAIT)
    backend.client.terminate_orchestration(instance_id, output="enough")
    state = finished(backend, instance_id)
    assert state.runtime_status == OrchestrationStatus.TERMINATED and state.get_output() == "enough"


def test_suspend_holds_events_until_resume(backend: Backend) -> None:
    client = backend.client
    instance_id = client.schedule_new_orchestration(waiter, instance_id=new_id())
    client.wait_for_orchestration_start(instance_id, timeout=WAIT)
    client.suspend_orchestration(instance_id, reason="hold on")
    wait_for_status(backend, instance_id, OrchestrationStatus.SUSPENDED)
    client.raise_orchestration_event(instance_id, "go", data=2)
    state = client.get_orchestration_state(instance_id)
    assert state is not None and state.runtime_status == OrchestrationStatus.SUSPENDED
    client.resume_orchestration(instance_id, reason="go on")
    assert finished(backend, instance_id).get_output() == {"got": 2}


def test_a_scheduled_start_runs_no_earlier_than_asked_with_its_version(backend: Backend) -> None:
    start_at = datetime.now(timezone.utc) + timedelta(seconds=2)
    instance_id = backend.client.schedule_new_orchestration(
        tells_its_start, instance_id=new_id("at"), start_at=start_at, version="2.1"
    )
    state = finished(backend, instance_id)
    assert state.runtime_status == OrchestrationStatus.COMPLETED
    told = json.loads(state.serialized_output)
    assert told["version"] == "2.1"
    assert datetime.fromisoformat(told["at"]).replace(tzinfo=timezone.utc) >= start_at - timedelta(
        milliseconds=1
    ), "the orchestration's first turn is at or after the scheduled start"


def test_a_failed_orchestration_reports_its_error(backend: Backend) -> None:
    state = finished(backend, backend.client.schedule_new_orchestration(fails, instance_id=new_id()))
    assert state.runtime_status == OrchestrationStatus.FAILED
    assert state.failure_details is not None and "boom" in state.failure_details.message
    assert state.failure_details.error_type.endswith("ValueError")


def test_continue_as_new_runs_generations_to_the_end(backend: Backend) -> None:
    instance_id = backend.client.schedule_new_orchestration(
        counts_to, input={"n": 0, "to": 5}, instance_id=new_id()
    )
    state = finished(backend, instance_id)
    assert state.runtime_status == OrchestrationStatus.COMPLETED and state.get_output() == 5


def test_a_durable_timer_fires(backend: Backend) -> None:
    instance_id = backend.client.schedule_new_orchestration(sleeper, input=0.2, instance_id=new_id())
    assert finished(backend, instance_id).get_output() == "slept"


def test_an_activity_retry_policy_retries_until_it_succeeds(backend: Backend) -> None:
    key = new_id("key")
    state = finished(
        backend, backend.client.schedule_new_orchestration(retries, input=key, instance_id=new_id())
    )
    assert state.runtime_status == OrchestrationStatus.COMPLETED and state.get_output() == 3


def test_history_lists_the_events_of_the_run(backend: Backend) -> None:
    instance_id = backend.client.schedule_new_orchestration(hello, input="h", instance_id=new_id())
    finished(backend, instance_id)
    kinds = [type(event).__name__ for event in backend.client.get_orchestration_history(instance_id)]
    for expected in (
        "ExecutionStartedEvent",
        "TaskScheduledEvent",
        "TaskCompletedEvent",
        "ExecutionCompletedEvent",
    ):
        assert expected in kinds, kinds
    assert kinds[0] == "OrchestratorStartedEvent" and kinds[-1] == "ExecutionCompletedEvent"


def test_an_existing_id_is_refused_unless_its_status_may_be_replaced(backend: Backend) -> None:
    instance_id = backend.client.schedule_new_orchestration(hello, input="a", instance_id=new_id())
    finished(backend, instance_id)
    with pytest.raises(grpc.RpcError) as refused:
        backend.client.schedule_new_orchestration(hello, input="b", instance_id=instance_id)
    assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS  # type: ignore[attr-defined]
    policy = pb.OrchestrationIdReusePolicy(replaceableStatus=[pb.ORCHESTRATION_STATUS_COMPLETED])
    backend.client.schedule_new_orchestration(
        hello, input="c", instance_id=instance_id, reuse_id_policy=policy
    )
    assert finished(backend, instance_id).get_output() == "Hello, c!"


def test_restart_runs_the_same_input_again_under_the_same_or_a_new_id(backend: Backend) -> None:
    instance_id = backend.client.schedule_new_orchestration(hello, input="r", instance_id=new_id())
    finished(backend, instance_id)
    assert backend.client.restart_orchestration(instance_id) == instance_id
    assert finished(backend, instance_id).get_output() == "Hello, r!"
    other = backend.client.restart_orchestration(instance_id, restart_with_new_instance_id=True)
    assert other != instance_id and finished(backend, other).get_output() == "Hello, r!"


def test_purge_deletes_an_ended_instance_only(backend: Backend) -> None:
    done = backend.client.schedule_new_orchestration(hello, input="p", instance_id=new_id())
    finished(backend, done)
    running = backend.client.schedule_new_orchestration(waiter, instance_id=new_id())
    backend.client.wait_for_orchestration_start(running, timeout=WAIT)
    assert backend.client.purge_orchestration(running).deleted_instance_count == 0
    assert backend.client.purge_orchestration(done).deleted_instance_count == 1
    assert backend.client.get_orchestration_state(done) is None
    backend.client.terminate_orchestration(running)
    finished(backend, running)


def test_query_filters_by_prefix_status_and_creation_time_and_pages(backend: Backend) -> None:
    prefix = new_id("q") + "-"
    ids = [
        backend.client.schedule_new_orchestration(hello, input=str(n), instance_id=f"{prefix}{n}")
        for n in range(5)
    ]
    states = [finished(backend, i) for i in ids]
    failed = backend.client.schedule_new_orchestration(fails, instance_id=f"{prefix}failed")
    finished(backend, failed)
    everything = backend.client.get_all_orchestration_states(OrchestrationQuery(instance_id_prefix=prefix))
    assert sorted(s.instance_id for s in everything) == sorted([*ids, failed])
    only_failed = backend.client.get_all_orchestration_states(
        OrchestrationQuery(instance_id_prefix=prefix, runtime_status=[OrchestrationStatus.FAILED])
    )
    assert [s.instance_id for s in only_failed] == [failed]
    paged = backend.client.get_all_orchestration_states(
        OrchestrationQuery(instance_id_prefix=prefix, max_instance_count=2)
    )
    assert sorted(s.instance_id for s in paged) == sorted([*ids, failed]), (
        "the client follows continuation tokens"
    )
    first, last = states[0].created_at, states[-1].created_at
    window = OrchestrationQuery(instance_id_prefix=prefix, created_time_from=first, created_time_to=last)
    inside = {s.instance_id for s in backend.client.get_all_orchestration_states(window)}
    assert ids[0] in inside and ids[-1] not in inside and failed not in inside
    with_payloads = backend.client.get_all_orchestration_states(
        OrchestrationQuery(instance_id_prefix=f"{prefix}0", fetch_inputs_and_outputs=True)
    )
    assert [s.serialized_output for s in with_payloads] == ['"Hello, 0!"']


def test_purge_by_filter_deletes_the_matching_ended_instances(backend: Backend) -> None:
    prefix = new_id("pf") + "-"
    done = [backend.client.schedule_new_orchestration(fails, instance_id=f"{prefix}{n}") for n in range(3)]
    created = [finished(backend, i).created_at for i in done]
    result = backend.client.purge_orchestrations_by(  # min/max: the wall clock may step back between calls
        created_time_from=min(created),
        created_time_to=max(created) + timedelta(microseconds=1),
        runtime_status=[OrchestrationStatus.FAILED],
    )
    assert result.deleted_instance_count >= 3 and result.is_complete is True
    assert all(backend.client.get_orchestration_state(i) is None for i in done)


def test_list_instance_ids_pages_ended_instances_by_completion_time(backend: Backend) -> None:
    done = [backend.client.schedule_new_orchestration(fails, instance_id=new_id("l")) for _ in range(3)]
    for instance_id in done:
        finished(backend, instance_id)
    since = datetime.now(timezone.utc) - timedelta(minutes=10)
    seen: list[str] = []
    token = None
    while True:
        page = backend.client.list_instance_ids(
            runtime_status=[OrchestrationStatus.FAILED],
            completed_time_from=since,
            page_size=2,
            continuation_token=token,
        )
        assert len(page.items) <= 2
        seen += page.items
        token = page.continuation_token
        if not token:
            break
    assert set(done) <= set(seen) and len(seen) == len(set(seen))


def test_the_task_hub_rpcs_answer(backend: Backend) -> None:
    target = backend.address.split("://", 1)[1]
    with grpc.insecure_channel(target) as channel:
        stub = stubs.TaskHubSidecarServiceStub(channel)
        stub.Hello(empty_pb2.Empty(), timeout=WAIT)
        stub.CreateTaskHub(pb.CreateTaskHubRequest(), timeout=WAIT)
        stub.DeleteTaskHub(pb.DeleteTaskHubRequest(), timeout=WAIT)
        stub.AbandonTaskActivityWorkItem(pb.AbandonActivityTaskRequest(completionToken="none"), timeout=WAIT)
        stub.AbandonTaskOrchestratorWorkItem(
            pb.AbandonOrchestrationTaskRequest(completionToken="none"), timeout=WAIT
        )


filtered = Registry()


@filtered.orchestrator
def lonely(ctx: task.OrchestrationContext, _: Any) -> str:
    return "only the filtered worker runs me"


def test_with_filters_each_worker_gets_only_its_own_orchestrations(tmp_path: Path, backend_kind: str) -> None:
    from sdk_backends import running_backend

    with running_backend(backend_kind, tmp_path) as backend:
        # Everything of `app`, filters on: it must never receive `lonely`, which it could not run.
        fast = backend_kind == "local-fast"
        mains = new_worker(backend.address, app, fast=fast)
        mains.use_work_item_filters()
        mains.start()
        try:
            instance_id = backend.client.schedule_new_orchestration("lonely", instance_id=new_id())
            greeting = backend.client.schedule_new_orchestration(hello, input="f", instance_id=new_id())
            assert finished(backend, greeting).get_output() == "Hello, f!"
            state = backend.client.get_orchestration_state(instance_id)
            assert state is not None and state.runtime_status == OrchestrationStatus.PENDING
            other = new_worker(backend.address, filtered, fast=fast)
            other.use_work_item_filters()
            other.start()
            try:
                assert finished(backend, instance_id).get_output() == "only the filtered worker runs me"
            finally:
                other.stop()
        finally:
            mains.stop()


@pytest.fixture(params=BACKENDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    return request.param


def test_an_early_event_and_a_held_start_survive_a_restart_in_order(tmp_path: Path) -> None:
    """Local only (the SDK's servicer keeps nothing across a restart)."""
    from monitoring.scheduler.server import LocalScheduler

    state, port = tmp_path / "hub.sqlite3", 0
    start_at = datetime.now(timezone.utc) + timedelta(seconds=1)
    with LocalScheduler(port, state=state) as scheduler:  # no worker yet: both wait in the file
        port = scheduler.port
        client = new_client(scheduler.address)
        try:
            instance_id = client.schedule_new_orchestration(waiter, instance_id=new_id(), start_at=start_at)
            client.raise_orchestration_event(instance_id, "go", data="kept")
        finally:
            client.close()
    while datetime.now(timezone.utc) <= start_at:  # reopened past the start: read in order from the file
        time.sleep(0.05)
    with LocalScheduler(port, state=state) as scheduler:
        worker, client = new_worker(scheduler.address, app), new_client(scheduler.address)
        worker.start()
        try:
            done = client.wait_for_orchestration_completion(instance_id, timeout=WAIT)
            assert done is not None and done.get_output() == {"got": "kept"}
        finally:
            worker.stop()
            client.close()
