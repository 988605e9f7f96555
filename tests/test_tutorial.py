"""The helpers the notebooks call: time scale, tutorial session, tracker, control panel, plots."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from monitoring import settings
from monitoring.core.payloads import InvalidRequestError
from monitoring.notebook.job_service import JobService
from monitoring.notebook.plots import (
    DODGE,
    comparison_figure,
    png_bytes,
    progress_figure,
    seconds_text,
    tradeoff_figure,
)
from monitoring.notebook.tutorial import Tutorial
from monitoring.notebook.widgets import ControlPanel, checks
from monitoring.runtime.connection import Connection

SCALE = 0.1  # a 5 s tutorial interval is 0.5 s here (the counts are exact at any scale, on any machine)


@pytest.fixture(scope="module")
def tutorial(connection: Connection) -> Iterator[Tutorial]:
    session = Tutorial(connection, time_scale=SCALE)
    yield session
    session.tracker.close()
    session.monitors.close()


def test_time_scale_setting() -> None:
    assert settings.load({}).time_scale == 1.0
    assert settings.load({"MONITORING_TIME_SCALE": "0.2"}).time_scale == 0.2
    for bad in ("0", "-1", "2", "fast"):
        with pytest.raises(ValueError, match="MONITORING_TIME_SCALE"):
            settings.load({"MONITORING_TIME_SCALE": bad})


def test_requests_are_validated_in_the_persons_numbers_then_scaled(tutorial: Tutorial) -> None:
    request = tutorial.request(interval=5, timeout=30, job_duration=12, job_id="job-1")
    assert request.job_id == "job-1"
    assert (
        request.polling_interval_seconds,
        request.timeout_seconds,
        request.job_duration_seconds,
    ) == pytest.approx((0.5, 3.0, 1.2))
    with pytest.raises(
        InvalidRequestError, match=r"polling_interval_seconds \(20\) is larger than timeout_seconds \(10\)"
    ):
        tutorial.request(interval=20, timeout=10)


def test_a_re_run_connect_cell_starts_nothing_new(tutorial: Tutorial) -> None:
    from monitoring.worker import start_worker

    assert start_worker(tutorial.connection) is False


def test_tracker_follows_many_runs_with_samples_from_custom_status(tutorial: Tutorial) -> None:
    # A 12 s job: the checks at 12 s (every 2 or 4 s) see it end exactly then; every 8 or 16 s, at 16 s.
    traces = tutorial.sweep([2, 4, 8, 16], timeout=30, job_duration=12)
    tutorial.tracker.wait(traces, timeout=30)
    assert [trace.result.checks_performed for trace in traces] == [7, 4, 3, 2]
    assert [trace.prediction.checks_performed for trace in traces] == [7, 4, 3, 2]
    assert [trace.prediction.detection_delay for trace in traces] == pytest.approx([0, 0, 0.4, 0.4])
    for trace in traces:
        counts = [sample.check_count for sample in trace.samples]
        assert counts == sorted(counts) and counts[-1] == trace.result.checks_performed
        assert trace.checks()[-1].job_status == "Completed"
        assert (
            trace.detection_delay is not None
            and trace.detection_delay >= trace.prediction.detection_delay - 1e-3
        )
    for figure in (progress_figure(traces), comparison_figure(traces), tradeoff_figure(traces)):
        assert png_bytes(figure).startswith(b"\x89PNG")


def test_control_panel_clicks_schedule_real_runs_and_refuse_bad_ones(tutorial: Tutorial) -> None:
    panel = ControlPanel(tutorial)
    panel.set(interval=20, timeout=10)
    panel.run_button.click()
    assert panel.traces == [] and panel.message_text.startswith(
        "Not scheduled: polling_interval_seconds (20)"
    )
    panel.set(timeout=30)  # the values the refusal was about changed: it goes
    assert panel.message_text == "" and panel.message.value.endswith("></span>")

    panel.set(interval=5, timeout=30, job_duration=15)  # ends exactly at the 4th check (15 s)
    panel.run_button.click()
    panel.set(interval=3, job_duration=9, job_outcome="Failed")  # likewise (9 s)
    panel.run_button.click()
    assert len(panel.traces) == 2 and "Scheduled panel-2" in panel.message.value
    tutorial.tracker.wait(panel.traces, timeout=30)
    assert [(t.result.final_status, t.result.checks_performed) for t in panel.traces] == [
        ("Completed", 4),
        ("Failed", 4),
    ]
    panel._refresh()  # what the tracker calls on a change; the last one may race the final result
    bars = [panel._bars[trace.instance_id][0] for trace in panel.traces]
    assert [bar.value for bar in bars] == [4, 4] and [bar.bar_style for bar in bars] == ["success", "danger"]
    assert "panel-1" in panel.runs_table.value and "Failed after 4 checks" in panel.runs_table.value
    panel.draw_plots()
    assert panel.progress_plot.layout.display == panel.comparison_plot.layout.display == ""
    assert bytes(panel.progress_plot.value).startswith(b"\x89PNG")
    assert bytes(panel.comparison_plot.value).startswith(b"\x89PNG")
    shown = panel.comparison_plot.value
    panel.draw_plots()  # the same finished runs: their comparison is not drawn again
    assert panel.comparison_plot.value is shown
    panel.close()


def test_the_panel_says_what_run_would_do_as_the_sliders_move(tutorial: Tutorial) -> None:
    panel = ControlPanel(tutorial)
    try:
        assert panel.plan.value == (
            "At most 7 checks (every 5 s, for 30 s). This job ends Completed at 12 s: "
            "expect Completed after 4 checks."
        )
        panel.set(interval=20, timeout=10)
        assert (
            "Cannot run: polling_interval_seconds (20) is larger than timeout_seconds (10)"
            in panel.plan.value
        )
        panel.set(timeout=30)  # fixed: the complaint goes at once
        assert "Cannot run" not in panel.plan.value and "expect Completed after 2 checks" in panel.plan.value
        panel.set(interval=20, timeout=20, job_duration=0)
        assert "expect Completed after 1 check." in panel.plan.value
        panel.set(job_duration=60)
        assert "This job outlasts the timeout: expect Timeout after 2 checks." in panel.plan.value
        assert checks(1) == "1 check" and checks(0) == "0 checks"
        # Nothing drawn yet: the plot widgets are hidden, not shown as broken images.
        assert panel.progress_plot.layout.display == panel.comparison_plot.layout.display == "none"
    finally:
        panel.close()


def test_the_panel_monitors_a_real_job_by_its_status_url(tutorial: Tutorial) -> None:
    panel = ControlPanel(tutorial)
    try:
        assert panel.status_url.layout.display == "none" and panel.job_duration.layout.display == ""
        panel.set(source="http", interval=1, timeout=30, status_url="ftp://ci/job")
        assert panel.status_url.layout.display == "" and panel.job_duration.layout.display == "none"
        assert panel.plan_text.startswith("Cannot run: url must be an http:// or https:// URL")
        with JobService() as service:
            job = service.wait(service.start(work=1000, seconds=0))
            panel.set(status_url=service.url_of(job))
            assert panel.plan_text == (
                "At most 31 checks (every 1 s, for 30 s). The job at the URL decides when it ends."
            )
            panel.run_button.click()
            (trace,) = panel.traces
            tutorial.tracker.wait([trace], timeout=60)
        assert trace.request.job_source == "http" and trace.result.final_status == "Completed"
        panel._refresh()
        assert "Completed after 1 check<" in panel.runs_table.value
        assert ">status URL (http)<" in panel.runs_table.value  # under "job", not a job length
    finally:
        panel.close()


def test_a_closed_tutorial_makes_the_panel_say_so(tutorial: Tutorial) -> None:
    panel = ControlPanel(tutorial)
    tutorial.closed = True  # what tutorial.close() sets (closing the shared session would stop its worker)
    try:
        panel.run_button.click()
    finally:
        tutorial.closed = False
        panel.close()
    assert panel.traces == []
    assert panel.message_text.startswith("Not scheduled: this tutorial session was closed")
    assert "<" not in panel.message_text and "color:#b00020" in panel.message.value


def test_a_closed_panel_stops_its_plot_thread_and_its_listener(tutorial: Tutorial) -> None:
    panel = ControlPanel(tutorial)
    thread = panel._plots_thread
    assert thread.is_alive()
    panel.close()
    assert not thread.is_alive()
    assert panel._on_change not in tutorial.tracker._listeners


def test_the_panels_table_and_bars_agree_and_same_schedules_stay_apart(tutorial: Tutorial) -> None:
    panel = ControlPanel(tutorial)
    try:
        panel.set(interval=5, timeout=30, job_duration=0)  # a 0 s job: seen ended by the first check
        panel.run_button.click()
        panel.run_button.click()  # the same schedule again
        tutorial.tracker.wait(panel.traces, timeout=30)
        panel._refresh()
        table = panel.runs_table.value
        headers = re.findall(r"<th[^>]*>([^<]*)</th>", table)
        assert headers == [
            "run",
            "interval",
            "timeout",
            "job",
            "state",
            "checks",
            "duration",
            "detection delay",
        ]
        assert all("padding" in cell for cell in re.findall(r"<t[hd][^>]*>", table))  # columns kept apart
        assert ">simulated, 0 s, ends Completed<" in table
        durations = [
            seconds_text(t.scenario_seconds(t.result.monitoring_duration_seconds)) for t in panel.traces
        ]
        assert all(f">{text}<" in table for text in durations)
        bars = comparison_figure(panel.traces).axes[1]
        assert [label.get_text() for label in bars.texts] == durations  # the table's words on the bars
        assert bars.get_ylim()[1] >= 1  # a few milliseconds stay a sliver on a one-second axis
        steps = [
            line for line in progress_figure(panel.traces).axes[0].lines if line.get_drawstyle() != "default"
        ]
        first, second = (line.get_ydata() for line in steps)
        assert second[-1] - first[-1] == pytest.approx(DODGE)  # drawn beside, not on top of, the first
    finally:
        panel.close()


def test_a_run_that_ended_without_a_check_is_marked_where_it_ended(tutorial: Tutorial) -> None:
    stopped = JobService()
    down_url = stopped.url_of("nobody")
    stopped.close()
    trace = tutorial.run(
        interval=1, timeout=30, status_url=down_url, retry_max_attempts=2, retry_first_interval_seconds=0.5
    )
    tutorial.tracker.wait([trace], timeout=60)
    assert trace.result.final_status == "Failed" and trace.result.checks_performed == 0
    progress, timeline = progress_figure([trace]).axes
    assert progress.get_ylim() == (0, 1.5)  # whole checks, not 0.000 to 0.054
    ended = trace.scenario_seconds(trace.result.monitoring_duration_seconds)
    ends = [line for line in progress.lines + timeline.lines if line.get_marker() == "X"]
    assert len(ends) == 2 and all(line.get_xdata()[-1] == pytest.approx(ended) for line in ends)
    assert [text.get_text() for text in timeline.texts] == ["Failed"]
