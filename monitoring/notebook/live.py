"""Live plots in a notebook: a PNG replaced in place, redrawn at a pace the kernel can afford.

A frame of a matplotlib figure costs a tenth of a second or more of CPU. Redrawing on every change would
spend most of a core drawing while the worker in the same kernel has monitors to run, so
:class:`RedrawPace` spaces frames by what the last one cost: at least ``every_seconds`` apart, and far
enough apart that drawing takes at most ``busy_share`` of one core.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class RedrawPace:
    """When the next frame of a live plot is due, from the time and CPU the last one took."""

    def __init__(self, every_seconds: float, *, busy_share: float = 0.25) -> None:
        if every_seconds < 0 or not 0 < busy_share <= 1:
            raise ValueError(
                f"every_seconds must be >= 0 and busy_share in (0, 1]: got {every_seconds}, {busy_share}"
            )
        self.every_seconds = every_seconds
        self.busy_share = busy_share
        self.frames = 0
        self.due_at = time.monotonic()  # time.monotonic() at which the next frame may be drawn

    def gap_after(self, cpu_seconds: float) -> float:
        """Seconds to wait after a frame that cost ``cpu_seconds``: drawing stays within the share."""
        return max(self.every_seconds, cpu_seconds * (1 / self.busy_share - 1))

    def due(self) -> bool:
        """Whether a frame may be drawn now."""
        return time.monotonic() >= self.due_at

    def wait_seconds(self) -> float:
        """Seconds until the next frame is due (0 when it is due now)."""
        return max(0.0, self.due_at - time.monotonic())

    def draw(self, render: Callable[[], T]) -> T:
        """Call ``render`` now, and set the next frame's time from the CPU it took on this thread."""
        cpu_before = time.thread_time()
        try:
            return render()
        finally:
            self.frames += 1
            self.due_at = time.monotonic() + self.gap_after(time.thread_time() - cpu_before)


def live_display(image: Any):  # type: ignore[no-untyped-def]
    """Show a plot as a PNG that can be replaced in place (inside IPython; None elsewhere).

    A PNG rather than the figure itself, so it shows whatever matplotlib backend the kernel uses.
    """
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return None
    if get_ipython() is None:
        return None
    return display(image, display_id=True)
