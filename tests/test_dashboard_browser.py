"""The dashboard in a real browser (headless Chromium): the picture, the card, the controls, the list's
filters, the start form, the keyboard, a parent's children, the entities and schedules pages, and screenshots
at a wide and a narrow window."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from dashboard_hub import Hub, dashboard_hub, fan_out, nightly
from durabletask.entities import EntityInstanceId
from durabletask.scheduled import ScheduleCreationOptions, ScheduledTaskClient
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from conftest import new_job_id
from monitoring.client.monitors import MonitorClient
from monitoring.core.models import MonitorRequest
from monitoring.notebook.job_service import JobService
from monitoring.web.serving import BackgroundServer

WAIT_MS = 30_000
WIDE = {"width": 1400, "height": 1000}
NARROW = {"width": 420, "height": 900}


def wait_for_text(page: Any, selector: str, prefix: str) -> None:
    page.wait_for_function(
        "([selector, prefix]) => document.querySelector(selector).textContent.startsWith(prefix)",
        arg=[selector, prefix],
        timeout=WAIT_MS,
    )


def api_status(api: BackgroundServer, instance_id: str) -> httpx.Response:
    """The instance as the HTTP API (the Durable Functions status route) reports it."""
    return httpx.get(f"{api.url}/runtime/webhooks/durabletask/instances/{instance_id}", timeout=30)


def wait_for_api(api: BackgroundServer, instance_id: str, runtime_status: str) -> dict[str, Any]:
    """Poll the HTTP API until it reports ``runtime_status``; the limit only guards against a hang."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while (body := api_status(api, instance_id).json()).get("runtimeStatus") != runtime_status:
        assert time.monotonic() < deadline, body
        time.sleep(0.05)
    return body


def shows_result(line: str, label: str, reported: str) -> bool:
    """The result line of an action: done (and what the scheduler then reports), or sent and still pending."""
    return line == f"{label}: done; the scheduler now reports {reported}" or line.startswith(
        f"{label}: sent;"
    )


def open_instance(page: Any, server: BackgroundServer, instance_id: str) -> None:
    page.goto(f"{server.url}/instances/{instance_id}?refresh=0.3")
    page.wait_for_selector("#chart svg", timeout=WAIT_MS)


def act(page: Any, action: str, reason: str | None = None) -> str:
    """Press the action's button, confirm in the dialog, and return the result line."""
    button = page.locator(f"#actions button[data-action='{action}']")
    button.wait_for(timeout=WAIT_MS)
    page.wait_for_function(
        f"() => !document.querySelector(\"#actions button[data-action='{action}']\").disabled",
        timeout=WAIT_MS,
    )
    label = button.inner_text()
    dialog = page.locator("dialog#confirm")
    for _ in range(3):  # the page redraws its buttons while it polls; a click landing then is lost
        button.click()
        try:
            dialog.wait_for(state="visible", timeout=5_000)
            break
        except PlaywrightTimeout:
            continue
    assert dialog.is_visible(), f"the {action} button opened no confirmation in three clicks"
    if reason is not None:
        page.fill("#confirm-reason", reason)
    page.click("#confirm-go")
    page.wait_for_function(
        "label => { const text = document.querySelector('#action-result').textContent;"
        " return text.startsWith(label) && !text.endsWith('sending…'); }",
        arg=label,
        timeout=WAIT_MS,
    )
    return page.inner_text("#action-result")


def test_instance_page_draws_one_mark_per_check_and_the_table_in_time_order(
    browser_page: Any, dashboard_server: BackgroundServer, monitors: MonitorClient, artifacts: Path
) -> None:
    page = browser_page
    request = MonitorRequest(new_job_id(), 0.5, 3, job_duration_seconds=1.2)
    instance_id = monitors.start(request)
    final = monitors.follow(instance_id, timeout=30)
    assert final.result is not None
    open_instance(page, dashboard_server, instance_id)
    page.wait_for_selector("#timeline tr.kind-ended", timeout=WAIT_MS)
    marks = page.locator("#chart [data-kind='check']")
    assert marks.count() == final.result.checks_performed == 4
    assert [marks.nth(n).get_attribute("data-status") for n in range(4)] == ["Running"] * 3 + ["Completed"]
    colours = {marks.nth(n).evaluate("node => getComputedStyle(node).fill") for n in (0, 3)}
    assert len(colours) == 2  # Running and Completed are drawn in different colours
    timers = page.locator("#timeline tbody tr.kind-timer").count()  # waits (as late checks allow), the guard
    assert timers >= 1 and page.locator("#chart [data-kind='timer']").count() == timers
    for marker in ("start", "deadline", "end"):
        assert page.locator(f"#chart [data-marker='{marker}']").count() == 1
    times = page.eval_on_selector_all("#timeline tbody tr", "rows => rows.map(row => row.dataset.at)")
    assert (
        times == sorted(times)
        and page.inner_text("#timeline tbody tr:last-child td:nth-child(3)") == "deadline guard"
    )
    assert page.inner_text("#card-checks .tile-value") == "check 4 of 4"
    assert page.inner_text("#card-job .tile-value") == "Completed"
    assert not page.is_visible("#custom-status")
    page.click("details.raw summary")  # the raw JSON is one click away
    assert '"check_count": 4' in page.inner_text("#custom-status")
    assert page.locator("#actions button:enabled").all_inner_texts() == ["Purge"]
    assert page.inner_text("#actions-why") == (
        "Not for this instance now: Cancel (a monitor that is Pending or Running), Suspend (Pending or "
        "Running), Resume (Suspended), Terminate (Pending, Running or Suspended)."
    )
    page.screenshot(path=str(artifacts / "dashboard-instance-wide.png"), full_page=True)
    page.set_viewport_size(NARROW)
    page.wait_for_function("() => document.querySelector('#chart svg').getAttribute('width') < 420")
    assert page.locator("#chart [data-kind='check']").count() == 4
    page.screenshot(path=str(artifacts / "dashboard-instance-narrow.png"), full_page=True)


def test_failed_attempts_are_crosses_beside_one_dot_per_check(
    browser_page: Any, dashboard_server: BackgroundServer, monitors: MonitorClient, artifacts: Path
) -> None:
    page = browser_page
    request = MonitorRequest(
        new_job_id(),
        0.5,
        2,
        job_duration_seconds=0.9,
        job_fail_first_attempts=2,
        retry_first_interval_seconds=0.1,
    )
    instance_id = monitors.start(request)
    final = monitors.follow(instance_id, timeout=30)
    assert final.result is not None and final.result.checks_performed == 3
    open_instance(page, dashboard_server, instance_id)
    page.wait_for_selector("#timeline tr.kind-ended", timeout=WAIT_MS)
    assert page.locator("#chart [data-kind='check']").count() == 3
    assert page.locator("#chart [data-kind='check-failed']").count() == 2
    # The waits between checks depend on how late the retries ran (an overdue check needs no timer).
    assert page.inner_text("#timeline-summary").startswith("3 check(s), 2 failed attempt(s), ")
    labels = page.eval_on_selector_all(
        "#timeline tbody tr", "rows => rows.map(row => row.children[2].textContent + '/' + row.dataset.kind)"
    )
    assert labels[1:6] == [
        "check 1/check-failed",
        "retry wait/timer",
        "check 1/check-failed",
        "retry wait/timer",
        "check 1/check",
    ]
    page.screenshot(path=str(artifacts / "dashboard-instance-retries.png"), full_page=True)


def test_a_later_generation_draws_its_guard_in_its_lane_and_no_carried_event_at_its_start(
    browser_page: Any, dashboard_server: BackgroundServer, monitors: MonitorClient, artifacts: Path
) -> None:
    """Generation 3 of a monitor (two checks a generation) with an event raised in generation 1, carried
    over by each continue-as-new: the guard has its lane, the event its row but no time to be drawn at."""
    page = browser_page
    request = MonitorRequest(new_job_id(), 0.2, 1, job_duration_seconds=10, checks_per_generation=2)
    instance_id = monitors.start(request)
    monitors.raise_event(instance_id, "note", {"said": "hello"})
    final = monitors.follow(instance_id, timeout=30)
    assert final.custom_status is not None and final.custom_status.generation == 3
    open_instance(page, dashboard_server, instance_id)
    page.wait_for_selector("#timeline tr.kind-ended", timeout=WAIT_MS)
    lanes = page.locator("#chart .lane-name").all_text_contents()  # SVG text: no layout text to read
    assert lanes[0] == "checks" and "guard" in lanes and "events" not in lanes, lanes
    timers = page.locator("#chart [data-kind='timer'] title").all_text_contents()
    assert [title.split(":")[0] for title in timers].count("deadline guard") == 1, timers
    assert page.locator("#chart [data-kind='event']").count() == 0
    carried = page.locator("#timeline tbody tr.kind-event")
    assert carried.count() == 1
    assert carried.locator("td").nth(2).inner_text() == "event note (raised before this generation began)"
    assert carried.locator("td").nth(0).inner_text() == ""
    page.screenshot(path=str(artifacts / "dashboard-instance-generation-3.png"), full_page=True)


def test_live_monitor_is_suspended_resumed_and_cancelled_from_the_page(
    browser_page: Any,
    dashboard_server: BackgroundServer,
    api_server: BackgroundServer,
    monitors: MonitorClient,
    artifacts: Path,
) -> None:
    page = browser_page
    instance_id = monitors.start(MonitorRequest(new_job_id(), 0.4, 60, job_duration_seconds=600))
    open_instance(page, dashboard_server, instance_id)
    page.wait_for_function(
        "() => document.querySelectorAll(\"#chart [data-kind='check']\").length >= 3", timeout=WAIT_MS
    )
    assert page.locator("#chart [data-marker='now']").count() == 1
    assert re.fullmatch(r"in \d+(\.\d)? s|due now|overdue .*", page.inner_text("#card-next .tile-value"))
    assert re.fullmatch(r"\d+(\.\d)? s left", page.inner_text("#card-deadline .tile-value"))
    enabled = page.locator("#actions button:enabled").all_inner_texts()
    assert enabled == ["Cancel", "Suspend", "Terminate"]
    page.screenshot(path=str(artifacts / "dashboard-instance-live.png"), full_page=True)

    assert shows_result(act(page, "suspend", "lunch"), "Suspend", "Suspended")
    wait_for_api(api_server, instance_id, "Suspended")
    page.wait_for_selector("#actions button[data-action='resume']:enabled", timeout=WAIT_MS)
    assert page.locator("#actions button:enabled").all_inner_texts() == ["Resume", "Terminate"]
    assert page.inner_text("#card-next .tile-value") == "paused"
    page.click("#actions button[data-action='terminate']")  # after a confirmed action, backing out
    page.keyboard.press("Escape")  # of the next one still does nothing
    assert not page.is_visible("dialog#confirm")
    after_close = "() => new Promise(done => setTimeout(() => done(document.querySelector('#action-result')"
    after_close += ".textContent)))"  # runs after the dialog's close event (a task queued before it)
    assert page.evaluate(after_close).startswith("Suspend: ")
    assert api_status(api_server, instance_id).json()["runtimeStatus"] == "Suspended"
    assert shows_result(act(page, "resume"), "Resume", "Running")
    wait_for_api(api_server, instance_id, "Running")
    assert shows_result(act(page, "cancel", "not needed"), "Cancel", "Completed (Cancelled)")
    ended = wait_for_api(api_server, instance_id, "Completed")
    assert ended["output"]["final_status"] == "Cancelled" and ended["output"]["reason"].endswith("not needed")
    page.wait_for_selector("#chart [data-marker='end']", state="attached", timeout=WAIT_MS)
    assert page.locator("#chart [data-kind='event']").count() == 1  # the cancel event, a diamond
    assert page.inner_text("#timeline tr.kind-event td:nth-child(3)") == "event cancel"


def test_terminate_then_purge_from_the_page_and_back_out_of_a_confirmation(
    browser_page: Any,
    dashboard_server: BackgroundServer,
    api_server: BackgroundServer,
    monitors: MonitorClient,
) -> None:
    page = browser_page
    instance_id = monitors.start(MonitorRequest(new_job_id(), 0.5, 60, job_duration_seconds=600))
    open_instance(page, dashboard_server, instance_id)
    page.wait_for_selector("#actions button[data-action='terminate']:enabled", timeout=WAIT_MS)
    page.click("#actions button[data-action='terminate']")
    page.keyboard.press("Escape")  # changing one's mind does nothing
    assert not page.is_visible("dialog#confirm")
    assert monitors.details(instance_id).runtime_status in ("Pending", "Running")
    assert shows_result(act(page, "terminate", "wrong job"), "Terminate", "Terminated")
    assert wait_for_api(api_server, instance_id, "Terminated")["output"] == "wrong job"
    page.wait_for_selector("#chart [data-kind='terminated']", state="attached", timeout=WAIT_MS)
    assert "purged" in act(page, "purge")
    assert api_status(api_server, instance_id).status_code == 404
    assert page.is_visible("#purged")


def test_a_malformed_instance_address_says_so_promptly(
    browser_page: Any, dashboard_server: BackgroundServer
) -> None:
    page = browser_page
    page.goto(f"{dashboard_server.url}/instances/%E0%A4%A")
    page.wait_for_selector("#purged", state="visible", timeout=WAIT_MS)
    assert "No instance with this id" in page.inner_text("#purged")
    assert page.locator("#actions button").count() == 0


def test_list_overview_filters_search_and_paging(
    browser_page: Any, dashboard_server: BackgroundServer, monitors: MonitorClient, artifacts: Path
) -> None:
    page = browser_page
    tag = new_job_id()
    outcomes = ["Completed", "Failed"] * 6
    ids = [
        monitors.start(
            MonitorRequest(f"{tag}-{n:02d}", 0.2, 0.4, job_duration_seconds=0, job_outcome=outcome)
        )
        for n, outcome in enumerate(outcomes)
    ]
    for instance_id in ids:
        monitors.follow(instance_id, timeout=30)
    running = monitors.start(MonitorRequest(f"{tag}-live", 1, 120, job_duration_seconds=600))
    page.goto(f"{dashboard_server.url}/?refresh=0.3")
    page.wait_for_selector(f"tr[data-instance-id='{running}']", timeout=WAIT_MS)
    assert page.locator("#rate svg .rate-bar").count() == 10
    assert page.inner_text("#backend").startswith("a local scheduler in this process at http://127.0.0.1:")
    page.screenshot(path=str(artifacts / "dashboard-list-wide.png"), full_page=True)

    page.fill("#search", tag)
    page.wait_for_function(
        "() => document.querySelectorAll('#instances tbody tr').length === 13", timeout=WAIT_MS
    )
    page.select_option("#status-filter", "Running")
    page.wait_for_function(
        "() => document.querySelectorAll('#instances tbody tr').length === 1", timeout=WAIT_MS
    )
    assert page.get_attribute("#instances tbody tr", "data-instance-id") == running
    page.select_option("#status-filter", "")
    page.fill("#search", f"{tag}-03")
    page.wait_for_selector(f"tr[data-instance-id='{ids[3]}']", timeout=WAIT_MS)
    page.wait_for_function(
        "() => document.querySelectorAll('#instances tbody tr').length === 1", timeout=WAIT_MS
    )
    assert page.get_attribute("#instances tbody tr", "data-state") == "Failed"

    page.fill("#search", tag)
    page.select_option("#page-size", "10")
    wait_for_text(page, "#page-info", "1\u201310 of 13")
    page.click("#next")
    wait_for_text(page, "#page-info", "11\u201313 of 13")
    assert page.is_disabled("#next") and not page.is_disabled("#previous")
    page.click("th button[data-sort='job']")  # ascending by job id: the first ten jobs, in order
    page.wait_for_function(
        f"() => document.querySelector('#instances tbody tr td.job').textContent === '{tag}-00'",
        timeout=WAIT_MS,
    )
    assert "sort=job" in page.url and "q=" in page.url

    page.set_viewport_size(NARROW)
    page.screenshot(path=str(artifacts / "dashboard-list-narrow.png"), full_page=True)
    monitors.terminate(running)


def test_start_a_monitor_from_the_page_with_its_prediction(
    browser_page: Any, dashboard_server: BackgroundServer, monitors: MonitorClient, artifacts: Path
) -> None:
    page = browser_page
    page.goto(f"{dashboard_server.url}/")
    page.click("details#start summary")
    page.wait_for_function(  # the form is set up: sources listed, the defaults' plan shown
        "() => document.querySelector('#plan').textContent.startsWith('Predicted: 4 checks')", timeout=WAIT_MS
    )
    fields = {"job_source", "status_url", "job_duration_seconds", "job_outcome"}
    shown = {name for name in fields if page.is_visible(f"[name={name}]")}
    assert shown == {"job_source", "job_duration_seconds", "job_outcome"}  # the simulated job's fields
    sources = page.eval_on_selector_all("#job-source option", "options => options.map(o => o.value)")
    assert sources == ["simulated", "http"]  # a status URL's field replaces the simulated job's
    page.select_option("#job-source", "http")
    assert page.is_visible("[name=status_url]") and not page.is_visible("[name=job_outcome]")
    page.select_option("#job-source", "simulated")
    page.fill("[name=polling_interval_seconds]", "50")
    page.wait_for_function(
        "() => document.querySelector('#plan').textContent.includes('larger than timeout_seconds')",
        timeout=WAIT_MS,
    )
    assert page.is_disabled("#start-go")
    job_id = new_job_id()
    page.fill("[name=job_id]", job_id)
    page.fill("[name=polling_interval_seconds]", "0.5")
    page.fill("[name=timeout_seconds]", "3")
    page.fill("[name=job_duration_seconds]", "0.8")
    page.wait_for_function(
        "() => document.querySelector('#plan').dataset.predictedChecks === '3'", timeout=WAIT_MS
    )
    page.screenshot(
        path=str(artifacts / "dashboard-start-form.png"), clip={"x": 0, "y": 0, "width": 1400, "height": 560}
    )
    page.click("#start-go")
    link = page.wait_for_selector("#start-result a", timeout=WAIT_MS)
    instance_id = link.inner_text()
    final = monitors.follow(instance_id, timeout=30)
    assert final.custom_status is not None and final.custom_status.job_id == job_id
    assert final.result is not None and final.result.checks_performed == 3


def test_start_a_monitor_of_a_real_job_by_its_status_url(
    browser_page: Any, dashboard_server: BackgroundServer, monitors: MonitorClient, artifacts: Path
) -> None:
    page = browser_page
    with JobService() as service:
        job = service.start(work=2000, seconds=600)  # paced to last ten minutes, until it is hurried
        page.goto(f"{dashboard_server.url}/?refresh=0.3")
        page.click("details#start summary")
        wait_for_text(page, "#plan", "Predicted: 4 checks")
        page.select_option("#job-source", "http")
        assert page.is_visible("[name=status_url]") and not page.is_visible("[name=job_outcome]")
        job_id = new_job_id()
        page.fill("[name=job_id]", job_id)
        page.fill("[name=polling_interval_seconds]", "0.3")
        page.fill("[name=timeout_seconds]", "60")
        page.fill("[name=status_url]", "ftp://example.com/job")
        page.wait_for_function(  # the http source's own validation
            "() => document.querySelector('#plan').textContent.includes('http:// or https://')",
            timeout=WAIT_MS,
        )
        assert page.get_attribute("#plan", "class") == "plan problem" and page.is_disabled("#start-go")
        page.fill("[name=status_url]", service.url_of(job))
        wait_for_text(page, "#plan", "201 checks at most")  # a real job: no prediction, only the schedule
        page.click("#start-go")
        instance_id = page.wait_for_selector("#start-result a", timeout=WAIT_MS).inner_text()
        page.click("#start-result a")
        page.wait_for_function(
            "() => document.querySelectorAll(\"#chart [data-kind='check']\").length >= 2", timeout=WAIT_MS
        )
        assert page.inner_text("#card-job .tile-value") == "Running"
        assert page.inner_text("#card-checks .tile-note") == "201 at most (at the deadline)"
        job.hurry()
        final = monitors.follow(instance_id, timeout=120)
        assert final.result is not None and final.result.final_status == "Completed"
        page.wait_for_selector("#timeline tr.kind-ended", timeout=WAIT_MS)
        marks = page.locator("#chart [data-kind='check']")
        assert marks.count() == final.result.checks_performed
        assert marks.nth(marks.count() - 1).get_attribute("data-status") == "Completed"
        assert page.inner_text("#card-job .tile-value") == "Completed"
        page.screenshot(path=str(artifacts / "dashboard-instance-status-url.png"), full_page=True)


def test_keyboard_reaches_every_control_with_a_visible_focus(
    browser_page: Any, dashboard_server: BackgroundServer, monitors: MonitorClient, artifacts: Path
) -> None:
    page = browser_page
    instance_id = monitors.start(MonitorRequest(new_job_id(), 0.5, 60, job_duration_seconds=600))
    page.goto(f"{dashboard_server.url}/?refresh=5")
    page.wait_for_selector(f"tr[data-instance-id='{instance_id}']", timeout=WAIT_MS)

    def walk(steps: int) -> list[str]:
        seen = []
        for _ in range(steps):
            page.keyboard.press("Tab")
            seen.append(
                page.evaluate(
                    "() => { const e = document.activeElement; if (e === document.body) return 'body|none';"
                    " const name = e.id || e.dataset.status || e.dataset.sort || e.dataset.action"
                    " || e.textContent.trim().slice(0, 40);"
                    " return [name, getComputedStyle(e).outlineStyle].join('|') }"
                )
            )
        return seen

    stops = [stop for stop in walk(40) if stop != "body|none"]  # past the last control, focus wraps around
    names = [stop.split("|")[0] for stop in stops]
    assert all(stop.endswith("|solid") for stop in stops), "; ".join(stops)
    for wanted in ("Running", "status-filter", "search", "page-size", "created", instance_id):
        assert wanted in names, (wanted, names)
    assert (
        names.index("status-filter")
        < names.index("search")
        < names.index("created")
        < names.index(instance_id)
    )
    page.focus("#search")
    page.screenshot(
        path=str(artifacts / "dashboard-focus.png"), clip={"x": 0, "y": 0, "width": 1400, "height": 500}
    )
    page.goto(f"{dashboard_server.url}/instances/{instance_id}?refresh=5")
    page.wait_for_selector("#actions button[data-action='suspend']:enabled", timeout=WAIT_MS)
    names = [stop.split("|")[0] for stop in walk(12)]
    assert names.index("cancel") < names.index("suspend") < names.index("terminate")
    page.focus("#actions button[data-action='terminate']")
    page.keyboard.press("Enter")
    assert page.is_visible("dialog#confirm")
    assert page.evaluate("() => document.activeElement.id") == "confirm-reason"
    page.screenshot(path=str(artifacts / "dashboard-confirm.png"))
    page.keyboard.press("Escape")
    monitors.terminate(instance_id)


# --- sub-orchestrations, entities and schedules, on a hub of their own (tests/dashboard_hub.py) -----------


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    with dashboard_hub(tmp_path_factory.mktemp("browser-hub")) as running:
        yield running


def test_a_parent_links_its_children_and_the_entities_and_schedules_pages_show_theirs(
    browser_page: Any, hub: Hub, artifacts: Path
) -> None:
    page = browser_page
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    client = hub.backend.client
    parent = client.schedule_new_orchestration(fan_out, instance_id=f"fan-{uuid.uuid4().hex[:8]}")
    waiting = f"{parent}-waiting"
    page.goto(f"{hub.url}/instances/{parent}?refresh=0.3")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#children li .badge')].map(b => b.textContent).join()"
        " === 'Completed,Running'",
        timeout=WAIT_MS,
    )
    assert page.is_hidden("#parent-row")
    assert page.inner_text("#children-summary") == "2 sub-orchestration(s): 1 Completed, 1 Running"
    page.screenshot(path=str(artifacts / "dashboard-parent.png"), full_page=True)

    page.click(f"#children li[data-instance-id='{waiting}'] a")
    page.wait_for_url(f"**/instances/{waiting}", timeout=WAIT_MS)
    page.wait_for_selector("#parent-row:not([hidden])", timeout=WAIT_MS)
    assert page.inner_text("#parent") == parent and page.is_hidden("#children-section")
    assert page.inner_text("#status") == "Running" and page.inner_text("#name") == "waits_for_go"
    page.screenshot(path=str(artifacts / "dashboard-child.png"), full_page=True)
    client.raise_orchestration_event(waiting, "go", data="now")
    wait_for_text(page, "#status", "Completed")
    page.click("#parent")
    page.wait_for_url(f"**/instances/{parent}", timeout=WAIT_MS)
    wait_for_text(page, "#status", "Completed")

    key = f"k-{uuid.uuid4().hex[:8]}"
    hostile = {"html": "<img src=x onerror=\"document.title='owned'\">", "long": "x" * 400}
    client.signal_entity(EntityInstanceId("counter", key), "set", hostile)
    schedule_id = f"every-second-{uuid.uuid4().hex[:8]}"
    options = ScheduleCreationOptions(
        schedule_id=schedule_id, orchestration_name=nightly.__name__, interval=timedelta(seconds=1)
    )
    ScheduledTaskClient(client, operation_timeout=WAIT_MS / 1000).create_schedule(options)

    page.goto(f"{hub.url}/?refresh=0.3")
    page.click("nav.pages a[href='/entities']")
    page.wait_for_url("**/entities", timeout=WAIT_MS)
    row = f"#rows tr[data-id='@counter@{key}']"
    page.wait_for_selector(row, timeout=WAIT_MS)
    state = page.inner_text(f"{row} td.state code")
    assert state.startswith('{"html": "<img src=x onerror=') and state.endswith("…") and len(state) == 200
    assert page.locator("#rows img").count() == 0 and page.title() != "owned"
    assert page.inner_text(f"{row} td:nth-child(2)") == "counter"
    page.screenshot(path=str(artifacts / "dashboard-entities.png"), full_page=True)
    page.fill("#search", f"counter@{key}")
    page.wait_for_function("() => document.querySelectorAll('#rows tbody tr').length === 1", timeout=WAIT_MS)
    assert "q=counter%40" in page.url

    page.click("nav.pages a[href='/schedules']")
    page.wait_for_url("**/schedules", timeout=WAIT_MS)
    row = f"#rows tr[data-id='{schedule_id}']"
    page.wait_for_selector(row, timeout=WAIT_MS)
    assert page.inner_text(f"{row} td:nth-child(2)") == "nightly"
    assert page.inner_text(f"{row} td:nth-child(3)") == "1.0 s"
    assert page.inner_text(f"{row} .badge") == "Active"
    page.wait_for_function(  # it has run once: the last run is a time, not a dash
        f"() => document.querySelector(\"{row} td:nth-child(5)\").textContent.startsWith('20')",
        timeout=WAIT_MS,
    )
    page.screenshot(path=str(artifacts / "dashboard-schedules.png"), full_page=True)
    page.set_viewport_size(NARROW)
    page.screenshot(path=str(artifacts / "dashboard-schedules-narrow.png"), full_page=True)
    ScheduledTaskClient(client, operation_timeout=WAIT_MS / 1000).get_schedule_client(schedule_id).delete()
    assert errors == []
