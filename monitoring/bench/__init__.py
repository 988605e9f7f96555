"""How many monitors one worker keeps on schedule: ``python -m monitoring.bench``.

Each stack runs in a subprocess of its own (``python -m monitoring.bench stack NAME ...``, which prints one
JSON object), so its CPU seconds and peak memory are its own. The stacks:

* ``project``: this project's default layout, as the tutorial runs it: the local scheduler in its own
  process, the worker in the bench process (:data:`PROJECT_WORK_ITEMS`, :data:`PROJECT_THREADS`), the real
  orchestrator;
* ``project-in-memory``: the same with the scheduler keeping its task hub in memory only (what the state
  file costs);
* ``project-sdk-loop``: the project on the SDK's own worker (its asyncio loop, every history replayed
  from the first event) instead of :class:`~monitoring.runtime.work_loop.LeanWorker` (what that saves);
* ``scale-out``: the same scheduler with ``scale_out_workers`` worker processes on its task hub
  (``python -m monitoring.bench worker``), the bench process only starting monitors: how the Durable Task
  Scheduler scales too;
* ``protocol-floor``: the same scheduler process and worker running a loop of a timer and an activity per
  check and nothing else: what the SDK's executors, gRPC and the scheduler cost before the monitor's own
  work;
* ``reference``: the official sample's loop (check, publish, return if done, else a timer at *now +
  interval*), an SDK-default ``TaskHubGrpcWorker``, and the in-memory backend in the same process (the
  project's loopback-only :class:`~monitoring.scheduler.server.LocalScheduler` around it);
* ``floor``: a plain asyncio loop making the same checks on the same schedule, with no durability.

Every check asks the ``bench`` job source (:class:`RecordingJobSource`), which answers like the simulated
job and notes when the check was due, when it ran and the CPU time of its process then (in memory, or in a
spool file for worker processes). Lateness is *actual minus due*. Three phases per stack:

* **on time**: ``monitors`` monitors of ``checks`` checks every ``interval`` s, started evenly over one
  interval (a steady load, as monitors started at different times give): lateness p50/p99/max of every
  check, the client's time to start them, CPU seconds of workers and scheduler, memory per waiting monitor;
* **saturated**: ``saturated_monitors`` monitors, started at once, checking as fast as they can: checks per
  second;
* **long**: ``long_monitors`` monitors of ``long_checks`` checks at a tiny interval: worker CPU per check
  around the 10th check and around the last, which stays flat only if the history is bounded.
"""

from monitoring.bench.phases import *  # noqa: F403
from monitoring.bench.records import *  # noqa: F403
from monitoring.bench.report import *  # noqa: F403
from monitoring.bench.results import *  # noqa: F403
from monitoring.bench.stacks import *  # noqa: F403
from monitoring.bench.waiting import *  # noqa: F403
