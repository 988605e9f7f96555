"""Which histories the local scheduler keeps in memory.

With a state file, an instance's history lives in the file only once the instance has ended a while ago
(``keep_ended_history_seconds``) or has waited ``keep_waiting_history_seconds`` with nothing to run: a
monitor waiting ten minutes for its next check weighs its instance record, not its events. A history let go
is read back (:meth:`Histories.warm`) before anyone reads or extends it: a dispatch, a history query, a
raised event's check, a rewind, a termination. After a restart every history starts in the file.
"""

from __future__ import annotations

from collections.abc import Iterable

from monitoring.scheduler.records import History, HubOptions, Instance
from monitoring.scheduler.store import Store


class Histories:
    """Lets go of histories the file holds, and reads them back (the caller holds the hub's lock)."""

    def __init__(self, store: Store, options: HubOptions) -> None:
        self.store = store
        self.options = options
        self._mark: tuple[float, int] | None = None  # (time, steps submitted to the store by then)

    def warm(self, instance: Instance) -> History:
        """``instance``'s history, read back from the file first if it lives there only."""
        if instance.history_in_store:
            history = History()
            for blob in self.store.read_history_blobs(instance.instance_id):
                history.append(blob)
            instance.history, instance.history_in_store = history, False
        return instance.history

    def _saved_until(self, now: float) -> float:
        """A time before which every change is surely committed to the file: now, if the store has
        committed all it was given; else the previous round's time, once the store passed what it had been
        given by then."""
        submitted, committed = self.store.submitted, self.store.committed
        mark, self._mark = self._mark, (now, submitted)
        if committed >= submitted:
            return now
        return mark[0] if mark is not None and committed >= mark[1] else float("-inf")

    def cutoffs(self, now: float) -> tuple[float, float] | None:
        """This round's times: histories of instances that ended before the first, or last ran before the
        second, may go; None if none may now (no state file, or writes fail)."""
        if not self.store.durable or self.store.trouble is not None:
            return None
        saved = self._saved_until(now)
        options = self.options
        return min(saved, now - options.keep_ended_history_seconds), min(
            saved, now - options.keep_waiting_history_seconds
        )

    def release(self, instances: Iterable[Instance], ended_before: float, idle_before: float) -> int:
        """Let go of the histories of ``instances`` that ended or last ran before the :meth:`cutoffs`;
        returns how many."""
        released = 0
        for instance in instances:
            if instance.history_in_store:
                continue
            if instance.terminal:
                if (instance.completed or instance.updated) <= ended_before:
                    instance.history, instance.history_in_store = History(), True
                    released += 1
            elif instance.lease is None and not instance.inbox and instance.updated <= idle_before:
                # The count stays: whether it has started, and how many more events it may take.
                instance.history, instance.history_in_store = History.in_file(instance.history.count), True
                released += 1
        return released
