"""Sub-orchestrations through the SDK's own client and worker: by function and by name, explicit ids, a
fan-out of hundreds, failures passed on with their details, retry policies, recursive terminate and purge,
suspend and resume. The same tests run on the local scheduler and on the SDK's in-memory servicer; where the
SDK's servicer does less (no recursive terminate or purge, failures without their type), the test says so."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import grpc
import pytest
from durabletask import history, task
from durabletask.client import OrchestrationStatus
from durabletask.internal import orchestrator_service_pb2 as pb
from durabletask.internal import orchestrator_service_pb2_grpc as stubs
from sdk_backends import BACKENDS, Backend, Registry, backend_with_worker, wait_for_status

WAIT = 120  # a hang guard: every wait returns as soon as the state it waits for is observed
app = Registry()


@app.orchestrator
def child(ctx: task.OrchestrationContext, n: int) -> Any:
    return n * 2


@app.orchestrator
def child_waits(ctx: task.OrchestrationContext, _: Any) -> Any:
    return (yield ctx.wait_for_external_event("go"))


@app.orchestrator
def child_fails(ctx: task.OrchestrationContext, message: str) -> Any:
    raise ValueError(message)


failures_left: dict[str, int] = {}


@app.orchestrator
def child_flaky(ctx: task.OrchestrationContext, key: str) -> Any:
    if failures_left.get(key, 0) > 0:  # not replay-safe on purpose: each attempt is a new instance
        failures_left[key] -= 1
        raise RuntimeError("not yet")
    return "made it"


@app.orchestrator
def calls_by_function(ctx: task.OrchestrationContext, n: int) -> Any:
    return (yield ctx.call_sub_orchestrator(child, input=n))


@app.orchestrator
def calls_by_name(ctx: task.OrchestrationContext, spec: dict[str, Any]) -> Any:
    return (yield ctx.call_sub_orchestrator(spec["name"], input=spec.get("input"), instance_id=spec["id"]))


@app.orchestrator
def fans_out(ctx: task.OrchestrationContext, count: int) -> Any:
    results = yield task.when_all([ctx.call_sub_orchestrator(child, input=i) for i in range(count)])
    return sum(results)


@app.orchestrator
def catches(ctx: task.OrchestrationContext, spec: dict[str, Any]) -> Any:
    try:
        yield ctx.call_sub_orchestrator(spec["name"], input=spec.get("input"), instance_id=spec.get("id"))
    except task.TaskFailedError as failed:
        return {"type": failed.details.error_type, "message": failed.details.message}
    return "no failure"


@app.orchestrator
def retries_child(ctx: task.OrchestrationContext, spec: dict[str, Any]) -> Any:
    policy = task.RetryPolicy(first_retry_interval=timedelta(milliseconds=20), max_number_of_attempts=5)
    call = ctx.call_sub_orchestrator(
        child_flaky, input=spec["key"], instance_id=spec.get("id"), retry_policy=policy
    )
    return (yield call)


@app.orchestrator
def nests(ctx: task.OrchestrationContext, depth: int) -> Any:
    if depth == 0:
        return (yield ctx.wait_for_external_event("go"))
    return (
        yield ctx.call_sub_orchestrator(nests, input=depth - 1, instance_id=f"{ctx.instance_id}.{depth - 1}")
    )


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    with backend_with_worker(request.param, tmp_path_factory.mktemp(request.param), app) as running:
        yield running


LOCAL_ONLY = pytest.mark.parametrize("backend", ["local"], indirect=True)


def new_id(prefix: str = "s") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def finished(backend: Backend, instance_id: str) -> Any:
    state = backend.client.wait_for_orchestration_completion(instance_id, timeout=WAIT)
    assert state is not None
    return state


def started(backend: Backend, instance_id: str) -> None:
    """Wait until ``instance_id`` runs (a child may not exist yet: its parent's turn creates it)."""
    wait_for_status(backend, instance_id, OrchestrationStatus.RUNNING)


def raw_state(backend: Backend, instance_id: str) -> pb.OrchestrationState:
    """The instance as the protocol shows it (the SDK's client drops the parent id)."""
    with grpc.insecure_channel(backend.address.removeprefix("http://")) as channel:
        reply = stubs.TaskHubSidecarServiceStub(channel).GetInstance(
            pb.GetInstanceRequest(instanceId=instance_id), timeout=WAIT
        )
    return reply.orchestrationState


def test_a_sub_orchestration_called_by_function_returns_its_result(backend: Backend) -> None:
    parent = backend.client.schedule_new_orchestration(calls_by_function, input=21, instance_id=new_id())
    assert finished(backend, parent).get_output() == 42
    (created,) = [
        event
        for event in backend.client.get_orchestration_history(parent)
        if isinstance(event, history.SubOrchestrationInstanceCreatedEvent)
    ]
    assert created.instance_id.startswith(f"{parent}:") and created.name == "child"
    child_state = backend.client.get_orchestration_state(created.instance_id)
    assert child_state is not None and child_state.runtime_status == OrchestrationStatus.COMPLETED
    if backend.ours:  # the SDK's servicer does not record the parent
        assert raw_state(backend, created.instance_id).parentInstanceId.value == parent


def test_a_sub_orchestration_called_by_name_under_an_explicit_id(backend: Backend) -> None:
    child_id = new_id("explicit")
    spec = {"name": "child", "input": 5, "id": child_id}
    parent = backend.client.schedule_new_orchestration(calls_by_name, input=spec, instance_id=new_id())
    assert finished(backend, parent).get_output() == 10
    state = backend.client.get_orchestration_state(child_id)
    assert state is not None and state.name == "child" and state.get_output() == 10
    kinds = [type(e).__name__ for e in backend.client.get_orchestration_history(parent)]
    assert (
        "SubOrchestrationInstanceCreatedEvent" in kinds and "SubOrchestrationInstanceCompletedEvent" in kinds
    )


def test_a_fan_out_of_two_hundred_sub_orchestrations_gathers_every_result(backend: Backend) -> None:
    parent = backend.client.schedule_new_orchestration(fans_out, input=200, instance_id=new_id("fan"))
    state = finished(backend, parent)
    assert state.runtime_status == OrchestrationStatus.COMPLETED
    assert state.get_output() == sum(2 * i for i in range(200))


def test_a_failing_sub_orchestration_fails_the_call_with_its_details(backend: Backend) -> None:
    spec = {"name": "child_fails", "input": "bad input"}
    got = finished(
        backend, backend.client.schedule_new_orchestration(catches, input=spec, instance_id=new_id())
    )
    assert "bad input" in got.get_output()["message"]
    if backend.ours:  # the SDK's servicer passes the message on, not the error's type
        assert got.get_output()["type"].endswith("ValueError")


def test_an_unhandled_sub_orchestration_failure_fails_the_parent(backend: Backend) -> None:
    spec = {"name": "child_fails", "input": "deep", "id": new_id("failing")}
    parent = backend.client.schedule_new_orchestration(calls_by_name, input=spec, instance_id=new_id())
    state = finished(backend, parent)
    assert state.runtime_status == OrchestrationStatus.FAILED
    assert state.failure_details is not None and "deep" in state.failure_details.message


@pytest.mark.parametrize("explicit_id", [False, True])
def test_a_retry_policy_starts_the_sub_orchestration_again_until_it_succeeds(
    backend: Backend, explicit_id: bool
) -> None:
    key = new_id("key")
    failures_left[key] = 2
    spec = {"key": key, "id": new_id("retried") if explicit_id else None}
    parent = backend.client.schedule_new_orchestration(retries_child, input=spec, instance_id=new_id())
    state = finished(backend, parent)
    assert state.runtime_status == OrchestrationStatus.COMPLETED and state.get_output() == "made it"
    assert failures_left[key] == 0


@LOCAL_ONLY  # the SDK's servicer reports a terminated child only by polling it from a thread
def test_a_terminated_sub_orchestration_fails_its_parents_call(backend: Backend) -> None:
    child_id = new_id("doomed")
    parent = backend.client.schedule_new_orchestration(
        catches, input={"name": "child_waits", "id": child_id}, instance_id=new_id()
    )
    started(backend, child_id)
    backend.client.terminate_orchestration(child_id, output="stop", recursive=False)
    assert "terminated" in finished(backend, parent).get_output()["message"]


def test_an_id_held_by_an_active_instance_fails_the_call(backend: Backend) -> None:
    busy = backend.client.schedule_new_orchestration(child_waits, instance_id=new_id("busy"))
    started(backend, busy)
    got = finished(
        backend,
        backend.client.schedule_new_orchestration(catches, input={"name": "child", "input": 1, "id": busy}),
    )
    assert got.get_output() != "no failure" and busy in got.get_output()["message"]
    backend.client.raise_orchestration_event(busy, "go", data=1)
    finished(backend, busy)


@LOCAL_ONLY  # the SDK's servicer logs that it does not terminate or purge recursively
def test_terminate_and_purge_reach_every_level_when_recursive(backend: Backend) -> None:
    root = new_id("tree")
    backend.client.schedule_new_orchestration(nests, input=2, instance_id=root)
    leaf = f"{root}.1.0"
    started(backend, leaf)
    backend.client.terminate_orchestration(root, output="all of it")  # recursive by default
    for instance_id in (root, f"{root}.1", leaf):
        state = finished(backend, instance_id)
        assert state.runtime_status == OrchestrationStatus.TERMINATED, instance_id
    result = backend.client.purge_orchestration(root)  # recursive by default
    assert result.deleted_instance_count == 3
    for instance_id in (root, f"{root}.1", leaf):
        assert backend.client.get_orchestration_state(instance_id) is None


@LOCAL_ONLY  # only the local scheduler terminates recursively, so only there is the choice visible
def test_a_non_recursive_terminate_leaves_the_children_running(backend: Backend) -> None:
    root = new_id("tree")
    backend.client.schedule_new_orchestration(nests, input=1, instance_id=root)
    leaf = f"{root}.0"
    started(backend, leaf)
    backend.client.terminate_orchestration(root, recursive=False)
    assert finished(backend, root).runtime_status == OrchestrationStatus.TERMINATED
    state = backend.client.get_orchestration_state(leaf)
    assert state is not None and state.runtime_status == OrchestrationStatus.RUNNING
    backend.client.raise_orchestration_event(leaf, "go", data="late")
    assert finished(backend, leaf).get_output() == "late"  # its result goes nowhere: the parent has ended


def test_a_suspended_sub_orchestration_holds_its_parent_until_resumed(backend: Backend) -> None:
    root = new_id("held")
    backend.client.schedule_new_orchestration(nests, input=1, instance_id=root)
    leaf = f"{root}.0"
    started(backend, leaf)
    backend.client.suspend_orchestration(leaf)
    wait_for_status(backend, leaf, OrchestrationStatus.SUSPENDED)
    backend.client.raise_orchestration_event(leaf, "go", data="after resume")
    for instance_id, status in ((leaf, OrchestrationStatus.SUSPENDED), (root, OrchestrationStatus.RUNNING)):
        state = backend.client.get_orchestration_state(instance_id)
        assert state is not None and state.runtime_status == status
    backend.client.resume_orchestration(leaf)
    assert finished(backend, root).get_output() == "after resume"
