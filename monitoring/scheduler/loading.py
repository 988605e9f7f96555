"""Opening a task hub: its parts rebuilt from the store. Every lease is void after a restart: what was out
with a worker is queued again, and held events (timers, scheduled starts, delayed signals) wait again."""

from __future__ import annotations

import itertools
import json
import logging

from durabletask.internal import orchestrator_service_pb2 as pb

from monitoring.scheduler import entity_steps
from monitoring.scheduler.clock import SYSTEM_CLOCK, Clock
from monitoring.scheduler.hub import TaskHub
from monitoring.scheduler.records import History, HubOptions, Instance, LockRequest, Task
from monitoring.scheduler.store import Loaded, Store

logger = logging.getLogger("monitoring.scheduler.hub")


def open_hub(
    store: Store | None = None, options: HubOptions | None = None, clock: Clock = SYSTEM_CLOCK
) -> TaskHub:
    """A task hub holding what ``store`` keeps (nothing, for the in-memory store); not started yet."""
    hub = TaskHub(store, options, clock)
    with hub.lock:
        loaded = hub.store.load()
        boot = int(loaded.meta.get("boot", "0")) + 1
        if hub.store.durable:
            hub.leases.epoch = f"b{boot}"  # tokens stay unique across restarts on the same state
            hub.store.wait(hub.store.submit([("meta", "boot", str(boot))]))
        top = max(_instances(hub, loaded), _tasks(hub, loaded), _entities(hub, loaded))
        hub.rows = itertools.count(top + 1)
        hub.on_end.append(entity_steps.on_instance_end)
        for instance in hub.instances:
            hub.enqueue(instance)
        for entity in hub.entities:
            hub.entities.enqueue(entity)
    if loaded.instances:
        active = sum(not i.terminal for i in hub.instances)
        logger.info(
            "Loaded %d instance(s) (%d active, %d activity task(s) queued) from %s",
            len(hub.instances),
            active,
            len(hub.activities),
            hub.store.path,
        )
    return hub


def _instances(hub: TaskHub, loaded: Loaded) -> int:
    """Instances, their histories and their waiting events; returns the highest event row id."""
    now = hub.clock.time()
    for row in loaded.instances:
        instance = Instance.from_row(row)
        # Every history starts in the file (histories.py); an active one's length is known.
        instance.history = History.in_file(
            0 if instance.terminal else loaded.history_counts.get(instance.instance_id, 0)
        )
        instance.history_in_store = True
        hub.instances.add(instance)
    top = 0
    for row_id, instance_id, execution, visible_at, blob in loaded.events:
        top = max(top, row_id)
        instance = hub.instances.get(instance_id)
        if instance is None or instance.terminal or instance.execution != execution:
            continue
        if visible_at > now:
            hub.hold(instance, row_id, blob, visible_at)  # kept as read: parsed when it fires
        else:
            instance.receive(row_id, pb.HistoryEvent.FromString(blob))
    return top


def _tasks(hub: TaskHub, loaded: Loaded) -> int:
    """Activity tasks of active executions, queued again; returns the highest task row id."""
    top = 0
    for row in loaded.tasks:
        task = Task(*row)
        top = max(top, task.id)
        instance = hub.instances.get(task.instance_id)
        if instance is not None and not instance.terminal and instance.execution == task.execution:
            hub.activities.add(task)
    return top


def _entities(hub: TaskHub, loaded: Loaded) -> int:
    """Entities, their waiting operations (delayed signals held again) and the waiting lock requests;
    returns the highest row id among them."""
    now = hub.clock.time()
    for entity_id, state, modified, locked_by, lock_owner in loaded.entities:
        entity, _ = hub.entities.get_or_add(entity_id)
        entity.state, entity.modified, entity.locked_by, entity.lock_owner = (
            state,
            modified,
            locked_by,
            lock_owner,
        )
    top = 0
    for row_id, entity_id, visible_at, event in loaded.entity_ops:
        top = max(top, row_id)
        entity, _ = hub.entities.get_or_add(entity_id)
        if visible_at > now:
            entity_steps.hold(hub, entity, row_id, event, visible_at)
        else:
            entity.queue.append((row_id, event))
    for row_id, section, owner, entities in loaded.locks:
        top = max(top, row_id)
        hub.entities.waiting_locks.append(LockRequest(row_id, section, owner, tuple(json.loads(entities))))
    return top
