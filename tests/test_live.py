"""Live plots' pacing: frames spaced by what the last one cost, so drawing keeps to its share of a core."""

from __future__ import annotations

import time

import pytest

from monitoring.notebook.live import RedrawPace, live_display


def burn_cpu(seconds: float) -> str:
    """Spend ``seconds`` of this thread's CPU, as drawing a figure does."""
    until = time.thread_time() + seconds
    while time.thread_time() < until:
        pass
    return "frame"


def test_the_gap_after_a_frame_keeps_drawing_within_its_share() -> None:
    pace = RedrawPace(0.3, busy_share=0.25)
    assert pace.gap_after(0.0) == 0.3  # a cheap frame: the floor
    assert pace.gap_after(0.2) == pytest.approx(0.6)  # 0.2 s drawing in every 0.8 s is a quarter
    assert RedrawPace(0.0, busy_share=1.0).gap_after(5.0) == 0.0  # a whole core: no gap


def test_a_costly_frame_puts_the_next_one_further_off() -> None:
    pace = RedrawPace(0.0, busy_share=0.25)
    assert pace.due() and pace.frames == 0
    before = time.monotonic()
    assert pace.draw(lambda: burn_cpu(0.05)) == "frame"
    assert pace.frames == 1
    assert pace.due_at >= before + 3 * 0.05  # three times the frame's CPU before the next one


def test_time_spent_waiting_is_not_counted_as_drawing() -> None:
    pace = RedrawPace(0.0, busy_share=0.25)
    pace.draw(lambda: time.sleep(0.05))
    drawn = time.monotonic()
    assert pace.due_at - drawn < 3 * 0.05  # a sleep costs no CPU: no gap for it


def test_a_failing_render_still_counts_and_the_error_reaches_the_caller() -> None:
    pace = RedrawPace(10.0)

    def broken() -> None:
        raise RuntimeError("no figure")

    with pytest.raises(RuntimeError, match="no figure"):
        pace.draw(broken)
    assert pace.frames == 1 and not pace.due() and pace.wait_seconds() > 0


@pytest.mark.parametrize(("every", "share"), [(-1.0, 0.25), (0.3, 0.0), (0.3, 1.5)])
def test_a_pace_that_cannot_work_is_refused(every: float, share: float) -> None:
    with pytest.raises(ValueError, match="busy_share"):
        RedrawPace(every, busy_share=share)


def test_outside_ipython_nothing_is_shown() -> None:
    assert live_display("an image") is None
