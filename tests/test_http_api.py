"""The HTTP API over real HTTP (uvicorn on a free loopback port) against a real worker and scheduler."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import fields
from typing import Any

import httpx
import pytest
from durabletask import history

from conftest import new_job_id
from monitoring.client.monitors import MonitorClient
from monitoring.core.models import MonitorRequest
from monitoring.web.serving import BackgroundServer

INSTANCES = "/runtime/webhooks/durabletask/instances"
# A job that ends exactly when the 4th check (0, 0.4, 0.8, 1.2 s) is due: that check sees it, on any machine.
QUICK_JOB = {"polling_interval_seconds": 0.4, "timeout_seconds": 4, "job_duration_seconds": 1.2}
# A job that keeps running for the whole test (terminated at the end).
LONG_JOB = {"polling_interval_seconds": 0.5, "timeout_seconds": 120, "job_duration_seconds": 100}


@pytest.fixture
def http(api_server: BackgroundServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_server.url, timeout=30) as client:
        yield client


def start(http: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = http.post("/api/start_monitoring_job", json=body)
    assert response.status_code == 202, response.text
    return response.json()


def wait_for(http: httpx.Client, instance_id: str, statuses: set[str], limit: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + limit
    while True:
        body = http.get(f"{INSTANCES}/{instance_id}").json()
        if body["runtimeStatus"] in statuses:
            return body
        assert time.monotonic() < deadline, f"{instance_id} still {body['runtimeStatus']}"
        time.sleep(0.1)


def raised_events(monitors: MonitorClient, instance_id: str, limit: float = 30) -> list[tuple[str, Any]]:
    """The events in the instance's history, once there is one (it lands with the next episode)."""
    deadline = time.monotonic() + limit
    while True:
        raised = [e for e in monitors.history(instance_id) if isinstance(e, history.EventRaisedEvent)]
        if raised or time.monotonic() > deadline:
            return [(event.name, event.input) for event in raised]
        time.sleep(0.1)


def instance_count(monitors: MonitorClient) -> int:
    return len(monitors.list_instances())


def test_start_answers_202_with_management_urls_that_work(
    http: httpx.Client, api_server: BackgroundServer, monitors: MonitorClient
) -> None:
    response = http.post("/api/start_monitoring_job", json={"job_id": new_job_id(), **LONG_JOB})
    assert response.status_code == 202
    urls = response.json()
    instance = f"{api_server.url}{INSTANCES}/{urls['id']}"
    assert urls == {
        "id": urls["id"],
        "statusQueryGetUri": instance,
        "sendEventPostUri": f"{instance}/raiseEvent/{{eventName}}",
        "terminatePostUri": f"{instance}/terminate?reason={{text}}",
        "purgeHistoryDeleteUri": instance,
    }
    assert response.headers["Location"] == instance

    running = wait_for(http, urls["id"], {"Running"})
    assert http.get(urls["statusQueryGetUri"]).status_code == 202

    event = http.post(urls["sendEventPostUri"].replace("{eventName}", "approval"), json={"ok": True})
    assert event.status_code == 202
    assert raised_events(monitors, urls["id"]) == [("approval", '{"ok": true}')]

    terminated = http.post(urls["terminatePostUri"].replace("{text}", "no%20longer%20needed"))
    assert terminated.status_code == 202
    final = wait_for(http, urls["id"], {"Terminated"})
    assert final["output"] == "no longer needed"
    assert final["input"] == running["input"]

    purged = http.delete(urls["purgeHistoryDeleteUri"])
    assert purged.status_code == 200 and purged.json() == {"instancesDeleted": 1}
    assert http.get(urls["statusQueryGetUri"]).status_code == 404


def test_status_has_the_seed_shape_while_running_and_when_done(http: httpx.Client) -> None:
    job_id = new_job_id()
    urls = start(http, {"job_id": job_id, **QUICK_JOB})
    done = wait_for(http, urls["id"], {"Completed", "Failed", "Terminated"})
    response = http.get(urls["statusQueryGetUri"])
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "name",
        "instanceId",
        "runtimeStatus",
        "input",
        "customStatus",
        "output",
        "createdTime",
        "lastUpdatedTime",
    }
    assert done["runtimeStatus"] == "Completed"
    assert body["name"] == "monitoring_job_orchestrator" and body["instanceId"] == urls["id"]
    assert body["input"] == {
        "job_id": job_id,
        **QUICK_JOB,
        "timeout_seconds": 4.0,
        "job_outcome": "Completed",
    }
    assert body["customStatus"]["status"] == "Completed" and body["customStatus"]["check_count"] == 4
    output = dict(body["output"])
    assert output.pop("monitoring_duration_seconds") >= 1.2, "it ended after the check due at 1.2 s"
    assert output == {"job_id": job_id, "final_status": "Completed", "checks_performed": 4}
    assert body["createdTime"].endswith("Z") and body["lastUpdatedTime"] >= body["createdTime"]


def test_an_empty_body_or_none_at_all_takes_the_defaults(http: httpx.Client, monitors: MonitorClient) -> None:
    for response in (
        http.post("/api/start_monitoring_job", json={}),
        http.post("/api/start_monitoring_job", content=b""),
    ):
        assert response.status_code == 202, response.text
        instance_id = response.json()["id"]
        body = http.get(f"{INSTANCES}/{instance_id}").json()
        assert body["input"]["polling_interval_seconds"] == 5.0 and body["input"]["timeout_seconds"] == 30.0
        assert body["input"]["job_id"].startswith("job-")
        monitors.terminate(instance_id, "test over")


def test_job_status_answers_from_the_newest_monitor_of_the_job(http: httpx.Client) -> None:
    job_id = new_job_id()
    urls = start(http, {"job_id": job_id, **LONG_JOB})
    wait_for(http, urls["id"], {"Running"})
    response = http.get(f"/api/job_status/{job_id}")
    assert response.status_code == 200
    running = response.json()
    assert running["job_id"] == job_id and running["status"] == "Running"
    assert running["instanceId"] == urls["id"] and running["monitorRuntimeStatus"] == "Running"
    http.post(f"{INSTANCES}/{urls['id']}/terminate")

    failing = start(http, {"job_id": job_id, **QUICK_JOB, "job_outcome": "Failed", "job_duration_seconds": 0})
    wait_for(http, failing["id"], {"Completed"})
    answer = http.get(f"/api/job_status/{job_id}").json()
    assert answer["status"] == "Failed" and answer["instanceId"] == failing["id"]


def test_unknown_ids_get_404_everywhere(http: httpx.Client) -> None:
    unknown = f"{INSTANCES}/no-such-instance"
    for response in (
        http.get(unknown),
        http.post(f"{unknown}/raiseEvent/go", json=1),
        http.post(f"{unknown}/terminate", params={"reason": "x"}),
        http.delete(unknown),
        http.get("/api/job_status/no-such-job"),
    ):
        assert response.status_code == 404, response.request.url
        assert "no-such-" in response.json()["error"]


def test_finished_instances_take_no_events_and_cannot_be_terminated(http: httpx.Client) -> None:
    urls = start(http, {"job_id": new_job_id(), **QUICK_JOB})
    wait_for(http, urls["id"], {"Completed"})
    event = http.post(f"{INSTANCES}/{urls['id']}/raiseEvent/go", json={})
    assert event.status_code == 410 and "is Completed: it takes no more events" in event.json()["error"]
    terminate = http.post(f"{INSTANCES}/{urls['id']}/terminate", params={"reason": "late"})
    assert terminate.status_code == 410 and "already Completed" in terminate.json()["error"]
    assert http.get(f"{INSTANCES}/{urls['id']}").json()["output"]["final_status"] == "Completed"


def test_active_instances_cannot_be_purged_and_events_need_json(http: httpx.Client) -> None:
    urls = start(http, {"job_id": new_job_id(), **LONG_JOB})
    wait_for(http, urls["id"], {"Running"})
    purge = http.delete(urls["purgeHistoryDeleteUri"])
    assert purge.status_code == 409 and "only finished instances can be purged" in purge.json()["error"]
    bad_event = http.post(
        f"{INSTANCES}/{urls['id']}/raiseEvent/go",
        content=b"{oops",
        headers={"Content-Type": "application/json"},
    )
    assert bad_event.status_code == 400 and "not valid JSON" in bad_event.json()["error"]
    assert http.get(urls["statusQueryGetUri"]).json()["runtimeStatus"] == "Running"
    assert http.post(f"{INSTANCES}/{urls['id']}/terminate").status_code == 202
    assert wait_for(http, urls["id"], {"Terminated"})["output"] is None


def test_unknown_routes_and_methods_answer_json_errors(http: httpx.Client) -> None:
    missing = http.get("/api/nothing-here")
    assert missing.status_code == 404 and missing.json() == {"error": "Not Found"}
    wrong_method = http.get("/api/start_monitoring_job")
    assert wrong_method.status_code == 405 and "error" in wrong_method.json()


def test_openapi_schema_documents_every_route(http: httpx.Client) -> None:
    schema = http.get("/openapi.json").json()
    paths = schema["paths"]
    assert set(paths) == {
        "/api/start_monitoring_job",
        "/api/start_monitoring_batch",
        "/api/job_status/{jobId}",
        f"{INSTANCES}/{{instanceId}}",
        f"{INSTANCES}/{{instanceId}}/raiseEvent/{{eventName}}",
        f"{INSTANCES}/{{instanceId}}/terminate",
    }
    start_body = paths["/api/start_monitoring_job"]["post"]["requestBody"]["content"]["application/json"]
    reference = start_body["schema"]["anyOf"][0]["$ref"]  # the body is MonitorRequest itself, or null
    model = schema["components"]["schemas"][reference.rsplit("/", 1)[-1]]
    assert set(model["properties"]) == {field.name for field in fields(MonitorRequest)}
    assert model["additionalProperties"] is False
    interval = model["properties"]["polling_interval_seconds"]
    assert (interval["minimum"], interval["maximum"], interval["default"]) == (0.001, 31536000, 5.0)
    assert model["properties"]["job_id"]["anyOf"][0]["maxLength"] == 200
    start_answers = paths["/api/start_monitoring_job"]["post"]["responses"]
    assert "ManagementUrls" in str(start_answers["202"]) and "ErrorBody" in str(start_answers["400"])
    assert "422" not in start_answers
    assert set(paths[f"{INSTANCES}/{{instanceId}}"]) == {"get", "delete"}
    assert http.get("/docs").status_code == 200


def test_a_batch_starts_with_202_and_its_management_urls_show_its_result(http: httpx.Client) -> None:
    jobs = [
        {"job_id": new_job_id(), **QUICK_JOB},
        {"job_id": new_job_id(), **QUICK_JOB, "job_outcome": "Failed"},
        {**QUICK_JOB, "job_duration_seconds": 100},  # no job_id: one is made up, as for a single start
    ]
    response = http.post("/api/start_monitoring_batch", json={"jobs": jobs, "max_concurrent": 2})
    assert response.status_code == 202, response.text
    urls = response.json()
    assert response.headers["location"] == urls["statusQueryGetUri"]
    done = wait_for(http, urls["id"], {"Completed", "Failed"}, limit=120)
    assert done["runtimeStatus"] == "Completed", done
    output = done["output"]
    assert [job["final_status"] for job in output["jobs"]] == ["Completed", "Failed", "Timeout"]
    assert output["jobs"][0]["job_id"] == jobs[0]["job_id"] and output["jobs"][2]["job_id"]
    assert output["counts"] == {"completed": 1, "failed": 1, "timed_out": 1, "cancelled": 0}


@pytest.mark.parametrize(
    ("jobs", "message"),
    [
        ([{}, {}, {"polling_interval_seconds": "often"}], "jobs[2]: polling_interval_seconds"),
        (
            [{}, {"job_source": "callable", "job_source_options": {"function": "os:getcwd"}}],
            "jobs[1]: job_source",
        ),
    ],
)
def test_one_bad_job_refuses_the_whole_batch_with_400_naming_its_index(
    http: httpx.Client, monitors: MonitorClient, jobs: list[dict[str, Any]], message: str
) -> None:
    before = instance_count(monitors)
    response = http.post("/api/start_monitoring_batch", json={"jobs": jobs})
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith(message) and response.json()["field"] == "jobs"
    assert instance_count(monitors) == before  # nothing was scheduled
