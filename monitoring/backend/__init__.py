"""Where durable state lives: :mod:`~monitoring.backend.connection` turns ``ENDPOINT``/``TASKHUB`` into a
client for the local scheduler, the DTS emulator or Azure, and :mod:`~monitoring.backend.reconnect` rides out
a scheduler that is down; the worker's :mod:`~monitoring.backend.work_loop` receives work items on one thread
and :mod:`~monitoring.backend.warm_replay` resumes orchestrator episodes instead of replaying them. The local
scheduler: its gRPC servicer (:mod:`~monitoring.backend.servicer`) over
the hub (:mod:`~monitoring.backend.hub` client operations, :mod:`~monitoring.backend.dispatch` leased work
items and fenced completions, :mod:`~monitoring.backend.actions` what a turn asks for), its SQLite store
(:mod:`~monitoring.backend.store`) and timers (:mod:`~monitoring.backend.timers`), its loopback-only gRPC
server (:mod:`~monitoring.backend.scheduler`) and its processes (:mod:`~monitoring.backend.process`)."""
