"""The durable monitoring pattern on Microsoft's Durable Task SDK for Python.

The folder tree is the architecture; imports flow one way, from the top of this list to the bottom:

* :mod:`monitoring.cli` (``python -m monitoring``): thin commands over the layers below.
* :mod:`monitoring.web` (HTTP API, dashboard) and :mod:`monitoring.notebook` (tutorial helpers, widgets,
  plots).
* :mod:`monitoring.client` (start, follow, control and read monitors) and :mod:`monitoring.worker` (the one
  place a worker is built).
* :mod:`monitoring.runtime`: how a process reaches the backend ``ENDPOINT``/``TASKHUB`` name and runs work
  on it.
* :mod:`monitoring.scheduler`: the local scheduler, where durable state lives on one machine.
* :mod:`monitoring.core`: the pattern itself, pure: schedule, models, job sources, the orchestrator.
* :mod:`monitoring.settings`: the environment variables, read in one place.

The benchmark sits beside the product in a subpackage of its own: it uses these layers; they never name it.
"""

from monitoring import settings

# Before anything imports grpc: its I/O polled by the threads that wait for it (see the function).
settings.prefer_grpc_polling()
