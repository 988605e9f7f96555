"""The notebooks' "Your turn" checks: each says in plain words whether an answer is right.

A learner's answer starts as ``...`` (not answered yet). Every check returns a :class:`Verdict`: a cell that
ends with it shows its sentence, and it is true only for a right answer, so a notebook's worked solution can
``assert`` it (nbval runs the solutions).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from monitoring.client.tracking import RunTrace
from monitoring.core.batch import BatchRequest
from monitoring.core.predict import predicted_counts
from monitoring.core.sources import map_status


def answered(answer: object) -> bool:
    """False while the answer is still the placeholder ``...`` (or None)."""
    return answer is not ... and answer is not None


@dataclass(frozen=True)
class Verdict:
    """Whether an answer is right, and why, in one sentence (what a notebook cell shows)."""

    right: bool
    text: str

    def __bool__(self) -> bool:
        return self.right

    def __repr__(self) -> str:
        return ("Right: " if self.right else "Not yet: ") + self.text


def check_prediction(answer: object, made: int, hint: str) -> Verdict:
    """A predicted number of checks against the number the monitor made."""
    if not answered(answer):
        return Verdict(False, "write your prediction (a number) in the cell above, then run this one again.")
    if answer == made:
        return Verdict(True, f"the monitor made {made} checks, as you predicted.")
    return Verdict(False, f"you predicted {answer}, the monitor made {made}. {hint}")


def seen_late(run: RunTrace) -> float | None:
    """How long after the simulated job's end the check that saw it was due, in the tutorial's seconds (None
    if no check saw it). Read off the run's own result (which check saw the end) and its schedule, so a
    check that ran late on a busy machine does not count against the interval."""
    result = run.result
    if result is None or result.final_status not in ("Completed", "Failed"):
        return None
    due = run.request.schedule().offset_of_check(result.checks_performed)
    return run.scenario_seconds(due - run.request.job_duration_seconds)


def check_interval(answer: object, budget: float, runs: Sequence[RunTrace]) -> Verdict:
    """The longest polling interval that keeps every detection delay within ``budget`` (tutorial seconds),
    with the finished ``runs`` that tried it."""
    if not answered(answer) or not isinstance(answer, (int, float)):
        return Verdict(False, "set my_interval to a number of seconds, then run this cell again.")
    delays = [seen_late(run) for run in runs]
    if not delays or None in delays:
        return Verdict(False, f"with a {answer:g} s interval a run never saw the job end.")
    worst = max(delay for delay in delays if delay is not None)
    if worst > budget:
        return Verdict(
            False, f"with a {answer:g} s interval a run noticed the end {worst:.1f} s late: over the budget."
        )
    if answer < budget:
        return Verdict(
            False,
            f"every run kept within {budget:g} s (worst {worst:.1f} s), but a longer interval would too, "
            "for fewer checks. How late can a check come at most, measured in intervals?",
        )
    return Verdict(True, f"{answer:g} s: every run kept within the budget (worst {worst:.1f} s).")


def check_choice(answer: object, right: str, explanations: Mapping[str, str]) -> Verdict:
    """A multiple-choice answer (a letter); ``explanations`` says why each choice is right or wrong."""
    if not answered(answer) or answer not in explanations:
        return Verdict(False, f"set my_answer to one of {', '.join(map(repr, explanations))}.")
    return Verdict(answer == right, explanations[str(answer)])


def check_saturation(answer: object, saturated_at: int | None) -> Verdict:
    """The monitor count a learner read off the sweep as the first that fell behind."""
    if saturated_at is None:
        return Verdict(False, "this sweep never fell behind: the sizes were too small for this machine.")
    if not answered(answer):
        return Verdict(False, "set my_saturation to a number of monitors, then run this cell again.")
    if answer == saturated_at:
        return Verdict(True, f"{saturated_at} monitors is the first size whose achieved rate fell behind.")
    return Verdict(
        False,
        f"{answer} is not it. Look for the first row whose achieved checks/s is below 90 % of the offered.",
    )


def check_status_function(function: object, cases: Mapping[str, str]) -> Verdict:
    """A status function for the ``callable`` source, asked about each job of ``cases`` (job id -> the status
    the monitor should read from its answer, as :func:`~monitoring.core.sources.map_status` maps words)."""
    if not callable(function):
        return Verdict(False, "define your_status(job_id) in the cell above.")
    for job_id, wanted in cases.items():
        try:
            word = function(job_id)
        except Exception as error:  # the learner's own code: what it raised, in one line
            return Verdict(False, f"your_status({job_id!r}) raised {type(error).__name__}: {error}")
        read = map_status(word)
        if read != wanted:
            return Verdict(
                False,
                f"your_status({job_id!r}) returned {word!r}, which the monitor reads as {read}; "
                f"that job is {wanted}.",
            )
    return Verdict(True, f"your_status answers all {len(cases)} jobs with words the monitor reads rightly.")


def check_counts(answer: object, batch: BatchRequest) -> Verdict:
    """Predicted counts for a batch of simulated jobs (``{"completed": n, "failed": n, "timed_out": n}``)
    against the counts its schedule gives (:func:`~monitoring.core.predict.predicted_counts`)."""
    states = ("completed", "failed", "timed_out")
    if not answered(answer) or not isinstance(answer, Mapping) or not set(states) <= set(answer):
        return Verdict(
            False, "set my_counts to a dict of completed, failed and timed_out, then run this again."
        )
    will = predicted_counts(batch.jobs)
    wrong = [state for state in states if answer[state] != will[state]]
    if not wrong:
        return Verdict(True, ", ".join(f"{will[state]} {state.replace('_', ' ')}" for state in states) + ".")
    first = wrong[0]
    return Verdict(
        False,
        f"you have {answer[first]} {first.replace('_', ' ')}, the batch will end with {will[first]}. Step "
        "through each job's checks (every interval, and one last check at the deadline).",
    )
