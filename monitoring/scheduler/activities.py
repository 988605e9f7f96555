"""Activity tasks: what orchestrators scheduled and no worker has completed yet, and the queue of those
waiting for a worker."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from monitoring.scheduler.records import Task


class Activities:
    """The activity tasks (the caller holds the hub's lock)."""

    def __init__(self) -> None:
        self.by_id: dict[int, Task] = {}
        self._by_instance: dict[str, set[int]] = {}
        self._queue: deque[int] = deque()

    def __len__(self) -> int:
        return len(self.by_id)

    def get(self, task_id: int) -> Task | None:
        return self.by_id.get(task_id)

    def add(self, task: Task) -> None:
        self.by_id[task.id] = task
        self._by_instance.setdefault(task.instance_id, set()).add(task.id)
        self._queue.append(task.id)

    def requeue(self, task: Task) -> None:
        """A task whose lease ended without an answer: first in line again."""
        self._queue.appendleft(task.id)

    def remove(self, task: Task) -> None:
        self.by_id.pop(task.id, None)
        held = self._by_instance.get(task.instance_id)
        if held is not None:
            held.discard(task.id)
            if not held:
                del self._by_instance[task.instance_id]

    def of_instance(self, instance_id: str) -> list[Task]:
        return [self.by_id[task_id] for task_id in sorted(self._by_instance.get(instance_id, ()))]

    def next_ready(self, accepts: Callable[[Task], bool]) -> Task | None:
        """The first queued task nobody holds that ``accepts`` takes; the others keep their turn."""
        for _ in range(len(self._queue)):
            task = self.by_id.get(self._queue.popleft())
            if task is None or task.lease is not None:
                continue
            if not accepts(task):
                self._queue.append(task.id)
                continue
            return task
        return None
