"""A monitor recorded by an earlier version of this code still replays: the orchestrator stays deterministic.

``benchmarks/replay-history.json`` is one real generation of a monitor (10 checks, every check on its own
timer), captured from the local scheduler. The current orchestrator must make the same decisions at every
episode of it; a change that would break the monitors in flight when a worker is upgraded (a new timer, a
reordered call) fails here as the SDK's non-determinism error.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

from durabletask.internal import orchestrator_service_pb2 as pb
from durabletask.serialization import JsonDataConverter
from durabletask.worker import _OrchestrationExecutor, _Registry

from monitoring.core.orchestration import monitoring_job_orchestrator

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "replay.py"


def load_replay_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("replay_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_episode_of_a_recorded_monitor_replays_without_a_failure() -> None:
    replay = load_replay_module()
    saved = json.loads(replay.HISTORY.read_text())
    events = replay.decode(saved["events"])
    registry = _Registry()
    registry.add_orchestrator(monitoring_job_orchestrator)
    boundaries = replay.episode_boundaries(events)
    assert len(boundaries) >= 10, "one episode per timer and per check result at least"
    for split in boundaries:
        results = _OrchestrationExecutor(registry, logging.getLogger(__name__), JsonDataConverter()).execute(
            saved["instance_id"], events[:split], events[split:]
        )
        failed = [
            action.completeOrchestration.failureDetails.errorMessage
            for action in results.actions
            if action.HasField("completeOrchestration")
            and action.completeOrchestration.orchestrationStatus != pb.ORCHESTRATION_STATUS_COMPLETED
        ]
        assert failed == [], f"episode at event {split}: {failed}"
    (final,) = [action for action in results.actions if action.HasField("completeOrchestration")]
    output = json.loads(final.completeOrchestration.result.value)
    assert (output["final_status"], output["checks_performed"]) == ("Timeout", 10)
