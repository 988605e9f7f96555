"""The scenario control panel: sliders, a Run button, live progress, the runs so far, comparison plots.

Every click schedules a real monitor through the tutorial's worker; progress comes from polled custom
status. Widgets are updated from the tracker's polling thread, which Jupyter renders live even after the
cell that showed the panel has finished.
"""

from __future__ import annotations

import html
import threading

import ipywidgets as widgets

from monitoring.client.tracking import RunTrace
from monitoring.core.jobs import JOB_OUTCOMES
from monitoring.core.payloads import InvalidRequestError
from monitoring.core.predict import predict
from monitoring.notebook.live import RedrawPace
from monitoring.notebook.plots import comparison_figure, png_bytes, progress_figure, seconds_text
from monitoring.notebook.tutorial import Tutorial

REDRAW_SECONDS = 0.5


class ControlPanel:
    """Choose interval, timeout and job length; each Run schedules one monitor; several can be in flight."""

    def __init__(self, tutorial: Tutorial) -> None:
        self.tutorial = tutorial
        style = {"description_width": "120px"}
        self.interval = widgets.IntSlider(
            5, min=1, max=20, description="interval (s)", style=style, layout=widgets.Layout(width="420px")
        )
        self.timeout = widgets.IntSlider(
            30,
            min=5,
            max=120,
            step=5,
            description="timeout (s)",
            style=style,
            layout=widgets.Layout(width="420px"),
        )
        self.job_duration = widgets.IntSlider(
            12,
            min=0,
            max=120,
            description="job length (s)",
            style=style,
            layout=widgets.Layout(width="420px"),
        )
        self.job_outcome = widgets.ToggleButtons(
            options=list(JOB_OUTCOMES), description="job ends", style=style
        )
        self.source = widgets.ToggleButtons(
            options=[("simulated job", "simulated"), ("status URL", "http")],
            description="job source",
            style=style,
        )
        # The http source's fields, shown when "status URL" is chosen (the simulated job's sliders then hide).
        self.status_url = widgets.Text(
            placeholder="http://127.0.0.1:PORT/jobs/ID",
            description="status URL",
            style=style,
            layout=widgets.Layout(width="420px"),
        )
        self.status_field = widgets.Text(
            value="status", description="JSON field", style=style, layout=widgets.Layout(width="420px")
        )
        self.plan = widgets.HTML(layout=widgets.Layout(width="420px"))  # live: what Run would do
        self.plan_text = ""
        self.run_button = widgets.Button(description="Run", button_style="primary", icon="play")
        self.message = widgets.HTML(layout=widgets.Layout(width="420px"))  # what the last Run did
        self.message_text = ""
        self.progress_rows = widgets.VBox(layout=widgets.Layout(min_width="460px"))
        self.runs_table = widgets.HTML()
        # Hidden until there is something to show: an empty Image renders as a broken-image icon.
        self.progress_plot = widgets.Image(format="png", layout=widgets.Layout(display="none"))
        self.comparison_plot = widgets.Image(format="png", layout=widgets.Layout(display="none"))
        self.traces: list[RunTrace] = []
        self._bars: dict[str, tuple[widgets.IntProgress, widgets.Label]] = {}
        self._lock = threading.Lock()
        self._drawing = threading.Lock()
        # Plots are drawn on a thread of their own, so drawing never delays the tracker's polling.
        self._plots_stale = threading.Event()
        self._plots_pace = RedrawPace(REDRAW_SECONDS)
        self._compared: tuple[str, ...] = ()  # the finished runs the comparison plot shows
        self._closed = threading.Event()
        self._plots_thread = threading.Thread(
            target=self._draw_plots_when_stale, name="panel-plots", daemon=True
        )
        self._plots_thread.start()
        self.run_button.on_click(lambda _button: self.run())
        controls_that_change_the_plan = (
            self.source, self.interval, self.timeout, self.job_duration, self.job_outcome,
            self.status_url, self.status_field,
        )  # fmt: skip
        for control in controls_that_change_the_plan:
            control.observe(lambda _change: self.update_plan(), names="value")
        self.source.observe(lambda _change: self._show_source_fields(), names="value")
        self._show_source_fields()
        self.update_plan()
        tutorial.tracker.add_listener(self._on_change)
        controls = widgets.VBox(
            [
                self.source,
                self.interval,
                self.timeout,
                self.job_duration,
                self.job_outcome,
                self.status_url,
                self.status_field,
                self.plan,
                self.run_button,
                self.message,
            ]
        )
        self.widget = widgets.VBox(
            [
                widgets.HBox([controls, self.progress_rows]),
                self.runs_table,
                self.progress_plot,
                self.comparison_plot,
            ]
        )

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def set(
        self,
        *,
        interval: int | None = None,
        timeout: int | None = None,
        job_duration: int | None = None,
        job_outcome: str | None = None,
        source: str | None = None,
        status_url: str | None = None,
        status_field: str | None = None,
    ) -> None:
        """Move the controls from code, as a person would with the mouse (unchanged where None)."""
        for control, value in (
            (self.source, source),
            (self.status_url, status_url),
            (self.status_field, status_field),
            (self.interval, interval),
            (self.timeout, timeout),
            (self.job_duration, job_duration),
            (self.job_outcome, job_outcome),
        ):
            if value is not None:
                control.value = value

    def _show_source_fields(self) -> None:
        real = self.source.value == "http"
        for control in (self.status_url, self.status_field):
            control.layout.display = "" if real else "none"
        for control in (self.job_duration, self.job_outcome):
            control.layout.display = "none" if real else ""

    def _request(self):  # type: ignore[no-untyped-def]
        if self.source.value == "http":
            return self.tutorial.request(
                interval=self.interval.value,
                timeout=self.timeout.value,
                job_id=f"panel-{len(self.traces) + 1}",
                status_url=self.status_url.value.strip(),
                status_field=self.status_field.value.strip() or None,
            )
        return self.tutorial.request(
            interval=self.interval.value,
            timeout=self.timeout.value,
            job_duration=self.job_duration.value,
            job_outcome=self.job_outcome.value,
            job_id=f"panel-{len(self.traces) + 1}",
        )

    def update_plan(self) -> None:
        """Say, beside the sliders, what Run would do now: the checks it plans and the outcome, or why not.

        A refusal under the Run button is about values that have just changed, so it goes.
        """
        if self.message_text.startswith("Not scheduled"):
            self.say("")
        try:
            request = self._request()
        except InvalidRequestError as error:
            self.plan_text = f"Cannot run: {error}"
            self.plan.value = f"<span style='color:#b00020'>{html.escape(self.plan_text)}</span>"
            return
        at_most = request.schedule().planned_check_count
        interval, timeout, job = self.interval.value, self.timeout.value, self.job_duration.value
        if request.job_source != "simulated":
            self.plan_text = (
                f"At most {checks(at_most)} (every {interval} s, for {timeout} s). The job at the URL "
                "decides when it ends."
            )
            self.plan.value = html.escape(self.plan_text)
            return
        expected = predict(request)
        ends = f"ends {self.job_outcome.value} at {job} s" if job <= timeout else "outlasts the timeout"
        self.plan_text = (
            f"At most {checks(at_most)} (every {interval} s, for {timeout} s). This job {ends}: expect "
            f"{expected.final_status} after {checks(expected.checks_performed)}."
        )
        self.plan.value = html.escape(self.plan_text)

    def say(self, text: str, *, error: bool = False) -> None:
        """Show ``text`` under the Run button (``message_text`` keeps it as plain text)."""
        self.message_text = text
        colour = "#b00020" if error else "inherit"
        self.message.value = f"<span style='color:{colour}'>{html.escape(text)}</span>"

    def run(self) -> RunTrace | None:
        """Schedule a run with the sliders' values; on a bad combination, say why and schedule nothing."""
        if self.tutorial.closed:
            self.say("Not scheduled: this tutorial session was closed; run its cells again.", error=True)
            return None
        try:
            request = self._request()
        except InvalidRequestError as error:
            self.say(f"Not scheduled: {error}", error=True)
            return None
        try:
            trace = self.tutorial.run(request)
        except Exception as error:  # shown where the person looks, not in JupyterLab's log console
            self.say(f"Not scheduled: {type(error).__name__}: {error}", error=True)
            return None
        with self._lock:
            self.traces.append(trace)
            most = (
                trace.prediction.checks_performed
                if trace.simulated
                else request.schedule().planned_check_count
            )
            bar = widgets.IntProgress(
                0, min=0, max=most, bar_style="info",
                layout=widgets.Layout(width="140px"),
            )  # fmt: skip
            caption = widgets.Label(f"{request.job_id}: scheduled", layout=widgets.Layout(width="auto"))
            self._bars[trace.instance_id] = (bar, caption)
            self.progress_rows.children = (*self.progress_rows.children, widgets.HBox([bar, caption]))
        self.say(f"Scheduled {request.job_id} ({trace.instance_id})")
        self.update_plan()
        self._refresh()
        return trace

    def _on_change(self, trace: RunTrace) -> None:
        if trace.instance_id in self._bars:
            self._refresh()

    def _refresh(self) -> None:
        """Update bars, captions and the runs table now; ask for the plots to be redrawn."""
        with self._lock:
            for trace in self.traces:
                bar, caption = self._bars[trace.instance_id]
                bar.value = min(trace.check_count, bar.max)
                if trace.result is not None:
                    bar.bar_style = "success" if trace.result.final_status == "Completed" else "danger"
                caption.value = f"{trace.request.job_id}: {_state(trace)}"
            self.runs_table.value = runs_table_html(self.traces)
        self._plots_stale.set()

    def draw_plots(self) -> None:
        """Redraw the progress plot and, when the set of finished runs has changed, the comparison plot."""
        with self._drawing:  # the plot thread and a caller: one draw at a time, so none shows older runs
            self._draw_plots()

    def _draw_plots(self) -> None:
        with self._lock:
            traces = list(self.traces)
        if not traces:
            return
        self.progress_plot.value = png_bytes(progress_figure(traces))
        self.progress_plot.layout.display = ""
        finished = [trace for trace in traces if trace.result is not None]
        finished_ids = tuple(trace.instance_id for trace in finished)
        if finished and finished_ids != self._compared:  # a finished run's figures no longer change
            self.comparison_plot.value = png_bytes(comparison_figure(finished))
            self.comparison_plot.layout.display = ""
            self._compared = finished_ids

    def close(self) -> None:
        """Stop listening to the tutorial's runs and stop the plot thread (it ends within a moment)."""
        self._closed.set()
        self._plots_stale.set()  # wake the thread so it sees the panel is closed
        self.tutorial.tracker.remove_listener(self._on_change)
        self._plots_thread.join()

    def _draw_plots_when_stale(self) -> None:
        while True:
            self._plots_stale.wait()
            if self._closed.is_set():
                return
            self._plots_stale.clear()
            self._plots_pace.draw(self.draw_plots)
            if self._closed.wait(self._plots_pace.wait_seconds()):
                return


def checks(count: int) -> str:
    """``1 check``, ``4 checks``."""
    return f"{count} check" if count == 1 else f"{count} checks"


def _state(trace: RunTrace) -> str:
    if trace.result is not None:
        return f"{trace.result.final_status} after {checks(trace.result.checks_performed)}"
    return f"{trace.latest.runtime_status if trace.latest else 'Scheduled'}, check {trace.check_count}"


CELL_STYLE = "padding: 2px 12px 2px 0; text-align: left"  # columns apart, headers over their values


def job_text(trace: RunTrace) -> str:
    """What the run watches: the simulated job's length and ending, or the status URL."""
    if not trace.simulated:
        return f"status URL ({trace.request.job_source})"
    job = trace.scenario_seconds(trace.request.job_duration_seconds)
    return f"simulated, {job:g} s, ends {trace.request.job_outcome}"


def runs_table_html(traces: list[RunTrace]) -> str:
    """The runs so far as an HTML table, in the tutorial's seconds (written as the comparison bars are)."""
    columns = ("run", "interval", "timeout", "job", "state", "checks", "duration", "detection delay")
    header = "<tr>" + "".join(f"<th style='{CELL_STYLE}'>{name}</th>" for name in columns) + "</tr>"
    rows = []
    for trace in traces:
        interval, timeout, _ = (trace.scenario_seconds(value) for value in trace.settings())
        result = trace.result
        seconds = result.monitoring_duration_seconds if result else None
        delay = trace.detection_delay
        cells = (
            trace.request.job_id,
            f"{interval:g} s",
            f"{timeout:g} s",
            job_text(trace),
            _state(trace),
            trace.check_count,
            "" if seconds is None else seconds_text(trace.scenario_seconds(seconds)),
            "" if delay is None else seconds_text(trace.scenario_seconds(delay)),
        )
        rows.append(
            "<tr>"
            + "".join(f"<td style='{CELL_STYLE}'>{html.escape(str(cell))}</td>" for cell in cells)
            + "</tr>"
        )
    return f"<table class='runs' style='border-collapse: collapse'>{header}{''.join(rows)}</table>"
