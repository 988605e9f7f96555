"""The bench's figures as dataclasses. ``to_json`` gives the ``--json`` shape (its keys are stable:
``stacks.<name>.on_time[].lateness_p99_seconds``, ``cpu_ms_per_check``, ``saturated.checks_per_second``,
``long.cpu_growth``, ``ratios``); ``from_json`` reads it back (a stack's subprocess prints it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from monitoring.bench.stacks import BenchSettings

NAN = float("nan")


@dataclass(frozen=True)
class BatchResult:
    """One batch of monitors: the load offered, the checks made, how late they were, what they cost."""

    monitors: int
    interval_seconds: float
    started_over_seconds: float
    checks_per_monitor: int
    checks_expected: int
    checks_done: int
    offered_checks_per_second: float
    # Checks after each monitor's first, per second from the first check to the last (less the time the
    # starts took, when they were spread): N / interval when the stack keeps up, less when it does not.
    checks_per_second: float
    worker_processes_checking: int
    lateness_p50_seconds: float
    lateness_p99_seconds: float
    lateness_max_seconds: float
    schedule_seconds: float
    worker_cpu_seconds: float
    scheduler_cpu_seconds: float | None  # None: the scheduler runs inside the worker's process
    cpu_ms_per_check: float
    memory_kb_per_waiting_monitor: float

    @property
    def keeps_up(self) -> bool:
        """Whether the achieved checks/s were at least 90 % of the offered load."""
        return self.checks_per_second >= 0.9 * self.offered_checks_per_second

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BatchResult:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass(frozen=True)
class LongResult(BatchResult):
    """The long batch, plus worker CPU per check early and late: flat only if the history is bounded."""

    early_check: int = 0
    late_check: int = 0
    cpu_ms_per_check_early: float = NAN
    cpu_ms_per_check_late: float = NAN
    cpu_growth: float = NAN


@dataclass(frozen=True)
class StackResult:
    """Everything one stack measured, in its own process."""

    stack: str
    settings: BenchSettings
    on_time: list[BatchResult]
    saturated: BatchResult
    long: LongResult
    peak_worker_mb: float
    peak_scheduler_mb: float | None

    @property
    def main_on_time(self) -> BatchResult:
        """The on-time run of ``settings.monitors`` monitors (run first, in a fresh process, so its memory
        per waiting monitor is not hidden by memory earlier runs left behind); else the last run."""
        wanted = self.settings.monitors
        return next((run for run in self.on_time if run.monitors == wanted), self.on_time[-1])

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StackResult:
        settings = dict(data["settings"])
        settings["sweep"] = tuple(settings.get("sweep", ()))
        return cls(
            stack=data["stack"],
            settings=BenchSettings(**settings),
            on_time=[BatchResult.from_json(run) for run in data["on_time"]],
            saturated=BatchResult.from_json(data["saturated"]),
            long=LongResult.from_json(data["long"]),  # type: ignore[arg-type]
            peak_worker_mb=data["peak_worker_mb"],
            peak_scheduler_mb=data["peak_scheduler_mb"],
        )


@dataclass(frozen=True)
class BenchRun:
    """A whole run: when, on what machine, each stack's results, and the ratios between stacks."""

    date: str
    machine: str
    stacks: dict[str, StackResult]
    ratios: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        return {
            "date": self.date,
            "machine": self.machine,
            "stacks": {name: result.to_json() for name, result in self.stacks.items()},
            "ratios": self.ratios,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BenchRun:
        stacks = {name: StackResult.from_json(result) for name, result in data["stacks"].items()}
        return cls(data["date"], data["machine"], stacks, dict(data["ratios"]))
