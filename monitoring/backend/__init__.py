"""Where durable state lives: :mod:`~monitoring.backend.connection` turns ``ENDPOINT``/``TASKHUB`` into a
client for the local scheduler, the DTS emulator or Azure; the local scheduler is its servicer
(:mod:`~monitoring.backend.servicer`), its loopback-only gRPC server (:mod:`~monitoring.backend.scheduler`)
and its processes (:mod:`~monitoring.backend.process`)."""
