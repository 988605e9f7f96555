"""The dashboard's JSON routes over real HTTP, on the session's real scheduler and worker."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from durabletask.azuremanaged.worker import DurableTaskSchedulerWorker

from conftest import new_job_id
from monitoring.client.monitors import MonitorClient
from monitoring.client.overview import InstanceIndex, ListQuery
from monitoring.core.jobs import job_source_names
from monitoring.core.models import MonitorRequest
from monitoring.core.orchestration import ORCHESTRATOR_NAME
from monitoring.core.predict import predict
from monitoring.runtime.connection import local_connection
from monitoring.scheduler.server import LocalScheduler
from monitoring.web.dashboard import create_dashboard_app
from monitoring.web.serving import BackgroundServer

WAIT_SECONDS = 60


def wait_until(condition: Callable[[], Any], what: str) -> Any:
    """Poll ``condition`` until it is truthy; the overall limit only guards against a hang."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not (value := condition()):
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.05)
    return value


def post(server: BackgroundServer, path: str, body: Any = None, **headers: str) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json={} if body is None else body, headers=headers, timeout=30)


def test_list_is_filtered_searched_sorted_and_paged_by_the_server(
    dashboard_server: BackgroundServer, monitors: MonitorClient
) -> None:
    tag = new_job_id()
    ids = [
        monitors.start(MonitorRequest(f"{tag}-{n}", 0.2, 0.4, job_duration_seconds=0, job_outcome=outcome))
        for n, outcome in enumerate(["Completed", "Failed", "Completed"])
    ]
    for instance_id in ids:
        monitors.follow(instance_id, timeout=30)
    url = f"{dashboard_server.url}/api/instances"
    body = httpx.get(url, params={"q": tag, "limit": 2}, timeout=30).json()
    assert body["matching"] == 3 and len(body["instances"]) == 2 and body["total"] >= 3
    assert [row["instanceId"] for row in body["instances"]] == [ids[2], ids[1]]  # newest first
    rest = httpx.get(url, params={"q": tag, "limit": 2, "offset": 2}, timeout=30).json()
    assert [row["instanceId"] for row in rest["instances"]] == [ids[0]]
    by_job = httpx.get(url, params={"q": tag.upper(), "sort": "job", "order": "asc"}, timeout=30).json()
    assert [row["jobId"] for row in by_job["instances"]] == [f"{tag}-0", f"{tag}-1", f"{tag}-2"]
    failed = by_job["instances"][1]
    assert (failed["runtimeStatus"], failed["state"], failed["checkCount"]) == ("Completed", "Failed", 1)
    one = httpx.get(url, params={"q": ids[1][:12]}, timeout=30).json()
    assert [row["instanceId"] for row in one["instances"]] == [ids[1]]
    completed = httpx.get(url, params={"status": "Completed", "limit": 200}, timeout=30).json()
    assert {row["runtimeStatus"] for row in completed["instances"]} == {"Completed"}
    for bad in ({"status": "Sleeping"}, {"limit": 0}, {"limit": 1000}, {"sort": "colour"}, {"offset": -1}):
        answer = httpx.get(url, params=bad, timeout=30)
        assert answer.status_code == 400 and "\n" not in answer.json()["error"]


def test_overview_counts_and_checks_per_minute(
    dashboard_server: BackgroundServer, monitors: MonitorClient
) -> None:
    instance_id = monitors.start(MonitorRequest(new_job_id(), 0.2, 0.4, job_duration_seconds=10))
    final = monitors.follow(instance_id, timeout=30)
    assert final.result is not None and final.result.final_status == "Timeout"
    body = httpx.get(f"{dashboard_server.url}/api/overview", timeout=30).json()
    assert body["total"] == sum(body["byRuntimeStatus"].values())
    assert body["byFinalStatus"]["Timeout"] >= 1
    assert len(body["checksPerMinute"]) == 10
    assert sum(point["checks"] for point in body["checksPerMinute"]) >= final.result.checks_performed
    assert body["backend"]["kind"] == "embedded" and "in this process" in body["backend"]["label"]


def test_instance_route_gives_card_time_ordered_timeline_and_actions(
    dashboard_server: BackgroundServer, monitors: MonitorClient
) -> None:
    instance_id = monitors.start(MonitorRequest(new_job_id(), 0.2, 0.4, job_duration_seconds=0.1))
    monitors.follow(instance_id, timeout=30)
    body = httpx.get(f"{dashboard_server.url}/api/instances/{instance_id}", timeout=30).json()
    output = body["instance"]["output"]
    assert output["final_status"] == "Completed"
    kinds = [entry["kind"] for entry in body["timeline"]]
    assert kinds[0] == "started" and "timer" in kinds
    assert kinds.count("check") == output["checks_performed"] == body["card"]["check_count"]
    times = [entry["at"] for entry in body["timeline"]]
    assert times == sorted(times)  # the guard, due at the deadline plus grace, comes last
    assert body["timeline"][-1]["label"] == "deadline guard"
    for timer in (entry for entry in body["timeline"] if entry["kind"] == "timer"):
        assert timer["since"] is not None and timer["since"] <= timer["at"]
    assert body["card"]["state"] == "Completed" and body["card"]["predicted_checks"] == 2
    enabled = {action["name"] for action in body["actions"] if action["enabled"]}
    assert enabled == {"purge"}
    missing = httpx.get(f"{dashboard_server.url}/api/instances/nope", timeout=30)
    assert missing.status_code == 404 and "nope" in missing.json()["error"]


def test_a_long_monitor_shows_its_generation_and_the_current_generations_checks(
    dashboard_server: BackgroundServer, monitors: MonitorClient
) -> None:
    request = MonitorRequest(new_job_id(), 0.1, 0.6, job_duration_seconds=10, checks_per_generation=2)
    instance_id = monitors.start(request)
    final = monitors.follow(instance_id, timeout=30)
    assert final.result is not None and final.result.checks_performed == 7
    body = httpx.get(f"{dashboard_server.url}/api/instances/{instance_id}", timeout=30).json()
    card = body["card"]
    assert (card["generation"], card["check_count"], card["planned_checks"]) == (4, 7, 7)
    assert card["state"] == "Timeout" and card["predicted_final_status"] == "Timeout"
    checks = [entry for entry in body["timeline"] if entry["kind"] == "check"]
    assert len(checks) == 1  # the 4th generation's history holds its own check only


def test_data_written_by_another_client_is_shown_not_a_500(
    dashboard_server: BackgroundServer, monitors: MonitorClient
) -> None:
    """A lone surrogate in a job id cannot be UTF-8; NaN is not JSON. Another client wrote both."""
    job_id = f"{new_job_id()}-\ud800"
    odd = {
        "job_id": job_id,
        "polling_interval_seconds": 0.2,
        "timeout_seconds": 0.4,
        "job_duration_seconds": 0,
    }
    instance_id = monitors.client.schedule_new_orchestration(ORCHESTRATOR_NAME, input=odd)
    foreign = monitors.client.schedule_new_orchestration("someone_elses", input={"ratio": float("nan")})
    wait_until(lambda: monitors.details(instance_id).is_terminal, "the odd monitor to end")
    wait_until(lambda: monitors.details(foreign).is_terminal, "the foreign instance to fail")
    listed = httpx.get(f"{dashboard_server.url}/api/instances", params={"q": job_id[:12]}, timeout=30)
    assert listed.status_code == 200 and listed.json()["instances"][0]["jobId"] == job_id
    shown = httpx.get(f"{dashboard_server.url}/api/instances/{instance_id}", timeout=30)
    assert shown.status_code == 200 and shown.json()["card"]["job_id"] == job_id
    other = httpx.get(f"{dashboard_server.url}/api/instances/{foreign}", timeout=30)
    assert other.status_code == 200 and other.json()["instance"]["input"] == {"ratio": None}
    assert other.json()["card"]["state"] == "Failed" and "not registered" in other.json()["card"]["reason"]


def test_a_mistyped_page_address_gets_a_page_and_the_api_json(dashboard_server: BackgroundServer) -> None:
    page = httpx.get(f"{dashboard_server.url}/instancez/abc", timeout=30)
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "There is no page at this address." in page.text
    api = httpx.get(f"{dashboard_server.url}/api/nothing", timeout=30)
    assert api.status_code == 404 and "error" in api.json()


def test_every_control_changes_the_state_the_api_then_reports(
    dashboard_server: BackgroundServer, monitors: MonitorClient
) -> None:
    def control(instance_id: str, action: str, done: Callable[[Any], bool], body: Any = None) -> Any:
        """Press ``action``; the route answers once the change shows (or after its own short wait, saying
        so); the state is then checked through the client API, waiting on it however loaded the machine."""
        answer = post(dashboard_server, f"/api/instances/{instance_id}/{action}", body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["message"].startswith(
            ("done; the scheduler now reports", "sent; after", "purged")
        )
        return wait_until(lambda: done(monitors.details(instance_id)), f"{action} to show")

    long = MonitorRequest(new_job_id(), 0.5, 120, job_duration_seconds=600)
    first = monitors.start(long)
    wait_until(lambda: monitors.details(first).runtime_status == "Running", "the monitor to run")
    control(first, "suspend", lambda d: d.runtime_status == "Suspended", {"reason": "lunch"})
    refused = post(dashboard_server, f"/api/instances/{first}/suspend")
    assert refused.status_code == 409 and "Suspended" in refused.json()["error"]
    control(first, "resume", lambda d: d.runtime_status == "Running")
    control(first, "cancel", lambda d: d.is_terminal, {"reason": "not needed"})
    assert monitors.snapshot(first).state == "Cancelled"

    second = monitors.start(long)
    wait_until(lambda: monitors.details(second).runtime_status == "Running", "the monitor to run")
    assert post(dashboard_server, f"/api/instances/{second}/purge").status_code == 409
    control(second, "terminate", lambda d: d.runtime_status == "Terminated")
    purged = post(dashboard_server, f"/api/instances/{second}/purge")
    assert purged.status_code == 200 and "purged" in purged.json()["message"]
    gone = httpx.get(f"{dashboard_server.url}/api/instances/{second}", timeout=30)
    assert gone.status_code == 404
    listed = httpx.get(f"{dashboard_server.url}/api/instances", params={"q": second}, timeout=30).json()
    assert listed["matching"] == 0
    assert post(dashboard_server, f"/api/instances/{second}/explode").status_code == 404


def test_mutating_routes_take_only_same_origin_json(
    dashboard_server: BackgroundServer, monitors: MonitorClient
) -> None:
    instance_id = monitors.start(MonitorRequest(new_job_id(), 0.5, 60, job_duration_seconds=600))
    wait_until(lambda: monitors.details(instance_id).runtime_status == "Running", "the monitor to run")
    url = f"{dashboard_server.url}/api/instances/{instance_id}/terminate"
    refusals = [
        httpx.post(url, content="{}", timeout=30),  # no JSON content type (what a plain HTML form sends)
        httpx.post(url, data={"reason": "x"}, timeout=30),
        httpx.post(url, json={}, headers={"Origin": "http://evil.example"}, timeout=30),
        httpx.post(url, json={}, headers={"Origin": "null"}, timeout=30),
        httpx.post(url, json={}, headers={"Host": "evil.example"}, timeout=30),
        httpx.post(url, json={}, headers={"Sec-Fetch-Site": "cross-site"}, timeout=30),
        # The dashboard's own rules beside the shared guard's: its own origin, not merely this machine,
        # and JSON said even without a body.
        httpx.post(url, json={}, headers={"Origin": "http://127.0.0.1:1"}, timeout=30),
        httpx.post(url, timeout=30),
    ]
    # Not JSON: 415; another site: 403; a Host that is not this machine: 400 (monitoring.web.edge).
    assert [answer.status_code for answer in refusals] == [415, 415, 403, 403, 400, 403, 403, 415]
    assert all("\n" not in answer.json()["error"] for answer in refusals)
    assert monitors.details(instance_id).runtime_status == "Running"
    same_origin = httpx.post(url, json={}, headers={"Origin": dashboard_server.url}, timeout=30)
    assert same_origin.status_code == 200 and monitors.details(instance_id).runtime_status == "Terminated"


def test_allow_remote_accepts_another_host_name(monitors: MonitorClient) -> None:
    with BackgroundServer(create_dashboard_app(monitors, allow_remote=True)) as server:
        answer = post(server, "/api/plan", {"timeout_seconds": 10}, Host="dashboard.example:80")
    assert answer.status_code == 200 and answer.json()["planned_checks"] == 3


def test_plan_and_start_use_the_http_apis_model(
    dashboard_server: BackgroundServer, api_server: BackgroundServer, monitors: MonitorClient
) -> None:
    fields = {"polling_interval_seconds": 5, "timeout_seconds": 30, "job_duration_seconds": 12}
    plan = post(dashboard_server, "/api/plan", fields).json()
    request = MonitorRequest("x", 5, 30, job_duration_seconds=12)
    assert plan["planned_checks"] == request.schedule().planned_check_count == 7
    assert plan["predicted"]["checks_performed"] == predict(request).checks_performed == 4
    assert plan["text"].startswith("Predicted: 4 checks, ends Completed at +15 s.")
    for bad in (
        {"polling_interval_seconds": 50, "timeout_seconds": 30},
        {"timeout_seconds": "soon"},
        {"colour": "blue"},
        [1, 2],
        {"job_source": "callable", "job_source_options": {"function": "os:getcwd"}},
    ):
        ours = post(dashboard_server, "/api/plan", bad)
        theirs = httpx.post(f"{api_server.url}/api/start_monitoring_job", json=bad, timeout=30)
        assert ours.status_code == theirs.status_code == 400
        assert ours.json()["error"] == theirs.json()["error"]
    job_id = new_job_id()
    started = post(
        dashboard_server,
        "/api/monitors",
        {
            **fields,
            "job_id": job_id,
            "timeout_seconds": 1,
            "polling_interval_seconds": 0.5,
            "job_duration_seconds": 0,
        },
    )
    assert started.status_code == 201
    instance_id = started.json()["instanceId"]
    assert started.json()["url"] == f"/instances/{instance_id}"
    assert monitors.follow(instance_id, timeout=30).custom_status.job_id == job_id  # type: ignore[union-attr]


def test_start_form_offers_registered_sources_with_fields_the_model_has(
    dashboard_server: BackgroundServer,
) -> None:
    options = httpx.get(f"{dashboard_server.url}/api/start-options", timeout=30).json()
    sources = {source["name"]: source["fields"] for source in options["sources"]}
    assert sources["simulated"] == ["job_duration_seconds", "job_outcome"]
    model_fields = {field.name for field in dataclasses.fields(MonitorRequest)}
    for name, fields in sources.items():
        assert name in job_source_names() and model_fields.issuperset(f.split(".")[0] for f in fields)
    assert options["defaults"]["polling_interval_seconds"] == 5


# --- thousands of instances ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def crowded_hub() -> Iterator[MonitorClient]:
    """A scheduler of its own holding 1,500 ended instances of an orchestration nobody registered."""
    with LocalScheduler(0) as scheduler:
        connection = local_connection(scheduler.address)
        bare = DurableTaskSchedulerWorker(
            host_address=connection.endpoint,
            taskhub=connection.taskhub,
            token_credential=None,
            secure_channel=False,
        )
        bare.start()
        try:
            with MonitorClient(connection) as client:
                for n in range(1500):
                    client.client.schedule_new_orchestration(
                        "someone_elses", input=n, instance_id=f"foreign-{n:05d}"
                    )
                wait_until(
                    lambda: len(client.client.get_all_orchestration_states(_active_query())) == 0,
                    "the foreign instances to fail",
                )
                yield client
        finally:
            bare.stop()


def _active_query() -> Any:
    from durabletask.client import OrchestrationQuery

    from monitoring.client.overview import ACTIVE_STATUSES

    return OrchestrationQuery(runtime_status=ACTIVE_STATUSES)


def test_index_refreshes_with_small_queries_and_pages_in_memory(crowded_hub: MonitorClient) -> None:
    index = InstanceIndex(crowded_hub.client, min_refresh_seconds=0, reconcile_seconds=3600, page_size=100)
    index.refresh()
    assert index.states_read == 1500  # the first look reads everything once, in pages of 100
    index.refresh()
    assert index.states_read <= 1  # then only what is new or active: the newest one, read again
    page = index.page(ListQuery(sort="instance", descending=False, offset=1490, limit=25))
    assert (page.total, page.matching) == (1500, 1500)
    assert [row.instance_id for row in page.rows] == [f"foreign-{n:05d}" for n in range(1490, 1500)]
    assert {row.card.state for row in page.rows} == {"Failed"}
    found = index.page(ListQuery(search="FOREIGN-0123"))
    assert [row.instance_id for row in found.rows][:1] and found.matching == 10
    assert index.counts()[1] == {"Failed": 1500}

    crowded_hub.client.purge_orchestration("foreign-00007")
    index._reconcile_every = 0  # the periodic full look notices what was purged behind its back
    index.refresh()
    assert index.counts()[0] == 1499 and index.page(ListQuery(search="foreign-00007")).matching == 0


def test_a_page_of_the_list_stays_small_with_thousands(crowded_hub: MonitorClient) -> None:
    with BackgroundServer(create_dashboard_app(crowded_hub)) as server:
        answer = httpx.get(f"{server.url}/api/instances", params={"limit": 25}, timeout=30)
        overview = httpx.get(f"{server.url}/api/overview", timeout=30).json()
    assert answer.json()["matching"] >= 1499 and len(answer.json()["instances"]) == 25
    assert len(answer.content) < 12_000
    assert overview["byRuntimeStatus"]["Failed"] == overview["total"]
