"""What receiving a work item costs the worker before the item's own work: the SDK's loop and the lean one.

    python benchmarks/receive_loop.py                  # 3,000 items at 600/s, three rounds each, interleaved
    python benchmarks/receive_loop.py --items 6000 --rate 0

A thread stands in for the gRPC stream (it produces ``--items`` items at ``--rate`` per second, 0 = flat
out) and every item's handler does nothing, so what is measured is the hand-off alone, in CPU microseconds
of this process per item:

* ``sdk``: the SDK 1.12 worker's path: the reading thread puts the item on a queue, the asyncio loop reads
  it in an executor (``asyncio.wait_for(loop.run_in_executor(None, queue.get))``) and submits it to the
  SDK's own ``_AsyncWorkerManager``, which queues it, takes it off in a consumer task and runs it in its
  thread pool through ``run_in_executor``;
* ``lean``: :class:`monitoring.runtime.work_loop.LeanWorker`'s path: the reading thread hands the item to a
  ``_Gate``, which starts it in the thread pool.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from durabletask.worker import ConcurrencyOptions, _AsyncWorkerManager

from monitoring.runtime.work_loop import _Gate

DONE = object()


class Counter:
    """Counts handled items and says when all of them were."""

    def __init__(self, total: int) -> None:
        self.total, self.count = total, 0
        self.lock = threading.Lock()
        self.all_done = threading.Event()

    def handle(self, *args: object) -> None:
        with self.lock:
            self.count += 1
            if self.count == self.total:
                self.all_done.set()


def produce(items: int, rate: float, hand_over: Callable[[int], None]) -> None:
    started = time.monotonic()
    for number in range(items):
        if rate:
            wait = started + number / rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        hand_over(number)


def sdk(items: int, rate: float) -> float:
    counter = Counter(items)
    manager = _AsyncWorkerManager(ConcurrencyOptions(), logging.getLogger("receive_loop"))

    async def loop_body() -> float:
        consumers = asyncio.create_task(manager.run())
        loop = asyncio.get_running_loop()
        stream: queue.Queue[object] = queue.Queue()
        threading.Thread(target=produce, args=(items, rate, stream.put), daemon=True).start()
        cpu = time.process_time()
        for _ in range(items):
            item = await asyncio.wait_for(loop.run_in_executor(None, stream.get), timeout=None)
            manager.submit_orchestration(counter.handle, counter.handle, item)
        await loop.run_in_executor(None, counter.all_done.wait)
        cpu = time.process_time() - cpu
        manager.shutdown()
        await consumers
        return cpu

    return asyncio.run(loop_body())


def lean(items: int, rate: float) -> float:
    counter, defaults = Counter(items), ConcurrencyOptions()
    with ThreadPoolExecutor(defaults.maximum_thread_pool_workers) as pool:
        gate = _Gate(pool, defaults.maximum_concurrent_orchestration_work_items, logging.getLogger())

        def hand_over(number: int) -> None:
            gate.submit((counter.handle, counter.handle, (number,), lambda: None))

        cpu = time.process_time()
        reader = threading.Thread(target=produce, args=(items, rate, hand_over))
        reader.start()
        counter.all_done.wait()
        reader.join()
        return time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=600.0, help="items per second, 0 = flat out (600)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for round_number in range(1, args.rounds + 1):
        for name, run in (("sdk", sdk), ("lean", lean)):
            cpu = run(args.items, args.rate)
            print(f"round {round_number} {name:4}: {cpu / args.items * 1e6:6.0f} us of CPU per work item")


if __name__ == "__main__":
    main()
