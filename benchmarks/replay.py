"""How much CPU the orchestrator's replay costs: a real generation, replayed by the SDK's executor.

Replays ``benchmarks/replay-history.json``: one generation of a real monitor (10 checks at 0.5 s, every check
on its own timer), captured from an in-memory local scheduler with ``--capture``. It times the SDK's
``_OrchestrationExecutor.execute`` with ``time.thread_time`` (CPU of this thread only): the *last* episode
of the generation (the whole history replayed, the final event new), and the *mean* over every episode
boundary (what the SDK's worker pays on average), and the mean *resumed* episode: the same work items run
by this project's worker (``monitoring/runtime/warm_replay.py``: one full replay, then each episode runs only
the events after the ones its kept context saw). Each figure is the fastest of several batches, so other
processes' load hides little.

    python benchmarks/replay.py            # the committed history
    python benchmarks/replay.py --profile  # and where the time goes (cProfile, by own time)
    python benchmarks/replay.py --capture  # run a monitor and write the history file anew
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import json
import logging
import pstats
import time
from pathlib import Path

import grpc
from durabletask.internal import orchestrator_service_pb2 as pb
from durabletask.internal import orchestrator_service_pb2_grpc as stubs
from durabletask.serialization import JsonDataConverter
from durabletask.worker import _OrchestrationExecutor, _Registry

from monitoring.client.monitors import MonitorClient
from monitoring.core.models import MonitorRequest
from monitoring.core.orchestration import monitoring_job_orchestrator
from monitoring.runtime.connection import local_connection
from monitoring.runtime.warm_replay import WarmReplays
from monitoring.scheduler.server import LocalScheduler
from monitoring.worker import create_worker, start_worker, stop_worker

HISTORY = Path(__file__).resolve().parent / "replay-history.json"


def captured_history(checks: int, interval: float) -> tuple[str, list[pb.HistoryEvent]]:
    """Run a monitor that times out after ``checks`` checks in one generation; its history as protobufs."""
    with LocalScheduler(0) as scheduler:
        connection = local_connection(scheduler.address)
        start_worker(connection)
        try:
            with MonitorClient(connection) as monitors:
                request = MonitorRequest(
                    job_id="replay",
                    polling_interval_seconds=interval,
                    timeout_seconds=interval * (checks - 1),
                    job_duration_seconds=3600,
                    checks_per_generation=checks,
                )
                instance_id = monitors.start(request)
                final = monitors.follow(instance_id, timeout=120)
                assert final.result is not None and final.result.checks_performed == checks, final
        finally:
            stop_worker()
        with grpc.insecure_channel(scheduler.address.split("://", 1)[1]) as channel:
            stream = stubs.TaskHubSidecarServiceStub(channel).StreamInstanceHistory(
                pb.StreamInstanceHistoryRequest(instanceId=instance_id)
            )
            events = [event for chunk in stream for event in chunk.events]
    return instance_id, events


def decode(encoded: list[str]) -> list[pb.HistoryEvent]:
    """The history file's events (base64 of each serialized protobuf) as protobufs."""
    return [pb.HistoryEvent.FromString(base64.b64decode(text)) for text in encoded]


def episode_boundaries(events: list[pb.HistoryEvent]) -> list[int]:
    """Indexes of the ``OrchestratorStarted`` events: each begins an episode's new events."""
    return [index for index, event in enumerate(events) if event.HasField("orchestratorStarted")]


def replay_seconds(
    instance_id: str, events: list[pb.HistoryEvent], split: int, end: int, repeat: int
) -> float:
    """CPU seconds of the episode whose new events are ``events[split:end]`` (everything before it
    replayed): the fastest of batches of 20 (a busy machine only ever adds time)."""
    registry = _Registry()
    registry.add_orchestrator(monitoring_job_orchestrator)
    quiet = logging.getLogger("replay-bench")
    quiet.disabled = True
    converter = JsonDataConverter()
    old, new = events[:split], events[split:end]
    fastest = float("inf")
    for _ in range(max(1, repeat // 20)):
        started = time.thread_time()
        for _ in range(20):
            _OrchestrationExecutor(registry, quiet, converter).execute(instance_id, old, new)
        fastest = min(fastest, (time.thread_time() - started) / 20)
    return fastest


ARRIVALS = {
    "orchestratorStarted",
    "executionStarted",
    "timerFired",
    "taskCompleted",
    "taskFailed",
    "eventRaised",
}


def work_items(instance_id: str, events: list[pb.HistoryEvent]) -> list[pb.OrchestratorRequest]:
    """The generation's work items as a scheduler sends them: each episode's new events are its
    ``OrchestratorStarted`` and what arrived, up to the first event its own actions added."""
    items = []
    for start in episode_boundaries(events):
        end = start + 1
        while end < len(events) and events[end].WhichOneof("eventType") in ARRIVALS - {"orchestratorStarted"}:
            end += 1
        items.append(
            pb.OrchestratorRequest(
                instanceId=instance_id, pastEvents=events[:start], newEvents=events[start:end]
            )
        )
    return items


def resumed_seconds(items: list[pb.OrchestratorRequest], repeat: int) -> float:
    """CPU seconds of the whole generation run by a fresh :class:`WarmReplays`: the fastest of batches."""
    worker = create_worker(local_connection("http://127.0.0.1:1"))  # built, never started
    fastest = float("inf")
    for _ in range(max(1, repeat // 20)):
        started = time.thread_time()
        for _ in range(20):
            replays = WarmReplays(worker)
            for item in items:
                replays.execute(item)
        fastest = min(fastest, (time.thread_time() - started) / 20)
    return fastest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--capture", action="store_true", help="capture 10 checks at 0.5 s into the file")
    args = parser.parse_args()
    if args.capture:
        instance_id, events = captured_history(10, 0.5)
        encoded = [base64.b64encode(event.SerializeToString()).decode() for event in events]
        HISTORY.write_text(json.dumps({"instance_id": instance_id, "events": encoded}, indent=0) + "\n")
    saved = json.loads(HISTORY.read_text())
    instance_id = saved["instance_id"]
    events = decode(saved["events"])
    checks = sum(1 for event in events if event.HasField("taskCompleted"))
    starts = episode_boundaries(events)
    ends = [*starts[1:], len(events)]
    last = replay_seconds(instance_id, events, starts[-1], len(events), args.repeat)
    repeat = args.repeat // 4 or 1
    episodes = [replay_seconds(instance_id, events, s, e, repeat) for s, e in zip(starts, ends, strict=True)]
    mean = sum(episodes) / len(episodes)
    print(f"{checks} checks, {len(events)} events, {len(starts)} episodes")
    print(f"last episode (whole generation replayed): {last * 1e3:.3f} ms")
    print(f"mean episode: {mean * 1e3:.3f} ms; per check: {mean * len(starts) / checks * 1e3:.3f} ms")
    items = work_items(instance_id, events)
    resumed = resumed_seconds(items, repeat) / len(items)
    per_check = resumed * len(items) / checks
    print(f"resumed, mean episode: {resumed * 1e3:.3f} ms; per check: {per_check * 1e3:.3f} ms")
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        replay_seconds(instance_id, events, starts[-1], len(events), args.repeat)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
