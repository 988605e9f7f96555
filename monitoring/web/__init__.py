"""The HTTP edge: the Durable Functions sample's API (:mod:`~monitoring.web.api`), the dashboard and its
static files, and serving them on loopback in background threads (:mod:`~monitoring.web.serving`)."""
