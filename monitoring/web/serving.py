"""Serve an ASGI app (the HTTP API, the dashboard) with uvicorn in a background thread.

The socket is bound here, before uvicorn starts, so a taken port is a clear :class:`PortInUseError` and
port 0 picks a free port whose number :attr:`BackgroundServer.port` then tells. ``python -m monitoring
serve`` runs two of these; tests run them on free loopback ports.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import uvicorn

from monitoring.web.sockets import PortInUseError, bind_socket, is_loopback

__all__ = ["BackgroundServer", "PortInUseError", "bind_socket", "is_loopback"]

START_TIMEOUT_SECONDS = 20.0


class BackgroundServer:
    """One uvicorn server on a pre-bound socket, in a thread of its own."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0):
        self.host = host
        self._socket = bind_socket(host, port)
        self.port: int = self._socket.getsockname()[1]
        # uvicorn's own logging is process-wide (one access log for every server), so it is left off
        # and the logging configuration untouched: only its errors show. An app logs its requests
        # itself if it wants to (see monitoring.web.api.create_app(log_requests=True)).
        config = uvicorn.Config(app, lifespan="off", timeout_graceful_shutdown=2, log_config=None)
        config.access_log = False
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name=f"http-{self.port}", daemon=True
        )

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._socket.close()
                raise RuntimeError(f"the HTTP server on {self.url} did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._socket.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
