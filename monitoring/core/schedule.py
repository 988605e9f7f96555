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

Optional backoff: with ``backoff_factor`` ``f > 1`` the gap before check ``n + 1`` is ``I * f ** (n - 1)``,
capped at ``max_interval_seconds`` when given; the fixed schedule above is the case ``f = 1``. A monitor
that was late (a stopped worker, a suspension) catches up: every planned check still happens, the overdue
ones at once, so no check is lost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

JobStatus = Literal["Pending", "Running", "Completed", "Failed"]
FinalStatus = Literal["Completed", "Failed", "Timeout", "Cancelled"]

# Offsets closer than this to the deadline count as "at the deadline" (guards 0.1 * 3 != 0.3).
_EPSILON = 1e-9
TERMINAL_JOB_STATUSES: frozenset[str] = frozenset({"Completed", "Failed"})


def _power(factor: float, exponent: int) -> float:
    """``factor ** exponent``, or infinity where that is past the largest float (instead of OverflowError)."""
    try:
        return factor**exponent
    except OverflowError:
        return math.inf


def backoff_gap(interval: float, factor: float, cap: float | None, gap_number: int) -> float:
    """Wait ``gap_number`` (1-based) between two checks: ``interval * factor ** (gap_number - 1)``, capped."""
    if gap_number < 1:
        raise ValueError(f"gap {gap_number} is outside 1..")
    gap = interval * _power(factor, gap_number - 1) if factor != 1 else interval
    return gap if cap is None else min(gap, cap)


def backoff_offset(interval: float, factor: float, cap: float | None, gaps: int) -> float:
    """The sum of the first ``gaps`` waits, in closed form (no loop over thousands of checks)."""
    if gaps <= 0:
        return 0.0
    if factor == 1:
        return gaps * (interval if cap is None else min(interval, cap))
    growing = gaps  # how many of the first ``gaps`` waits are below the cap
    if cap is not None:
        below_cap = math.ceil(math.log(cap / interval) / math.log(factor) - _EPSILON) if cap > interval else 0
        growing = min(gaps, below_cap)
    total = interval * (_power(factor, growing) - 1) / (factor - 1)
    return total + (gaps - growing) * (cap if cap is not None else 0.0)


@dataclass(frozen=True)
class CheckSchedule:
    """The check times of one monitor: fixed (``backoff_factor`` 1) or growing; the last at the deadline."""

    interval_seconds: float
    timeout_seconds: float
    backoff_factor: float = 1.0
    max_interval_seconds: float | None = None

    def __post_init__(self) -> None:
        if not (self.interval_seconds > 0 and self.timeout_seconds > 0):
            raise ValueError("interval and timeout must be greater than zero")
        if not self.backoff_factor >= 1:
            raise ValueError("backoff factor must be 1 or more")
        if self.max_interval_seconds is not None and not self.max_interval_seconds > 0:
            raise ValueError("the interval cap must be greater than zero")

    def _unclipped_offset(self, check_number: int) -> float:
        return backoff_offset(
            self.interval_seconds, self.backoff_factor, self.max_interval_seconds, check_number - 1
        )

    @cached_property
    def planned_check_count(self) -> int:
        """How many checks a monitor performs if the job never finishes (worked out once per schedule: the
        orchestrator asks on every step of every replay)."""
        first_gap = backoff_gap(self.interval_seconds, 1, self.max_interval_seconds, 1)
        if self.backoff_factor == 1:
            return math.ceil(self.timeout_seconds / first_gap - _EPSILON) + 1
        # Checks strictly before the deadline (offsets only grow: binary search), then one at the deadline.
        low, high = 1, math.ceil(self.timeout_seconds / first_gap) + 1
        while low < high:
            middle = (low + high + 1) // 2
            if self._unclipped_offset(middle) < self.timeout_seconds - _EPSILON:
                low = middle
            else:
                high = middle - 1
        return low + 1

    def offset_of_check(self, check_number: int) -> float:
        """Seconds after the start at which check ``check_number`` (1-based) is due."""
        if not 1 <= check_number <= self.planned_check_count:
            raise ValueError(f"check {check_number} is outside 1..{self.planned_check_count}")
        return min(self._unclipped_offset(check_number), self.timeout_seconds)

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


def retry_delay_seconds(
    first_interval: float, backoff_coefficient: float, max_attempts: int, failed_attempts: int
) -> float | None:
    """Seconds to wait before the next attempt after ``failed_attempts`` failures; None when none is left.

    The same rule as the SDK's ``RetryPolicy``: ``first_interval * backoff_coefficient ** (failed - 1)``.
    """
    if failed_attempts >= max_attempts:
        return None
    return first_interval * backoff_coefficient ** (failed_attempts - 1)


# A guard timer handled later than this after it fell due means no worker ran the monitor meanwhile.
LATE_TOLERANCE_SECONDS = 2.0


def no_worker_seconds(now: float, guard_due: float, asked_due: float, asked_at: float) -> float | None:
    """How long no worker ran the monitor, if that is why its guard (deadline + grace) won; else None.

    All times are seconds since the monitor started: ``now`` when the guard's firing is handled,
    ``asked_due`` when the unanswered attempt was meant to happen and ``asked_at`` when the orchestrator
    asked for it. A guard handled on time means a worker ran the monitor and the check itself did not
    answer. Handled late, nobody ran the monitor: since the attempt was asked for (a worker was there
    then), or, if it was asked in the same turn the guard is handled in, since the attempt fell due.
    """
    if now - guard_due <= LATE_TOLERANCE_SECONDS:
        return None
    since = asked_due if asked_at >= now else asked_at
    return max(now - since, now - guard_due)


def guard_reason(
    check_number: int, planned_checks: int, grace_seconds: float, deadline: str, idle_seconds: float | None
) -> str:
    """The reason a monitor gives when its guard wins before check ``check_number`` answered.

    Checks that could not run because no worker was there are not counted, and the reason says so."""
    if idle_seconds is None:
        return f"check {check_number} had not answered {grace_seconds:g} s after the deadline ({deadline})"
    missed = (
        f"check {check_number}"
        if check_number >= planned_checks
        else f"checks {check_number} to {planned_checks}"
    )
    return (
        f"no worker for {idle_seconds:.0f} s (none connected, or all busy): {missed} could not run "
        f"before the deadline ({deadline}) plus {grace_seconds:g} s"
    )
