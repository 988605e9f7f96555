"""The local scheduler: a Durable Task backend of its own, for one machine, that survives crashes.

From the bottom up: :mod:`~monitoring.scheduler.clock` (the time the scheduler reads, passed in),
:mod:`~monitoring.scheduler.records` (instances, histories, tasks, entities, leases as data),
:mod:`~monitoring.scheduler.schema` and :mod:`~monitoring.scheduler.store` (the SQLite state file, its
version and migrations, the writer that rides out a full disk), :mod:`~monitoring.scheduler.timers` (durable
timers due on that clock). The task hub (:mod:`~monitoring.scheduler.hub`) is composed of parts that each own
one kind of state: :mod:`~monitoring.scheduler.instances`, :mod:`~monitoring.scheduler.activities`,
:mod:`~monitoring.scheduler.leases`, :mod:`~monitoring.scheduler.entities` (operation queues, critical
sections), :mod:`~monitoring.scheduler.histories` (which histories live in the state file only). Above it,
:mod:`~monitoring.scheduler.entity_steps` carries out entity operations and batches,
:mod:`~monitoring.scheduler.dispatch` hands out leased work items and takes fenced completions,
:mod:`~monitoring.scheduler.turns` applies what a turn asks for, :mod:`~monitoring.scheduler.control` and
:mod:`~monitoring.scheduler.entity_control` serve the client's operations and
:mod:`~monitoring.scheduler.queries` their filters and pages. :mod:`~monitoring.scheduler.servicer` speaks
the gRPC protocol over all of that (:mod:`~monitoring.scheduler.unserved` names what it refuses),
:mod:`~monitoring.scheduler.server` binds it to loopback and :mod:`~monitoring.scheduler.process` runs it as a
process of its own."""
