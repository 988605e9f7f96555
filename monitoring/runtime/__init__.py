"""How this project's processes reach a backend and run work on it.

:mod:`~monitoring.runtime.connection` turns ``ENDPOINT``/``TASKHUB`` into a client for the local scheduler,
the DTS emulator or Azure (starting the local scheduler when it is named and not running);
:mod:`~monitoring.runtime.reconnect` rides out a backend that is down; the worker's
:mod:`~monitoring.runtime.work_loop` receives work items on one thread and
:mod:`~monitoring.runtime.warm_replay` resumes orchestrator episodes instead of replaying them (the fast
path); :mod:`~monitoring.runtime.worker_choice` decides whether the fast path or the SDK's own worker runs.

Importing it checks the installed SDK first (:func:`monitoring.sdk_range.require`).
"""

from monitoring import sdk_range

sdk_range.require()
