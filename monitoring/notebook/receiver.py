"""A notification receiver on a loopback port (notebook 06, and the notification tests).

It records every POST a ``notify_url`` gets (:mod:`monitoring.core.notify`): the headers, the JSON body, and
what it answered. It can be told to answer 500 to the first ``failures`` POSTs (every one if negative), to
see the sender retry. Delivery is at least once, so a receiver keeps one notification per
``Idempotency-Key`` and drops repeats: :meth:`NotificationReceiver.once_each`.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from monitoring.core.notify import IDEMPOTENCY_HEADER

MAX_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Notification:
    """One POST as it arrived: its headers, its JSON body (None if it was not JSON), and the answer."""

    headers: dict[str, str]
    body: Any
    code: int

    @property
    def key(self) -> str | None:
        return self.headers.get(IDEMPOTENCY_HEADER)


class NotificationReceiver:
    """An HTTP server on ``127.0.0.1`` that takes POSTs at :attr:`url` and keeps them in :attr:`received`."""

    def __init__(self, *, failures: int = 0) -> None:
        self.failures = failures
        self.received: list[Notification] = []
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = self.headers.get("Content-Length", "")
                if self.headers.get("Host") not in receiver._hosts:
                    return self._answer(400)  # a foreign Host: not a sender on this machine
                if not length.isdigit() or int(length) > MAX_BODY_BYTES:
                    return self._answer(413)
                try:
                    body = json.loads(self.rfile.read(int(length)))
                except ValueError:  # not JSON, or not UTF-8
                    return self._record(None, 400)
                with receiver._changed:
                    failing = receiver.failures < 0 or len(receiver.received) < receiver.failures
                self._record(body, 500 if failing else 200)

            def _record(self, body: Any, code: int) -> None:
                with receiver._changed:
                    receiver.received.append(Notification(dict(self.headers), body, code))
                    receiver._changed.notify_all()
                self._answer(code)

            def _answer(self, code: int) -> None:
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # no access log in notebook cells
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_port
        self._hosts = {f"127.0.0.1:{self.port}", f"localhost:{self.port}"}
        threading.Thread(target=self.server.serve_forever, daemon=True, name="notification-receiver").start()

    def url_with(self, query: str = "") -> str:
        return f"http://127.0.0.1:{self.port}/notify{query}"

    @property
    def url(self) -> str:
        """The URL to give as ``notify_url``."""
        return self.url_with()

    def once_each(self) -> dict[str, Any]:
        """What a receiver keeps when it drops repeats by the idempotency key: the first body per key."""
        with self._changed:
            kept: dict[str, Any] = {}
            for notification in self.received:
                if notification.code == 200 and notification.key is not None:
                    kept.setdefault(notification.key, notification.body)
            return kept

    @property
    def repeats(self) -> int:
        """How many taken notifications were repeats of a key already taken (dropped by :meth:`once_each`)."""
        with self._changed:
            taken = sum(1 for notification in self.received if notification.code == 200)
        return taken - len(self.once_each())

    def notified(self) -> set[str]:
        """The instance ids a notification was taken from (a key is ``<instance id>:<generation>``)."""
        return {key.rpartition(":")[0] for key in self.once_each()}

    def wait_for(self, instance_ids: set[str], timeout: float = 120) -> dict[str, Any]:
        """Wait until a notification was taken from each of ``instance_ids``; returns :meth:`once_each`."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not instance_ids <= self.notified():
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = sorted(instance_ids - self.notified())
                    raise TimeoutError(
                        f"no notification from {len(missing)} instance(s) after {timeout:g} s: {missing[0]}"
                    )
                self._changed.wait(min(left, 1.0))
            return self.once_each()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> NotificationReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
