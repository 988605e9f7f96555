"""The bench's results as a Markdown table, and the README block that shows it."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from monitoring.bench.results import BenchRun, StackResult
from monitoring.bench.waiting import WaitingResult

README_START = "<!-- bench-results:start -->"
README_END = "<!-- bench-results:end -->"
WAITING_START = "<!-- waiting-results:start -->"
WAITING_END = "<!-- waiting-results:end -->"


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


def waiting_table(runs: list[WaitingResult]) -> str:
    """A Markdown table of the waiting run, one column per number of monitors."""
    rows: list[tuple[str, Callable[[WaitingResult], str]]] = [
        ("starts per second (one client, 8 threads)", lambda r: f"{r.starts_per_second:.0f}"),
        ("scheduler memory per waiting monitor, KB", lambda r: f"{r.scheduler_kb_per_monitor:.2f}"),
        (
            "the same after a restart on its file, KB",
            lambda r: f"{r.scheduler_kb_per_monitor_after_restart:.2f}",
        ),
        ("worker memory per waiting monitor, KB", lambda r: f"{r.worker_kb_per_monitor:.2f}"),
        ("state file per monitor, KB", lambda r: f"{r.state_file_kb_per_monitor:.2f}"),
        (
            "first checks' lateness p50 / p99 / max, ms",
            lambda r: " / ".join(_ms(getattr(r, f"lateness_{k}_seconds")) for k in ("p50", "p99", "max")),
        ),
        (
            "restart on its file: serving / a new monitor's check ran, s",
            lambda r: f"{r.restart_serving_seconds:.1f} / {r.restart_seconds:.1f}",
        ),
    ]
    lines = [
        f"| figure | {' | '.join(f'{r.monitors:,} monitors' for r in runs)} |",
        "|---" * (len(runs) + 1) + "|",
    ]
    lines += [f"| {label} | {' | '.join(cell(r) for r in runs)} |" for label, cell in rows]
    return "\n".join(lines)


def update_readme(run: BenchRun, readme: Path, command: str) -> None:
    """Rewrite the stacks' table in ``readme``."""
    heading = f"Measured {run.date} on {run.machine}, with `{command}`:"
    replace_block(readme, README_START, README_END, f"{heading}\n\n{results_table(run)}")


def update_readme_waiting(runs: list[WaitingResult], readme: Path, command: str, when: str) -> None:
    """Rewrite the waiting run's table in ``readme`` (``when``: the date and the machine)."""
    replace_block(
        readme, WAITING_START, WAITING_END, f"Measured {when}, with `{command}`:\n\n{waiting_table(runs)}"
    )


def replace_block(readme: Path, start: str, end: str, content: str) -> None:
    text = readme.read_text()
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise RuntimeError(f"{readme} has no {start} ... {end} block to replace")
    readme.write_text(pattern.sub(lambda _: f"{start}\n{content}\n{end}", text))
