"""Durable entities through the SDK's own client and worker: signals from a client and from an
orchestration, calls with results and failures, critical sections (locks), entity state read, queried page
by page and cleaned, delayed signals, and entities that signal each other or start orchestrations. The same
tests run on the local scheduler and on the SDK's in-memory servicer."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from durabletask import entities, task
from durabletask.client import EntityQuery, OrchestrationStatus
from sdk_backends import BACKENDS, WAIT, Backend, Registry, backend_with_worker, eventually

app = Registry()


@app.entity
def counter(ctx: entities.EntityContext, amount: Any) -> Any:
    value = ctx.get_state(int, 0)
    if ctx.operation == "add":
        ctx.set_state(value + amount)
    elif ctx.operation == "get":
        return value
    elif ctx.operation == "fail":
        raise ValueError(f"counter refuses {amount}")
    elif ctx.operation == "delete":
        ctx.set_state(None)
    elif ctx.operation == "forward":  # signal another counter, then start an orchestration
        ctx.signal_entity(entities.EntityInstanceId("counter", amount["to"]), "add", amount["by"])
        ctx.schedule_new_orchestration("reads_counter", input=amount["to"], instance_id=amount["run"])
    return None


@app.orchestrator
def reads_counter(ctx: task.OrchestrationContext, key: str) -> Any:
    return (yield ctx.call_entity(entities.EntityInstanceId("counter", key), "get"))


@app.orchestrator
def adds_then_reads(ctx: task.OrchestrationContext, key: str) -> Any:
    target = entities.EntityInstanceId("counter", key)
    ctx.signal_entity(target, "add", 5)
    yield ctx.call_entity(target, "add", 2)
    return (yield ctx.call_entity(target, "get"))


@app.orchestrator
def catches_entity_failure(ctx: task.OrchestrationContext, key: str) -> Any:
    try:
        yield ctx.call_entity(entities.EntityInstanceId("counter", key), "fail", 7)
    except task.TaskFailedError as failed:
        return failed.details.message
    return "no failure"


@app.orchestrator
def transfers_under_lock(ctx: task.OrchestrationContext, keys: list[str]) -> Any:
    source, target = (entities.EntityInstanceId("counter", k) for k in keys)
    with (yield ctx.lock_entities([source, target])):
        amount = yield ctx.call_entity(source, "get")
        yield ctx.call_entity(source, "add", -amount)
        yield ctx.call_entity(target, "add", amount)
    return amount


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    with backend_with_worker(request.param, tmp_path_factory.mktemp(request.param), app) as running:
        yield running


def new_key() -> str:
    return uuid.uuid4().hex[:10]


def state_of(backend: Backend, key: str) -> Any:
    """The counter's value; None if it has none (the SDK's servicer shows such an entity with state "")."""
    found = backend.client.get_entity(entities.EntityInstanceId("counter", key))
    return parsed(None if found is None else found.get_state())


def parsed(raw: str | None) -> Any:
    return json.loads(raw) if raw else None


def finished(backend: Backend, instance_id: str) -> Any:
    state = backend.client.wait_for_orchestration_completion(instance_id, timeout=WAIT)
    assert state is not None
    return state


def test_client_signals_are_applied_in_order(backend: Backend) -> None:
    key = new_key()
    target = entities.EntityInstanceId("counter", key)
    for amount in (1, 2, 3, 4):
        backend.client.signal_entity(target, "add", amount)
    assert eventually(lambda: state_of(backend, key), lambda s: s == 10, "the four signals") == 10
    found = backend.client.get_entity(target)
    assert found is not None and found.id == target and found.last_modified is not None


def test_an_unknown_entity_is_none(backend: Backend) -> None:
    assert backend.client.get_entity(entities.EntityInstanceId("counter", new_key())) is None


def test_an_orchestration_signals_and_calls_an_entity(backend: Backend) -> None:
    key = new_key()
    instance_id = backend.client.schedule_new_orchestration(adds_then_reads, input=key)
    state = finished(backend, instance_id)
    assert state.runtime_status == OrchestrationStatus.COMPLETED and state.get_output() == 7


def test_a_failing_operation_fails_the_call_with_its_message(backend: Backend) -> None:
    instance_id = backend.client.schedule_new_orchestration(catches_entity_failure, input=new_key())
    assert "counter refuses 7" in finished(backend, instance_id).get_output()


def test_a_critical_section_moves_the_whole_amount(backend: Backend) -> None:
    source, target = new_key(), new_key()
    backend.client.signal_entity(entities.EntityInstanceId("counter", source), "add", 40)
    eventually(lambda: state_of(backend, source), lambda s: s == 40, "the source's amount")
    runs = [
        backend.client.schedule_new_orchestration(transfers_under_lock, input=[source, target])
        for _ in range(3)
    ]
    moved = sorted(finished(backend, r).get_output() for r in runs)
    assert moved == [0, 0, 40], "one transfer moved everything; the others, serialized after it, nothing"
    assert state_of(backend, source) == 0 and state_of(backend, target) == 40


def test_an_entity_signals_another_and_starts_an_orchestration(backend: Backend) -> None:
    first, second, run = new_key(), new_key(), f"from-entity-{new_key()}"
    backend.client.signal_entity(
        entities.EntityInstanceId("counter", first), "forward", {"to": second, "by": 3, "run": run}
    )
    eventually(lambda: state_of(backend, second), lambda s: s == 3, "the forwarded signal")
    state = eventually(
        lambda: backend.client.get_orchestration_state(run), lambda s: s is not None, "the started run"
    )
    assert finished(backend, state.instance_id).get_output() in (3,)


def test_a_delayed_signal_waits_for_its_time(backend: Backend) -> None:
    key = new_key()
    target = entities.EntityInstanceId("counter", key)
    at = datetime.now(timezone.utc) + timedelta(seconds=1)
    backend.client.signal_entity(target, "add", 9, signal_time=at)
    backend.client.signal_entity(target, "add", 1)
    eventually(lambda: state_of(backend, key), lambda s: s in (1, 10), "the immediate signal")
    assert eventually(lambda: state_of(backend, key), lambda s: s == 10, "the delayed signal") == 10
    assert datetime.now(timezone.utc) >= at


def test_entities_are_queried_page_by_page(backend: Backend) -> None:
    prefix = f"q{new_key()}"
    keys = [f"{prefix}-{n}" for n in range(5)]
    for key in keys:
        backend.client.signal_entity(entities.EntityInstanceId("counter", key), "add", 1)
    query = EntityQuery(instance_id_starts_with=f"@counter@{prefix}", page_size=2)
    # The SDK's servicer lists an entity before its first operation ran (state ""): wait for all five.
    found = eventually(
        lambda: backend.client.get_all_entities(query),
        lambda f: len(f) == 5 and all(parsed(e.get_state()) == 1 for e in f),
        "five entities with their state",
    )
    assert sorted(e.id.key for e in found) == keys, "the client followed the continuation tokens"


@pytest.mark.parametrize("backend", ["local"], indirect=True)  # the SDK's servicer still lists it
def test_a_deleted_entity_is_gone_from_reads_and_queries(backend: Backend) -> None:
    prefix = f"d{new_key()}"
    keys = [f"{prefix}-{n}" for n in range(3)]
    for key in keys:
        backend.client.signal_entity(entities.EntityInstanceId("counter", key), "add", 1)
    query = EntityQuery(instance_id_starts_with=f"@counter@{prefix}")
    eventually(lambda: backend.client.get_all_entities(query), lambda f: len(f) == 3, "three entities")
    backend.client.signal_entity(entities.EntityInstanceId("counter", keys[0]), "delete")
    eventually(lambda: state_of(backend, keys[0]), lambda s: s is None, "the deleted state")
    assert backend.client.get_entity(entities.EntityInstanceId("counter", keys[0])) is None
    assert sorted(e.id.key for e in backend.client.get_all_entities(query)) == keys[1:]
    with_transient = EntityQuery(instance_id_starts_with=f"@counter@{prefix}", include_transient=True)
    assert len(backend.client.get_all_entities(with_transient)) == 2, "nothing left of it to list"
