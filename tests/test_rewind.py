"""Rewind (``client.rewind_orchestration``) through the SDK's own client and worker: a failed orchestration
runs again from its last good state, only the failed work runs again, a failed sub-orchestration is rewound
with its parent, and rewinding an instance that has not failed is refused. On the local scheduler (state
file on) and on the SDK's in-memory servicer."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from durabletask import task
from durabletask.client import OrchestrationStatus
from sdk_backends import BACKENDS, WAIT, Backend, Registry, backend_with_worker

app = Registry()
ran: Counter[str] = Counter()  # activity runs, by key (the worker runs in this process)
broken: set[str] = set()  # keys whose next run fails


@app.activity
def step(ctx: task.ActivityContext, key: str) -> str:
    ran[key] += 1
    if key in broken:
        raise RuntimeError(f"{key} is broken")
    return key.upper()


@app.orchestrator
def two_steps(ctx: task.OrchestrationContext, keys: list[str]) -> Any:
    first = yield ctx.call_activity(step, input=keys[0])
    second = yield ctx.call_activity(step, input=keys[1])
    return [first, second]


@app.orchestrator
def parent_of_two_steps(ctx: task.OrchestrationContext, keys: list[str]) -> Any:
    child = yield ctx.call_sub_orchestrator(two_steps, input=keys, instance_id=f"{ctx.instance_id}-child")
    return {"child": child}


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    with backend_with_worker(request.param, tmp_path_factory.mktemp(request.param), app) as running:
        yield running


def keys() -> list[str]:
    run = uuid.uuid4().hex[:8]
    return [f"{run}-a", f"{run}-b"]


def ended(backend: Backend, instance_id: str) -> Any:
    state = backend.client.wait_for_orchestration_completion(instance_id, timeout=WAIT)
    assert state is not None
    return state


def test_a_rewound_orchestration_runs_only_its_failed_work_again(backend: Backend) -> None:
    good, bad = keys()
    broken.add(bad)
    instance_id = backend.client.schedule_new_orchestration(two_steps, input=[good, bad])
    assert ended(backend, instance_id).runtime_status == OrchestrationStatus.FAILED
    broken.discard(bad)
    backend.client.rewind_orchestration(instance_id, reason="fixed")
    state = ended(backend, instance_id)
    assert state.runtime_status == OrchestrationStatus.COMPLETED, state.failure_details
    assert state.get_output() == [good.upper(), bad.upper()]
    assert (ran[good], ran[bad]) == (1, 2), "the step that had succeeded did not run again"


def test_rewinding_a_parent_rewinds_its_failed_child(backend: Backend) -> None:
    good, bad = keys()
    broken.add(bad)
    parent = backend.client.schedule_new_orchestration(parent_of_two_steps, input=[good, bad])
    assert ended(backend, parent).runtime_status == OrchestrationStatus.FAILED
    assert ended(backend, f"{parent}-child").runtime_status == OrchestrationStatus.FAILED
    broken.discard(bad)
    backend.client.rewind_orchestration(parent)
    state = ended(backend, parent)
    assert state.runtime_status == OrchestrationStatus.COMPLETED, state.failure_details
    assert state.get_output() == {"child": [good.upper(), bad.upper()]}
    assert ended(backend, f"{parent}-child").runtime_status == OrchestrationStatus.COMPLETED
    assert (ran[good], ran[bad]) == (1, 2)


def test_only_a_failed_orchestration_rewinds(backend: Backend) -> None:
    good, other = keys()
    instance_id = backend.client.schedule_new_orchestration(two_steps, input=[good, other])
    assert ended(backend, instance_id).runtime_status == OrchestrationStatus.COMPLETED
    with pytest.raises(grpc.RpcError) as raised:
        backend.client.rewind_orchestration(instance_id)
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as unknown:
        backend.client.rewind_orchestration(f"nobody-{uuid.uuid4().hex[:6]}")
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("backend", ["local"], indirect=True)  # the SDK's servicer keeps every history
def test_a_failed_instance_whose_history_is_only_in_the_state_file_rewinds(backend: Backend) -> None:
    good, bad = keys()
    broken.add(bad)
    instance_id = backend.client.schedule_new_orchestration(two_steps, input=[good, bad])
    assert ended(backend, instance_id).runtime_status == OrchestrationStatus.FAILED
    hub = backend.scheduler.hub
    assert hub is not None
    hub.store.wait(hub.store.submit([]))  # what the failure wrote is committed
    assert hub.release_histories(now=time.time() + 3600) >= 1
    broken.discard(bad)
    backend.client.rewind_orchestration(instance_id)
    state = ended(backend, instance_id)
    assert state.runtime_status == OrchestrationStatus.COMPLETED and (ran[good], ran[bad]) == (1, 2)
