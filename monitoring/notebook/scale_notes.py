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
        later = pair.lateness_p99_seconds > single.lateness_p99_seconds
        cost = pair.cpu_ms_per_check / single.cpu_ms_per_check if single.cpu_ms_per_check else float("nan")
        keeps_up = (
            "kept up" if single.checks_per_second >= 0.9 * single.offered_checks_per_second else "fell behind"
        )
        verdict = "later" if later else "earlier or equal"
        offered = single.offered_checks_per_second
        notes.append(
            f"{single.monitors} monitors ({offered:.0f} checks/s offered; one worker {keeps_up}): "
            f"p99 {_ms(single.lateness_p99_seconds)} with one worker, {_ms(pair.lateness_p99_seconds)} "
            f"with two processes ({verdict}); "
            f"CPU per check {single.cpu_ms_per_check:.1f} vs {pair.cpu_ms_per_check:.1f} ms (x{cost:.2f})"
        )
    return notes
