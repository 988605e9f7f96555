"""The dashboard's view of sub-orchestrations, durable entities and the SDK's schedules: the pure readers
(history to parent and children, entity metadata and schedule descriptions to rows), then the routes over
real HTTP on a local scheduler of their own with the SDK's own worker (``tests/dashboard_hub.py``)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from dashboard_hub import Hub, dashboard_hub, fan_out, nightly
from durabletask import history
from durabletask.client import OrchestrationStatus
from durabletask.entities import EntityInstanceId, EntityMetadata
from durabletask.scheduled import (
    ScheduleCreationOptions,
    ScheduleDescription,
    ScheduledTaskClient,
    ScheduleStatus,
)
from durabletask.serialization import JsonDataConverter
from sdk_backends import WAIT, eventually, wait_for_status

from monitoring.client.entities import entity_prefix, entity_row, schedule_row
from monitoring.client.lineage import read_lineage

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


# --- pure readers --------------------------------------------------------------------------------------


def started(parent: str | None) -> history.ExecutionStartedEvent:
    info = None
    if parent is not None:
        info = history.ParentInstanceInfo(3, "fan_out", None, history.OrchestrationInstance(parent, "x"))
    return history.ExecutionStartedEvent(event_id=-1, timestamp=EPOCH, name="leaf", parent_instance=info)


def created(event_id: int, child: str) -> history.SubOrchestrationInstanceCreatedEvent:
    return history.SubOrchestrationInstanceCreatedEvent(
        event_id=event_id, timestamp=EPOCH, instance_id=child, name="leaf"
    )


def test_read_lineage_names_the_parent_and_each_child_once_in_order() -> None:
    events = [started("p-1"), created(0, "p-1:0000"), created(1, "named"), created(0, "p-1:0000")]
    lineage = read_lineage(events)
    assert lineage.parent == "p-1" and lineage.children == ("p-1:0000", "named")
    alone = read_lineage([started(None), history.ExecutionStartedEvent(-1, EPOCH, name="again")])
    assert (alone.parent, alone.children) == (None, ())
    assert read_lineage([]).parent is None


def test_entity_rows_show_state_as_short_text_and_prefixes_lower_the_name_only() -> None:
    long_state = json.dumps({"notes": "<script>alert(1)</script>" * 20})
    metadata = EntityMetadata(
        EntityInstanceId("Counter", "Key-A"), EPOCH, 2, "orch-1", True, long_state, JsonDataConverter()
    )
    row = entity_row(metadata)
    assert (row["id"], row["name"], row["key"], row["backlog"], row["lockedBy"]) == (
        "@counter@Key-A", "counter", "Key-A", 2, "orch-1",
    )  # fmt: skip
    assert len(row["state"]) == 200 and row["state"].endswith("…") and row["stateLength"] == len(long_state)
    assert row["lastModified"] == "1970-01-01T00:00:00.000Z" and row["isSchedule"] is False
    unlocked = entity_row(
        EntityMetadata(EntityInstanceId("c", "k"), EPOCH, 0, "", True, "5", JsonDataConverter())
    )
    assert (unlocked["lockedBy"], unlocked["state"]) == (None, "5")
    assert entity_prefix("Counter") == "@counter" and entity_prefix("Counter@Key-") == "@counter@Key-"
    assert entity_prefix("@schedule@nightly") == "@schedule@nightly"


def test_schedule_rows_say_interval_status_and_runs() -> None:
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    description = ScheduleDescription(
        "nightly", "nightly", interval=timedelta(minutes=5), status=ScheduleStatus.PAUSED, next_run_at=when
    )
    row = schedule_row(description)
    assert (row["id"], row["orchestrationName"], row["intervalSeconds"], row["status"]) == (
        "nightly", "nightly", 300.0, "Paused",
    )  # fmt: skip
    assert (row["lastRunAt"], row["nextRunAt"]) == (None, "2030-01-02T03:04:05.000Z")


# --- the routes, on a real scheduler and the SDK's worker ----------------------------------------------


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    with dashboard_hub(tmp_path_factory.mktemp("dashboard-hub")) as running:
        yield running


def instance(hub: Hub, instance_id: str) -> dict:
    answer = httpx.get(f"{hub.url}/api/instances/{instance_id}", timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_parent_shows_both_children_with_their_status_and_each_child_its_parent(hub: Hub) -> None:
    client = hub.backend.client
    parent = client.schedule_new_orchestration(fan_out, instance_id=f"fan-{uuid.uuid4().hex[:8]}")
    waiting = f"{parent}-waiting"
    wait_for_status(hub.backend, waiting, OrchestrationStatus.RUNNING)
    body = eventually(
        lambda: instance(hub, parent),
        lambda b: [child["runtimeStatus"] for child in b["children"]] == ["Completed", "Running"],
        "both children in the history, the quick one done",
    )
    quick = body["children"][0]["instanceId"]
    assert quick.startswith(f"{parent}:")  # the SDK's default id: found by the one query by prefix
    assert body["parent"] is None and body["childCount"] == 2
    assert body["children"] == [
        {"instanceId": quick, "runtimeStatus": "Completed"},
        {"instanceId": waiting, "runtimeStatus": "Running"},
    ]
    assert body["card"]["state"] == "Running"  # not a monitor: its card reads what it has
    for child in (quick, waiting):
        shown = instance(hub, child)
        assert shown["parent"] == parent and shown["children"] == [] and shown["childCount"] == 0
    client.raise_orchestration_event(waiting, "go", data="now")
    done = client.wait_for_orchestration_completion(parent, timeout=WAIT)
    assert done is not None and json.loads(done.serialized_output or "null") == [42, "now"]
    final = instance(hub, parent)
    assert {child["runtimeStatus"] for child in final["children"]} == {"Completed"}
    assert final["instance"]["runtimeStatus"] == "Completed" and final["card"]["state"] == "Completed"


def test_entities_route_lists_a_signalled_entity_with_its_state(hub: Hub) -> None:
    key = f"k-{uuid.uuid4().hex[:8]}"
    state = {"html": "<img src=x onerror=alert(1)>", "n": 7}
    hub.backend.client.signal_entity(EntityInstanceId("counter", key), "set", state)
    url = f"{hub.url}/api/entities"
    body = eventually(
        lambda: httpx.get(url, params={"q": f"counter@{key}"}, timeout=30).json(),
        lambda b: b.get("matching") == 1,
        "the entity to be listed",
    )
    row = body["entities"][0]
    assert (row["id"], row["name"], row["key"], row["backlog"], row["lockedBy"]) == (
        f"@counter@{key}", "counter", key, 0, None,
    )  # fmt: skip
    assert json.loads(row["state"]) == state and row["lastModified"].endswith("Z")
    everything = httpx.get(url, params={"limit": 200}, timeout=30).json()
    assert f"@counter@{key}" in {row["id"] for row in everything["entities"]}
    assert httpx.get(url, params={"q": "nobody-has-this-name"}, timeout=30).json()["matching"] == 0
    page = httpx.get(url, params={"q": "counter", "offset": 10_000}, timeout=30).json()
    assert page["entities"] == [] and page["matching"] >= 1


@pytest.mark.parametrize("route", ["/api/entities", "/api/schedules"])
def test_hostile_searches_get_one_line_4xx_json(hub: Hub, route: str) -> None:
    hostile = [
        f"{hub.url}{route}?q={'a' * 10_000}",
        f"{hub.url}{route}?q=%ff%fe%80",  # bytes that are not UTF-8
        f"{hub.url}{route}?q=ab%00cd",  # NUL
        f"{hub.url}{route}?q=%1b%5b31m",  # a terminal escape
        f"{hub.url}{route}?limit=0",
        f"{hub.url}{route}?offset=-1",
    ]
    for address in hostile:
        answer = httpx.get(address, timeout=30)
        assert 400 <= answer.status_code < 500, (address[:80], answer.status_code, answer.text[:200])
        assert answer.headers["content-type"].startswith("application/json")
        error = answer.json()["error"]
        assert "\n" not in error and len(error) < 400, error
    assert httpx.get(f"{hub.url}{route}?q=%ff", timeout=30).json()["field"] == "q"


def test_schedules_route_lists_a_schedule_created_with_the_sdks_client(hub: Hub) -> None:
    schedule_id = f"every-second-{uuid.uuid4().hex[:8]}"
    options = ScheduleCreationOptions(
        schedule_id=schedule_id, orchestration_name=nightly.__name__, interval=timedelta(seconds=1),
        orchestration_input="tonight",
    )  # fmt: skip
    ScheduledTaskClient(hub.backend.client, operation_timeout=WAIT).create_schedule(options)
    url = f"{hub.url}/api/schedules"
    body = eventually(
        lambda: httpx.get(url, params={"q": schedule_id}, timeout=30).json(),
        lambda b: b.get("matching") == 1 and b["schedules"][0]["lastRunAt"] is not None,
        "the schedule to have run",
    )
    row = body["schedules"][0]
    assert (row["id"], row["orchestrationName"], row["intervalSeconds"], row["status"]) == (
        schedule_id, "nightly", 1.0, "Active",
    )  # fmt: skip
    assert row["nextRunAt"] is not None and row["nextRunAt"] >= row["lastRunAt"]
    entities = httpx.get(f"{hub.url}/api/entities", params={"q": f"schedule@{schedule_id}"}, timeout=30)
    assert entities.json()["entities"][0]["isSchedule"] is True
    ScheduledTaskClient(hub.backend.client, operation_timeout=WAIT).get_schedule_client(schedule_id).pause()
    paused = httpx.get(url, params={"q": schedule_id}, timeout=30).json()["schedules"][0]
    assert paused["status"] == "Paused"


def test_the_pages_are_served(hub: Hub) -> None:
    for path in ("/entities", "/schedules"):
        page = httpx.get(f"{hub.url}{path}", timeout=30)
        assert page.status_code == 200 and "/static/catalog.js" in page.text
    listing = httpx.get(f"{hub.url}/", timeout=30).text
    assert 'href="/entities"' in listing and 'href="/schedules"' in listing
