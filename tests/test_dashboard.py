"""The dashboard: its JSON routes over real HTTP, and its pages in a real browser (headless Chromium)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx

from conftest import new_job_id
from monitoring.client.monitors import MonitorClient
from monitoring.core.models import MonitorRequest
from monitoring.web.serving import BackgroundServer

BROWSER_WAIT_MS = 30_000


def test_instance_list_comes_from_one_query_newest_first(
    dashboard_server: BackgroundServer, monitors: MonitorClient
) -> None:
    first = monitors.start(MonitorRequest(new_job_id(), 0.2, 0.4, job_duration_seconds=0))
    second = monitors.start(MonitorRequest(new_job_id(), 0.2, 0.4, job_duration_seconds=0))
    monitors.follow(first, timeout=30)
    monitors.follow(second, timeout=30)
    body = httpx.get(f"{dashboard_server.url}/api/instances", timeout=30).json()
    assert body["taskhub"] == "default"
    ids = [instance["instanceId"] for instance in body["instances"]]
    assert ids.index(second) < ids.index(first)
    shown = body["instances"][ids.index(first)]
    assert shown["runtimeStatus"] == "Completed" and shown["customStatus"]["final_status"] == "Completed"
    assert set(shown) >= {
        "name",
        "instanceId",
        "runtimeStatus",
        "customStatus",
        "createdTime",
        "lastUpdatedTime",
    }


def test_instance_route_gives_details_and_timeline(
    dashboard_server: BackgroundServer, monitors: MonitorClient
) -> None:
    instance_id = monitors.start(MonitorRequest(new_job_id(), 0.2, 0.4, job_duration_seconds=0.2))
    monitors.follow(instance_id, timeout=30)
    body = httpx.get(f"{dashboard_server.url}/api/instances/{instance_id}", timeout=30).json()
    assert body["instance"]["output"]["final_status"] == "Completed"
    kinds = [entry["kind"] for entry in body["timeline"]]
    assert kinds[0] == "started" and kinds[-1] == "ended" and "timer" in kinds
    assert kinds.count("check") == body["instance"]["output"]["checks_performed"] == 2  # at 0 and 0.2 s


def test_unknown_instance_is_404_json_and_pages_are_served(dashboard_server: BackgroundServer) -> None:
    missing = httpx.get(f"{dashboard_server.url}/api/instances/nope", timeout=30)
    assert missing.status_code == 404 and "nope" in missing.json()["error"]
    for path, marker in [("/", "Dashboard.listPage()"), ("/instances/abc", "Dashboard.instancePage()")]:
        page = httpx.get(f"{dashboard_server.url}{path}", timeout=30)
        assert page.status_code == 200 and marker in page.text
    script = httpx.get(f"{dashboard_server.url}/static/dashboard.js", timeout=30)
    assert script.status_code == 200 and "/api/instances" in script.text


def test_browser_sees_a_run_appear_finish_and_its_timeline(
    browser_page: Any,
    dashboard_server: BackgroundServer,
    api_server: BackgroundServer,
    artifacts: Path,
) -> None:
    page = browser_page
    page.goto(f"{dashboard_server.url}/?refresh=0.3")
    page.wait_for_selector("#refreshed:has-text('refreshed')", timeout=BROWSER_WAIT_MS)

    job_id = new_job_id()
    body = {
        "job_id": job_id,
        "polling_interval_seconds": 0.5,
        "timeout_seconds": 5,
        "job_duration_seconds": 1.5,  # ends exactly when the 4th check is due
    }
    started = httpx.post(f"{api_server.url}/api/start_monitoring_job", json=body, timeout=30)
    assert started.status_code == 202
    instance_id = started.json()["id"]

    row = f"tr[data-instance-id='{instance_id}']"
    page.wait_for_selector(row, timeout=BROWSER_WAIT_MS)
    page.wait_for_selector(f"{row}[data-runtime-status='Completed']", timeout=BROWSER_WAIT_MS)
    assert page.inner_text(f"{row} td.custom-status") == f"{job_id}: Completed, checks 4 → Completed"
    assert "monitoring_job_orchestrator" in page.inner_text(row)
    page.screenshot(path=str(artifacts / "dashboard.png"), full_page=False)

    page.click(f"{row} a")
    page.wait_for_url(re.compile(f"/instances/{instance_id}$"), timeout=BROWSER_WAIT_MS)
    page.wait_for_selector("#timeline tr.kind-ended", timeout=BROWSER_WAIT_MS)
    assert page.inner_text("#status") == "Completed"
    assert page.inner_text("#timeline-summary") == "4 check(s), 4 timer(s)"  # 3 waits and the guard
    check_rows = page.query_selector_all("#timeline tr.kind-check")
    assert [row.query_selector_all("td")[3].inner_text() for row in check_rows] == [
        "Running",
        "Running",
        "Running",
        "Completed",
    ]
    assert f'"job_id": "{job_id}"' in page.inner_text("#input")
    assert '"final_status": "Completed"' in page.inner_text("#output")
    assert '"check_count": 4' in page.inner_text("#custom-status")
    page.screenshot(path=str(artifacts / "dashboard-instance.png"), full_page=True)
