"""Notebook 04's reading of its own two-worker figures: words that match the numbers they quote."""

from __future__ import annotations

from types import SimpleNamespace

from monitoring.notebook.scale_notes import scale_out_notes, scale_out_summary


def batch(p99: float, monitors: int = 100, cps: float = 100.0) -> SimpleNamespace:
    return SimpleNamespace(
        monitors=monitors,
        lateness_p99_seconds=p99,
        cpu_ms_per_check=2.0,
        checks_per_second=cps,
        offered_checks_per_second=100.0,
    )


def test_two_p99s_printed_equal_are_called_the_same_not_later() -> None:
    (same,) = scale_out_notes([batch(0.0301)], [batch(0.0303)])  # both print as 30 ms
    assert "p99 30 ms with one worker, 30 ms with two processes (the same)" in same
    (later,) = scale_out_notes([batch(0.030)], [batch(0.032)])
    assert "(later)" in later
    (earlier,) = scale_out_notes([batch(0.032)], [batch(0.030)])
    assert "(earlier)" in earlier


def test_the_summary_says_what_the_flat_out_rates_show() -> None:
    def summary(one: float, two: float) -> str:
        return scale_out_summary(batch(0, cps=one), batch(0, cps=two), cores=2)

    assert summary(400, 250).endswith(
        "two processes made fewer (0.62 times): the extra process cost more than it added."
    )
    assert "about the same (1.02 times)" in summary(400, 408)
    assert "two processes made 1.50 times the checks" in summary(200, 300)
    assert summary(400, 250).startswith("Flat out on this machine (2 cores, shared by the scheduler")
