"""The SDK's schedules (``durabletask.scheduled``) through its own ``ScheduledTaskClient`` and a worker with
``configure_scheduled_tasks()``: create, describe, list, pause, resume, update and delete a schedule that
starts an orchestration every second. Schedules are entities that signal themselves with delayed signals,
so this runs the entity machinery end to end, on the local scheduler and on the SDK's in-memory servicer."""

from __future__ import annotations

import itertools
import math
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from durabletask import task
from durabletask.client import OrchestrationQuery
from durabletask.scheduled import (
    ScheduleCreationOptions,
    ScheduledTaskClient,
    ScheduleQuery,
    ScheduleStatus,
    ScheduleUpdateOptions,
)
from sdk_backends import (
    BACKENDS,
    FAULT_LIMIT,
    WAIT,
    Backend,
    Registry,
    backend_with_worker,
    eventually,
    new_client,
    new_worker,
    retried,
    wait_for,
)
from test_sub_orchestration_faults import SchedulerProcess

from monitoring.scheduler import process

app = Registry(scheduled_tasks=True)


@app.orchestrator
def nightly(ctx: task.OrchestrationContext, label: str) -> Any:
    return f"ran {label}"


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    with backend_with_worker(request.param, tmp_path_factory.mktemp(request.param), app) as running:
        yield running


def runs(backend: Backend, schedule_id: str) -> list[str]:
    query = OrchestrationQuery(instance_id_prefix=f"{schedule_id}-")
    return sorted(s.instance_id for s in backend.client.get_all_orchestration_states(query))


def test_a_schedule_runs_its_orchestration_until_paused_and_again_once_resumed(backend: Backend) -> None:
    schedules = ScheduledTaskClient(backend.client, operation_timeout=WAIT)
    schedule_id = f"every-second-{uuid.uuid4().hex[:8]}"
    options = ScheduleCreationOptions(
        schedule_id=schedule_id, orchestration_name="nightly", interval=timedelta(seconds=1),
        orchestration_input="tonight",
    )  # fmt: skip
    schedule = schedules.create_schedule(options)
    described = schedule.describe()
    assert described.status == ScheduleStatus.ACTIVE and described.interval == timedelta(seconds=1)
    eventually(lambda: runs(backend, schedule_id), lambda r: len(r) >= 2, "two runs")
    first = backend.client.wait_for_orchestration_completion(runs(backend, schedule_id)[0], timeout=WAIT)
    assert first is not None and first.get_output() == "ran tonight"

    schedule.pause()
    assert schedule.describe().status == ScheduleStatus.PAUSED
    paused_at = len(runs(backend, schedule_id))
    listed = schedules.list_schedules(ScheduleQuery(schedule_id_prefix=schedule_id))
    assert [s.schedule_id for s in listed] == [schedule_id] and listed[0].status == ScheduleStatus.PAUSED

    schedule.resume()
    assert schedule.describe().status == ScheduleStatus.ACTIVE
    eventually(lambda: runs(backend, schedule_id), lambda r: len(r) >= paused_at + 2, "runs after resume")

    schedule.update(ScheduleUpdateOptions(interval=timedelta(seconds=2)))
    assert schedule.describe().interval == timedelta(seconds=2)
    schedule.delete()
    assert schedules.get_schedule(schedule_id) is None
    assert schedules.list_schedules(ScheduleQuery(schedule_id_prefix=schedule_id)) == []


@pytest.mark.heavy
def test_a_schedule_killed_with_its_scheduler_goes_on_without_a_doubled_or_lost_tick() -> None:
    scheduler = SchedulerProcess()
    worker, client = new_worker(scheduler.address, app), new_client(scheduler.address)
    worker.start()
    try:
        schedule_id = f"survives-{uuid.uuid4().hex[:8]}"
        ScheduledTaskClient(client, operation_timeout=WAIT).create_schedule(
            ScheduleCreationOptions(schedule_id, "nightly", timedelta(seconds=1), orchestration_input="x")
        )
        prefix = f"{schedule_id}-"
        query = OrchestrationQuery(instance_id_prefix=prefix)

        def ticks() -> list[datetime]:
            found = client.get_all_orchestration_states(query)
            return sorted(
                datetime.fromisoformat(s.instance_id.removeprefix(f"{schedule_id}-")) for s in found
            )

        wait_for(ticks, lambda t: len(t) >= 3, "three ticks")
        down = time.monotonic()
        scheduler.kill_and_restart()
        # The outage lasts until the worker runs work again, which its reconnect backoff (randomised, up to
        # seconds) decides: a probe orchestration started now completes no sooner than that.
        probe = retried(lambda: client.schedule_new_orchestration("nightly", input="probe"))
        assert retried(lambda: client.wait_for_orchestration_completion(probe, timeout=FAULT_LIMIT))
        outage = time.monotonic() - down
        before = len(retried(ticks))
        seen = wait_for(ticks, lambda t: len(t) >= before + 3, "three more ticks")
        gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(seen)]
        assert all(gap >= 1 and gap == round(gap) for gap in gaps), f"ticks on the 1 s grid, once: {gaps}"
        # The SDK's schedule entity runs a late tick once and goes on from the next one due: only the ticks
        # that fell due while nothing could run them may be left out, in one gap.
        assert sum(gap > 1 for gap in gaps) <= 1, gaps
        assert max(gaps) <= 2 + math.ceil(outage), (gaps, outage)
    finally:
        worker.stop()
        client.close()
        process.stop_scheduler_process(scheduler.port)
