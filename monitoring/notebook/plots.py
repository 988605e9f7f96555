"""Plots drawn from polled custom status (see :mod:`monitoring.client.tracking`), with matplotlib.

Figures are built with ``matplotlib.figure.Figure`` rather than pyplot, so a notebook shows each one exactly
where it is displayed (and a live figure can be redrawn in place). Times are in the scenario's seconds:
the values the sliders and scenarios use, whatever the time scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from io import BytesIO
from typing import Protocol

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator, NullFormatter

from monitoring.client.tracking import RunTrace
from monitoring.core.payloads import from_iso
from monitoring.notebook.batches import BatchRun, BatchSample
from monitoring.notebook.job_service import Job

DODGE = 0.12  # how far (in checks) a run is raised above an earlier run with the same schedule
ENDED_UNSEEN = "monitor ended, job's end not seen"
STATUS_COLOURS = {"Pending": "#9e9e9e", "Running": "#1f77b4", "Completed": "#2ca02c", "Failed": "#d62728"}


def label(trace: RunTrace) -> str:
    """A short legend label in scenario seconds: interval / timeout / job length."""
    interval, timeout, job = (trace.scenario_seconds(value) for value in trace.settings())
    job_text = f"job {job:g}s" if trace.simulated else trace.request.job_source
    return f"{trace.request.job_id} ({interval:g}s/{timeout:g}s, {job_text})"


def seconds_text(seconds: float) -> str:
    """A duration as the panel's table and the comparison bars both write it: ``12.3 s``, ``28 ms``."""
    return f"{seconds * 1000:.0f} ms" if abs(seconds) < 0.1 else f"{seconds:.1f} s"


def ended_unseen(trace: RunTrace) -> float | None:
    """When (scenario seconds) a run ended without a check seeing the job end (a failed check, a timeout, a
    cancel); None while it runs, or when a check saw the end (that check's star marks it)."""
    if trace.result is None or trace.detection_delay is not None:
        return None
    return trace.scenario_seconds(trace.result.monitoring_duration_seconds or 0.0)


def draw_check_progress(ax: Axes, traces: Sequence[RunTrace]) -> None:
    """Check count against elapsed time, with each run's timeout and the job's end marked."""
    same_schedule: dict[tuple[float, ...], int] = {}
    for index, trace in enumerate(traces):
        colour = f"C{index}"
        checks = trace.checks()
        # A run with the same schedule as an earlier one is raised a little, so its line shows beside theirs.
        raised = DODGE * same_schedule.setdefault(trace.settings(), 0)
        same_schedule[trace.settings()] += 1
        xs = [0.0] + [trace.scenario_seconds(check.elapsed_seconds) for check in checks]
        ys = [raised] + [check.number + raised for check in checks]
        # Runs often share their first checks: earlier runs are drawn wider, so none hides under another.
        width = 1.5 + min(2.5, 5.0 / max(len(traces) - 1, 1)) * (len(traces) - 1 - index)
        ax.step(xs, ys, where="post", color=colour, label=label(trace), linewidth=width, alpha=0.85)
        ax.plot(xs[1:], ys[1:], "o", color=colour, markersize=3 + width)
        _, timeout, job = (trace.scenario_seconds(value) for value in trace.settings())
        ax.axvline(timeout, color=colour, linestyle="--", alpha=0.7)
        if trace.simulated and job <= timeout:
            ax.axvline(job, color=colour, linestyle=":", alpha=0.9)
        if trace.detection_delay is not None and checks:
            ax.plot(xs[-1], ys[-1], marker="*", markersize=16, color=colour, markeredgecolor="black")
        ended = ended_unseen(trace)
        if ended is not None:
            ax.plot([xs[-1], ended], [ys[-1], ys[-1]], color=colour, linewidth=width, alpha=0.85)
            ax.plot(ended, ys[-1], marker="X", markersize=12, color=colour, markeredgecolor="black")
    handles, _ = ax.get_legend_handles_labels()
    handles += [
        Line2D([], [], color="grey", linestyle="--", label="timeout"),
        Line2D([], [], color="grey", linestyle=":", label="job finished"),
        Line2D([], [], color="grey", marker="*", linestyle="", markersize=12, label="monitor saw it end"),
        Line2D([], [], color="grey", marker="X", linestyle="", markersize=10, label=ENDED_UNSEEN),
    ]
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.16),
        ncol=2,
        fontsize="small",
        frameon=False,
    )
    ax.set_title("Checks performed over time")
    ax.set_xlabel("seconds since the monitor started")
    ax.set_ylabel("checks performed")
    ax.set_ylim(0, max([1, *(trace.check_count for trace in traces)]) + 0.5)  # whole checks, even with none
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)


def draw_timelines(ax: Axes, traces: Sequence[RunTrace]) -> None:
    """One row per run: a dot per check, coloured by what the check saw; the timeout as a bar."""
    for row, trace in enumerate(traces):
        checks = trace.checks()
        _, timeout, job = (trace.scenario_seconds(value) for value in trace.settings())
        ax.hlines(row, 0, timeout, color="#cccccc", linewidth=6, zorder=1)
        ax.plot([timeout], [row], marker="|", markersize=20, color="black", zorder=2)
        if trace.simulated and job <= timeout:
            ax.plot([job], [row], marker="v", markersize=10, color="#ff7f0e", zorder=3)
        for check in checks:
            colour = STATUS_COLOURS.get(check.job_status, "black")
            ax.plot(trace.scenario_seconds(check.elapsed_seconds), row, "o", color=colour, zorder=4)
        ended = ended_unseen(trace)
        if ended is not None:
            ax.plot([ended], [row], marker="X", markersize=12, color="black", zorder=5)
            ax.annotate(
                trace.result.final_status or "", (ended, row), xytext=(0, 9), textcoords="offset points",
                ha="center", fontsize="small",
            )  # fmt: skip
    ax.set_yticks(range(len(traces)), [label(trace) for trace in traces], fontsize="small")
    ax.legend(
        handles=[
            Line2D([], [], marker="o", linestyle="", color=c, label=f"check saw {s}")
            for s, c in STATUS_COLOURS.items()
            if s != "Pending"
        ]
        + [
            Line2D([], [], marker="v", linestyle="", color="#ff7f0e", label="job finished"),
            Line2D([], [], marker="|", linestyle="", color="black", markersize=12, label="timeout"),
            Line2D([], [], marker="X", linestyle="", color="black", markersize=10, label=ENDED_UNSEEN),
        ],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.16),
        ncol=3,
        fontsize="small",
        frameon=False,
    )
    ax.set_ylim(len(traces) - 0.5, -0.5)
    ax.set_title("Timeline of checks")
    ax.set_xlabel("seconds since the monitor started")
    ax.grid(axis="x", alpha=0.3)


def draw_comparison(axes: Sequence[Axes], traces: Sequence[RunTrace]) -> None:
    """Three bar charts across runs: checks performed, monitoring duration, detection delay."""
    names = [trace.request.job_id for trace in traces]
    checks = [(trace.result.checks_performed or 0) if trace.result else 0 for trace in traces]
    durations = [
        trace.scenario_seconds(trace.result.monitoring_duration_seconds or 0) if trace.result else 0
        for trace in traces
    ]
    delays = [trace.detection_delay for trace in traces]
    colours = [f"C{index}" for index in range(len(traces))]
    axes[0].bar(names, checks, color=colours)
    axes[0].yaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_title("Checks performed (cost)")
    axes[1].bar(names, durations, color=colours)
    axes[1].set_title("Monitoring duration (s)")
    shown_delays = [
        trace.scenario_seconds(d) if d is not None else 0 for d, trace in zip(delays, traces, strict=True)
    ]
    axes[2].bar(names, shown_delays, color=colours)
    for position, (delay, trace) in enumerate(zip(delays, traces, strict=True)):
        if delay is None and trace.result is not None:
            axes[2].annotate(
                trace.result.final_status or "?", (position, 0), ha="center", va="bottom", fontsize="small"
            )
    axes[2].set_title("Detection delay (s)")
    # Each bar says its value as the panel's table writes it, on an axis of at least one second: a 28 ms
    # duration is a sliver, not a bar as tall as a 30 s one. A delay never seen has its final status instead.
    delay_labels = ["" if d is None else seconds_text(v) for d, v in zip(delays, shown_delays, strict=True)]
    for ax, values, labels in (
        (axes[1], durations, [seconds_text(v) for v in durations]),
        (axes[2], shown_delays, delay_labels),
    ):
        ax.bar_label(ax.containers[0], labels=labels, fontsize="small")
        ax.set_ylim(0, max([1.0, *values]) * 1.15)
    axes[0].bar_label(axes[0].containers[0], fontsize="small")
    axes[0].set_ylim(0, max([1, *checks]) * 1.15)
    for ax in axes:
        ax.tick_params(axis="x", labelrotation=30, labelsize="small")
        ax.grid(axis="y", alpha=0.3)


def draw_tradeoff(ax: Axes, traces: Sequence[RunTrace]) -> None:
    """The interval trade-off: checks performed (cost) and detection delay (latency) per polling interval."""
    ordered = sorted(traces, key=lambda trace: trace.request.polling_interval_seconds)
    intervals = [trace.scenario_seconds(trace.request.polling_interval_seconds) for trace in ordered]
    checks = [(trace.result.checks_performed or 0) if trace.result else 0 for trace in ordered]
    delays = [trace.scenario_seconds(trace.detection_delay or 0.0) for trace in ordered]
    ax.plot(intervals, checks, "o-", color="C0", label="checks performed (cost)")
    ax.set_xlabel("polling interval (s)")
    ax.set_ylabel("checks performed", color="C0")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(bottom=0)
    latency = ax.twinx()
    latency.plot(intervals, delays, "s--", color="C3", label="detection delay (latency)")
    latency.plot(intervals, intervals, ":", color="grey", label="one interval (worst case)")
    latency.set_ylabel("seconds from job end to detection", color="C3")
    latency.set_ylim(bottom=0)
    lines = ax.get_lines() + latency.get_lines()
    ax.legend(lines, [line.get_label() for line in lines], loc="upper center", fontsize="small")
    ax.set_title("Shorter intervals: faster detection, more checks")
    ax.grid(alpha=0.3)


def progress_figure(traces: Sequence[RunTrace]) -> Figure:
    """Check progress and timelines side by side."""
    figure = Figure(figsize=(12, 4.2), layout="constrained")
    progress, timeline = figure.subplots(1, 2, width_ratios=[1, 1.1])
    draw_check_progress(progress, traces)
    draw_timelines(timeline, traces)
    return figure


def comparison_figure(traces: Sequence[RunTrace]) -> Figure:
    figure = Figure(figsize=(12, 3.8), layout="constrained")
    draw_comparison(figure.subplots(1, 3), traces)
    return figure


def tradeoff_figure(traces: Sequence[RunTrace]) -> Figure:
    figure = Figure(figsize=(8, 4.2), layout="constrained")
    draw_tradeoff(figure.subplots(), traces)
    return figure


def png_bytes(figure: Figure) -> bytes:
    """Render a figure to PNG (for an ``ipywidgets.Image``)."""
    buffer = BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


class ScaleRun(Protocol):
    """What :func:`scale_figure` reads of one on-time batch (the benchmark's ``BatchResult`` has it)."""

    monitors: int
    interval_seconds: float
    offered_checks_per_second: float
    checks_per_second: float
    lateness_p50_seconds: float
    lateness_p99_seconds: float
    lateness_max_seconds: float


def scale_figure(runs: Sequence[ScaleRun], saturated_at: int | None) -> Figure:
    """Lateness and throughput against the number of monitors (the benchmark's on-time runs).

    ``saturated_at`` (a monitor count, or None) is marked on both plots: from there on the worker no longer
    keeps up with the offered load and lateness grows with every monitor added.
    """
    figure = Figure(figsize=(12, 4.2), layout="constrained")
    lateness, throughput = figure.subplots(1, 2)
    sizes = [run.monitors for run in runs]
    for key, style in (("p50", "o-"), ("p99", "s--"), ("max", "^:")):
        lateness.plot(
            sizes, [getattr(run, f"lateness_{key}_seconds") * 1000 for run in runs], style, label=key
        )
    lateness.set_ylabel("lateness: check time minus due time (ms)")
    lateness.set_title(f"Lateness ({runs[0].interval_seconds:g} s interval)")
    throughput.plot(sizes, [run.offered_checks_per_second for run in runs], ":", color="grey",
                    label="offered (monitors / interval)")  # fmt: skip
    throughput.plot(sizes, [run.checks_per_second for run in runs], "o-", color="C2", label="achieved")
    throughput.set_ylabel("checks per second")
    throughput.set_title("Throughput")
    for ax in (lateness, throughput):
        if saturated_at is not None:
            ax.axvline(saturated_at, color="C3", alpha=0.7, label=f"saturated at {saturated_at} monitors")
        ax.set_xscale("log")
        ax.set_xticks(sizes, [str(size) for size in sizes])  # the sizes measured, as plain numbers
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("monitors (log scale)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return figure


def job_progress_figure(trace: RunTrace, job: Job) -> Figure:
    """A real job's progress over time (from the job service's own timeline) with the monitor's checks on it.

    Times are real seconds since the job started;
    each check is placed by the time the monitor stamped it (its start plus the check's elapsed seconds).
    """
    figure = Figure(figsize=(10, 3.8), layout="constrained")
    ax = figure.subplots()
    times = [moment for moment, _ in job.timeline]
    ax.plot(times, [progress * 100 for _, progress in job.timeline], color="C0", label="job progress")
    if job.ended_at is not None:
        ax.axvline(job.ended_at, color="grey", linestyle=":", label=f"job {job.status}")
    started = trace.latest.custom_status.started_at if trace.latest and trace.latest.custom_status else None
    offset = from_iso(started).timestamp() - job.started_wall if started else 0.0
    for check in trace.checks():
        at = offset + check.elapsed_seconds
        colour = STATUS_COLOURS.get(check.job_status, "black")
        ax.axvline(at, color=colour, alpha=0.5, linewidth=1)
        ax.plot([at], [_progress_at(job.timeline, at) * 100], "o", color=colour, markersize=8, zorder=3)
    ax.legend(
        handles=[
            Line2D([], [], color="C0", label="job progress (the service's own record)"),
            Line2D([], [], color="grey", linestyle=":", label=f"job ended ({job.status})"),
            *[
                Line2D([], [], marker="o", linestyle="", color=c, label=f"check saw {s}")
                for s, c in STATUS_COLOURS.items()
                if s in {check.job_status for check in trace.checks()}
            ],
        ],
        loc="lower right",
        fontsize="small",
    )
    ax.set_xlabel("seconds since the job started")
    ax.set_ylabel("progress (%)")
    ax.set_ylim(0, 105)
    ax.set_title(f"{trace.request.job_id}: the monitor's checks on the job's progress")
    ax.grid(alpha=0.3)
    return figure


def _progress_at(timeline: Sequence[tuple[float, float]], at: float) -> float:
    """The progress the job had reported by ``at`` seconds (the last point at or before it)."""
    reached = [progress for moment, progress in timeline if moment <= at]
    return reached[-1] if reached else 0.0


BATCH_COLOURS = {
    "completed": "#2ca02c",
    "failed": "#d62728",
    "timed_out": "#ff7f0e",
    "cancelled": "#8c564b",
    "running": "#1f77b4",
    "pending": "#c7c7c7",
}


def batch_progress_figure(run: BatchRun) -> Figure:
    """A batch's jobs by state over time, stacked: the counts of its custom status at each change seen.

    Ended states at the bottom, so the set's progress is the height of the coloured part; the x axis is in
    the scenario's seconds since the batch was scheduled. What was done to the batch meanwhile (a worker
    killed) is a dashed line; once the batch ended, a dotted line marks it and its last counts stay drawn."""
    total = len(run.batch.jobs)
    samples = [BatchSample(0.0, {**dict.fromkeys(BATCH_COLOURS, 0), "pending": total}), *run.samples]
    now = samples[-1].seconds if run.done else run.seconds_since_scheduled()
    end = now + max(0.04 * now, 0.05) if run.done else now
    samples.append(BatchSample(end, samples[-1].counts))
    figure = Figure(figsize=(10, 3.8), layout="constrained")
    ax = figure.subplots()
    ax.stackplot(
        [sample.seconds for sample in samples],
        [[sample.counts[state] for sample in samples] for state in BATCH_COLOURS],
        labels=[state.replace("_", " ") for state in BATCH_COLOURS],
        colors=list(BATCH_COLOURS.values()),
        step="post",
    )
    lines = [(at, what, "--", "left") for at, what in run.marks]
    if run.done:
        lines.append((now, "batch ended", ":", "right"))
    for at, what, style, side in lines:
        ax.axvline(at, color="black", linestyle=style, linewidth=1.2)
        ax.annotate(
            what,
            (at, total),
            xytext=(4 if side == "left" else -4, -14),
            textcoords="offset points",
            ha=side,
            fontsize="small",
            bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8, "linewidth": 0},
        )
    ax.set_xlabel("seconds since the batch was scheduled")
    ax.set_ylabel("jobs")
    ax.set_xlim(0, max(end, 0.1))
    ax.set_ylim(0, total)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"a batch of {total} jobs, at most {run.batch.max_concurrent} at once: jobs by state")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="small", reverse=True)
    ax.grid(alpha=0.3)
    return figure
