"""The bench's results as a Markdown table, and the README block that shows it."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from monitoring.bench.results import BenchRun, StackResult

README_START = "<!-- bench-results:start -->"
README_END = "<!-- bench-results:end -->"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}"


def results_table(run: BenchRun) -> str:
    """A Markdown table of the figures, one column per stack, then the ratios."""
    stacks = run.stacks
    names = list(stacks)
    first = stacks[names[0]]
    ontime = first.main_on_time
    long = first.long
    rows: list[tuple[str, Callable[[StackResult], str]]] = [
        (
            f"lateness p50 / p99 / max, ms ({ontime.monitors} monitors x {ontime.checks_per_monitor} "
            f"checks at {ontime.interval_seconds:g} s)",
            lambda r: " / ".join(
                _ms(getattr(r.main_on_time, f"lateness_{k}_seconds")) for k in ("p50", "p99", "max")
            ),
        ),
        ("client time to start them, s", lambda r: f"{r.main_on_time.schedule_seconds:.2f}"),
        (
            "CPU s worker / scheduler process (that run)",
            lambda r: (
                f"{r.main_on_time.worker_cpu_seconds:.1f} / "
                + (
                    "in worker"
                    if r.main_on_time.scheduler_cpu_seconds is None
                    else f"{r.main_on_time.scheduler_cpu_seconds:.1f}"
                )
            ),
        ),
        ("CPU ms per check (worker + scheduler)", lambda r: f"{r.main_on_time.cpu_ms_per_check:.2f}"),
        (
            "memory per waiting monitor, KB",
            lambda r: f"{r.main_on_time.memory_kb_per_waiting_monitor:.0f}",
        ),
        (
            f"saturated checks/s ({first.saturated.monitors} monitors)",
            lambda r: f"{r.saturated.checks_per_second:.0f}",
        ),
        (
            f"worker CPU ms per check at check {long.early_check} / {long.late_check}",
            lambda r: (
                f"{r.long.cpu_ms_per_check_early:.2f} / {r.long.cpu_ms_per_check_late:.2f}"
                f" (x{r.long.cpu_growth:.2f})"
            ),
        ),
        (
            "peak memory MB worker / scheduler",
            lambda r: (
                f"{r.peak_worker_mb:.0f} / "
                + ("in worker" if r.peak_scheduler_mb is None else f"{r.peak_scheduler_mb:.0f}")
            ),
        ),
    ]
    if len(first.on_time) > 1:
        rows.insert(
            1,
            (
                "p99 lateness by number of monitors, ms",
                lambda r: ", ".join(
                    f"{batch.monitors}: {_ms(batch.lateness_p99_seconds)}"
                    for batch in sorted(r.on_time, key=lambda batch: batch.monitors)
                ),
            ),
        )
    lines = [f"| figure | {' | '.join(names)} |", "|---" * (len(names) + 1) + "|"]
    for label, cell in rows:
        lines.append(f"| {label} | {' | '.join(cell(stacks[name]) for name in names)} |")
    lines.append("")
    lines.extend(f"- {label}: {value:.2f}" for label, value in run.ratios.items())
    return "\n".join(lines)


def update_readme(run: BenchRun, readme: Path, command: str) -> None:
    text = readme.read_text()
    block = (
        f"{README_START}\nMeasured {run.date} on {run.machine}, with `{command}`:\n\n"
        f"{results_table(run)}\n{README_END}"
    )
    pattern = re.compile(re.escape(README_START) + ".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        raise RuntimeError(f"{readme} has no {README_START} ... {README_END} block to replace")
    readme.write_text(pattern.sub(lambda _: block, text))
