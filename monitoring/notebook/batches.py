"""A batch monitor followed from its polled custom status (notebook 06): its counts by state over time.

The batch publishes one custom status for the set (:func:`monitoring.core.batch.batch_status`); each change
observed becomes a :class:`BatchSample`, which the stacked plot draws. The status is read tolerantly: a shape
without counts (another orchestrator's, or none yet) is no sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from monitoring.client.snapshots import MonitorSnapshot
from monitoring.core.batch import FINAL_STATE, BatchRequest, child_instance_id, read_counts


@dataclass(frozen=True)
class BatchSample:
    """The batch's counts by state, as observed ``seconds`` (the scenario's) after it was scheduled."""

    seconds: float
    counts: dict[str, int]


@dataclass
class BatchRun:
    """Everything observed about one batch: its request, its samples, and its last snapshot."""

    instance_id: str
    batch: BatchRequest
    time_scale: float = 1.0
    scheduled_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    samples: list[BatchSample] = field(default_factory=list)
    latest: MonitorSnapshot | None = None
    marks: list[tuple[float, str]] = field(default_factory=list)  # (seconds, what happened then)

    def seconds_since_scheduled(self, moment: datetime | None = None) -> float:
        """Real time since the batch was scheduled, in the scenario's seconds."""
        moment = moment or datetime.now(timezone.utc)
        return max((moment - self.scheduled_at).total_seconds() / self.time_scale, 0.0)

    def mark(self, what: str) -> None:
        """Note something done to the batch now (a worker killed), for the plot."""
        self.marks.append((self.seconds_since_scheduled(), what))

    def record(self, snapshot: MonitorSnapshot) -> None:
        self.latest = snapshot
        counts = read_counts(snapshot.custom_status_json)
        if counts is not None and (not self.samples or self.samples[-1].counts != counts):
            self.samples.append(BatchSample(self.seconds_since_scheduled(snapshot.observed_at), counts))

    @property
    def done(self) -> bool:
        return self.latest is not None and self.latest.is_terminal

    @property
    def output(self) -> dict[str, Any]:
        """The batch's output once it ended (per job the child's result, counts by final status); else {}."""
        output = self.latest.output_json if self.latest is not None and self.done else None
        return output if isinstance(output, dict) else {}

    @property
    def results(self) -> list[tuple[str, int]]:
        """Per job, in order: (final status, checks performed), from the output."""
        jobs = self.output.get("jobs")
        return [
            (str(job.get("final_status")), int(job.get("checks_performed") or 0))
            for job in (jobs if isinstance(jobs, list) else [])
            if isinstance(job, dict)
        ]

    @property
    def ended(self) -> int:
        """How many jobs had ended at the last change seen."""
        last = self.samples[-1].counts if self.samples else {}
        return sum(last.get(state, 0) for state in FINAL_STATE.values())

    def most_running(self) -> int:
        """The most children seen running at once."""
        return max((sample.counts["running"] for sample in self.samples), default=0)

    def child_ids(self) -> list[str]:
        return [child_instance_id(self.instance_id, index) for index in range(len(self.batch.jobs))]
