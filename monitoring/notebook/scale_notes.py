"""Notebook 04's reading of its own two-worker measurements, in words (the benchmark's results, duck-typed:
the product never names the benchmark)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def scale_out_notes(one: Sequence[Any], two: Sequence[Any]) -> list[str]:
    """One line per monitor count: p99 lateness and CPU per check with one worker and with two processes,
    and which did better there (each line is read off the numbers it quotes)."""
    notes = []
    for single, pair in zip(one, two, strict=True):
        # Compared as printed (whole milliseconds): two p99s shown equal are called equal.
        p99_one, p99_two = (round(run.lateness_p99_seconds * 1000) for run in (single, pair))
        cost = pair.cpu_ms_per_check / single.cpu_ms_per_check if single.cpu_ms_per_check else float("nan")
        keeps_up = (
            "kept up" if single.checks_per_second >= 0.9 * single.offered_checks_per_second else "fell behind"
        )
        verdict = "later" if p99_two > p99_one else "earlier" if p99_two < p99_one else "the same"
        offered = single.offered_checks_per_second
        notes.append(
            f"{single.monitors} monitors ({offered:.0f} checks/s offered; one worker {keeps_up}): "
            f"p99 {_ms(single.lateness_p99_seconds)} with one worker, {_ms(pair.lateness_p99_seconds)} "
            f"with two processes ({verdict}); "
            f"CPU per check {single.cpu_ms_per_check:.1f} vs {pair.cpu_ms_per_check:.1f} ms (x{cost:.2f})"
        )
    return notes


def scale_out_summary(one: Any, two: Any, cores: int) -> str:
    """What the saturated phases of one worker and of two worker processes show on this machine, in words
    (each a ``BatchResult`` of the benchmark: checks per second when every monitor checks flat out)."""
    ratio = two.checks_per_second / one.checks_per_second
    if ratio >= 1.1:
        verdict = f"two processes made {ratio:.2f} times the checks: there was CPU left for a second one"
    elif ratio <= 0.9:
        verdict = f"two processes made fewer ({ratio:.2f} times): the extra process cost more than it added"
    else:
        verdict = f"about the same ({ratio:.2f} times): the second process mostly took CPU from the first"
    return (
        f"Flat out on this machine ({cores} cores, shared by the scheduler, the workers and this kernel): "
        f"{one.checks_per_second:.0f} checks/s with one worker, {two.checks_per_second:.0f} with two worker "
        f"processes; {verdict}."
    )
