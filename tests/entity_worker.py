"""A worker process for the entity fault tests: the SDK's own worker serving a slow counter entity and an
orchestration that calls it, until killed. ``python tests/entity_worker.py ADDRESS``."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from durabletask import entities, task
from sdk_backends import Registry, new_worker

app = Registry()


@app.entity
def tally(ctx: entities.EntityContext, amount: Any) -> Any:
    time.sleep(0.005)  # slow enough that a kill finds operations in flight
    value = ctx.get_state(int, 0)
    if ctx.operation == "add":
        ctx.set_state(value + amount)
    return value


@app.orchestrator
def adds_to_tally(ctx: task.OrchestrationContext, spec: dict[str, Any]) -> Any:
    target = entities.EntityInstanceId("tally", spec["key"])
    for _ in range(spec["times"]):
        yield ctx.call_entity(target, "add", 1)
    return spec["times"]


if __name__ == "__main__":
    worker = new_worker(sys.argv[1], app)
    worker.start()
    print("entity worker started", flush=True)
    threading.Event().wait()
