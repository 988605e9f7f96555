"""What a monitor of the simulated job will report, worked out from the schedule alone (no clock, no I/O)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from monitoring.core.batch import FINAL_STATE
from monitoring.core.jobs import due_elapsed_seconds, simulated_job_status
from monitoring.core.models import MonitorRequest
from monitoring.core.schedule import FinalStatus, decide_after_check


@dataclass(frozen=True)
class Prediction:
    """What a monitor of the simulated job will report, worked out from the schedule alone."""

    final_status: FinalStatus
    checks_performed: int
    ended_at_offset: float
    detection_delay: float | None  # seconds from the job finishing to the check that saw it; None on Timeout


def predict(request: MonitorRequest) -> Prediction:
    """Step the schedule against the simulated job: the outcome of ``request``, on any machine.

    Exact, not ideal: the simulated job answers for the time each check was due, so however late the checks
    run, the final status and the check count are these; the monitor's duration is ``ended_at_offset`` or
    later (it ends when its last check has answered).
    """
    schedule = request.schedule()
    for check_number, offset in enumerate(schedule.planned_offsets(), start=1):
        elapsed = due_elapsed_seconds(offset)
        status = simulated_job_status(request.job_duration_seconds, request.job_outcome, elapsed)
        decision = decide_after_check(schedule, check_number, status)
        if decision.final_status is not None:
            ended = round(offset, 6)  # plain numbers: 0.6, not 0.5999999999999996
            delay = (
                None
                if decision.final_status == "Timeout"
                else round(offset - request.job_duration_seconds, 6)
            )
            return Prediction(decision.final_status, check_number, ended, delay)
    raise AssertionError("the schedule always ends with a decision")


def predicted_counts(requests: Sequence[MonitorRequest]) -> dict[str, int]:
    """How a batch of these simulated jobs ends: how many completed, failed, timed out (its output's counts,
    none cancelled)."""
    counts = dict.fromkeys(FINAL_STATE.values(), 0)
    for request in requests:
        counts[FINAL_STATE[predict(request).final_status]] += 1
    return counts
