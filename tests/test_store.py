"""The scheduler's SQLite writer groups a transaction's row writes by kind: it must end in the same state as
applying every op one by one, in order, for any sequence the hub can produce (keys are never reused)."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

from durabletask.internal import helpers

from monitoring.scheduler.schema import open_state_file
from monitoring.scheduler.store import _STATEMENTS, Op, SqliteStore


def hub_like_ops(rng: random.Random, count: int) -> list[Op]:
    """Random ops with the hub's invariants: ids only grow, a delete names a row inserted before it."""
    ops: list[Op] = []
    next_id = 1
    live_events: list[int] = []
    live_tasks: list[int] = []
    seq = {"i1": 0, "i2": 0}
    for _ in range(count):
        instance = rng.choice(("i1", "i2"))
        kind = rng.choice(
            ("instance", "history", "event", "task", "event_del", "task_del", "history_clear", "events_clear",
             "tasks_clear", "purge", "meta")
        )  # fmt: skip
        if kind == "instance":
            status, custom = rng.randint(0, 6), f"s{next_id}"
            columns = (
                *("orch", None, status, "in", None, custom, None, None),
                *(1, 1.0, 2.0, None, None, None, None),
            )
            ops.append(("instance", instance, *columns))
        elif kind == "history":
            ops.append(("history", instance, seq[instance], f"e{next_id}".encode()))
            seq[instance] += 1
        elif kind == "event":
            event = helpers.new_event_raised_event(f"n{next_id}", None)
            ops.append(("event", next_id, instance, 1, 0.0, event))
            live_events.append(next_id)
        elif kind == "task":
            ops.append(("task", next_id, instance, 1, 1, "check", None, None))
            live_tasks.append(next_id)
        elif kind == "event_del" and live_events:
            ops.append(("event_del", live_events.pop(rng.randrange(len(live_events)))))
        elif kind == "task_del" and live_tasks:
            ops.append(("task_del", live_tasks.pop(rng.randrange(len(live_tasks)))))
        elif kind in ("history_clear", "purge"):
            ops.append((kind, instance))
            seq[instance] = 0
        elif kind in ("events_clear", "tasks_clear"):
            ops.append((kind, instance))
        elif kind == "meta":
            ops.append(("meta", "boot", str(next_id)))
        next_id += 1
    return ops


def one_by_one(path: Path, ops: list[Op]) -> None:
    """The reference: every op in order, the way the hub described them."""
    open_state_file(path, lambda: sqlite3.connect(path, isolation_level=None))
    with sqlite3.connect(path) as connection:
        for kind, *row in ops:
            if kind == "purge":
                for table in ("instances", "history", "events", "tasks"):
                    connection.execute(f"DELETE FROM {table} WHERE instance_id = ?", row)
                continue
            if kind == "event":
                row[-1] = row[-1].SerializeToString()
            connection.execute(_STATEMENTS[kind], row)


def dump(path: Path) -> dict[str, list[tuple[object, ...]]]:
    with sqlite3.connect(path) as connection:
        return {
            table: sorted(connection.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
            for table in ("meta", "instances", "history", "events", "tasks")
        }


def test_grouped_writes_end_in_the_same_state_as_one_op_at_a_time(tmp_path: Path) -> None:
    for seed in range(40):
        ops = hub_like_ops(random.Random(seed), 120)
        grouped, reference = tmp_path / f"grouped-{seed}.sqlite3", tmp_path / f"reference-{seed}.sqlite3"
        store = SqliteStore(grouped)  # the writer under test: one transaction, grouped
        store.wait(store.submit(ops))
        store.close()
        one_by_one(reference, ops)
        assert dump(grouped) == dump(reference), seed
