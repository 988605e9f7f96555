"""When the monitor checks, and when it stops: pure functions, no clock, no I/O.

The schedule, with interval ``I`` and timeout ``T`` (both in seconds, measured from the monitor's start):

* the first check happens at once (offset 0);
* then one check every ``I`` seconds: offsets ``I, 2I, 3I, ...`` while they are before ``T``;
* the last wait is clipped to the deadline, and there is one final check exactly at ``T``;
* a check that finds the job ``Completed`` or ``Failed`` ends the run with that status; if the final check
  at the deadline still finds it running, the run ends ``Timeout``.

So a monitor that times out performs ``ceil(T / I) + 1`` checks: 5 s / 30 s gives 7 (0, 5, ..., 25, 30),
6 s / 30 s gives 6 (0, 6, ..., 24, 30) and 7 s / 30 s gives 6 (0, 7, 14, 21, 28, 30). Check times are
offsets from the start, not from the previous check, so lateness never accumulates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from monitoring.models import FinalStatus

# Offsets closer than this to the deadline count as "at the deadline" (guards 0.1 * 3 != 0.3).
_EPSILON = 1e-9
TERMINAL_JOB_STATUSES: frozenset[str] = frozenset({"Completed", "Failed"})


@dataclass(frozen=True)
class CheckSchedule:
    """The fixed check times of one monitor."""

    interval_seconds: float
    timeout_seconds: float

    def __post_init__(self) -> None:
        if not (self.interval_seconds > 0 and self.timeout_seconds > 0):
            raise ValueError("interval and timeout must be greater than zero")

    @property
    def planned_check_count(self) -> int:
        """How many checks a monitor performs if the job never finishes."""
        return math.ceil(self.timeout_seconds / self.interval_seconds - _EPSILON) + 1

    def offset_of_check(self, check_number: int) -> float:
        """Seconds after the start at which check ``check_number`` (1-based) is due."""
        if not 1 <= check_number <= self.planned_check_count:
            raise ValueError(f"check {check_number} is outside 1..{self.planned_check_count}")
        return min((check_number - 1) * self.interval_seconds, self.timeout_seconds)

    def planned_offsets(self) -> list[float]:
        return [self.offset_of_check(n) for n in range(1, self.planned_check_count + 1)]


@dataclass(frozen=True)
class Decision:
    """What to do after a check: stop with ``final_status``, or check again at ``next_check_offset``."""

    final_status: FinalStatus | None
    next_check_offset: float | None

    @property
    def is_final(self) -> bool:
        return self.final_status is not None


def decide_after_check(schedule: CheckSchedule, checks_done: int, job_status: str) -> Decision:
    """Decide the next step after ``checks_done`` checks, the last of which saw ``job_status``."""
    if job_status in TERMINAL_JOB_STATUSES:
        return Decision(final_status=job_status, next_check_offset=None)  # type: ignore[arg-type]
    if checks_done >= schedule.planned_check_count:
        return Decision(final_status="Timeout", next_check_offset=None)
    return Decision(final_status=None, next_check_offset=schedule.offset_of_check(checks_done + 1))
