"""A small, real job service on loopback: it runs jobs in threads and answers "how is it going?" over HTTP.

Notebook 05 monitors it with the ``http`` job source, as one would monitor a build server or a batch API.
Each job does real work (it counts primes below a limit, in slices) and publishes its progress:

* ``POST /jobs`` with ``{"work": N, "seconds": S, "fail_at": 0.6}`` starts a job that counts the primes
  below ``N``, paced to take at least ``S`` seconds (so a person can watch it); ``fail_at`` makes it fail
  when that share of the work is done. It answers ``201 {"id": ..., "url": ...}``;
* ``GET /jobs/{id}`` answers ``{"id", "status", "progress", "primes"}``; ``status`` is ``running``,
  ``succeeded`` or ``failed`` (the words a real service uses; the monitor maps them);
* ``GET /jobs/{id}`` of an unknown job is 404.

The service binds 127.0.0.1 only and refuses a ``Host`` header that is not its own address; given a
``token``, it answers only requests with ``Authorization: Bearer <token>`` (401 otherwise). Every job
keeps a timeline of its progress (monotonic seconds since it started), which the notebook plots against
the monitor's checks.
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from monitoring.core.payloads import to_iso

SLICES = 50  # a job publishes its progress this many times


@dataclass
class Job:
    """One job: its work, where it is, and the timeline of its progress."""

    id: str
    work: int
    seconds: float
    fail_at: float | None
    started: float = field(default_factory=time.monotonic)
    started_wall: float = field(
        default_factory=time.time
    )  # the same moment, on the clock checks are stamped with
    status: str = "running"
    progress: float = 0.0
    primes: int = 0
    timeline: list[tuple[float, float]] = field(default_factory=lambda: [(0.0, 0.0)])
    ended_at: float | None = None  # seconds after the start
    ended_wall: float | None = None  # the same moment, on the checks' clock
    _hurry: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def ended_at_iso(self) -> str | None:
        """When the job ended, in the format the monitor stamps its checks with (``...T12:00:01.234Z``)."""
        if self.ended_wall is None:
            return None
        return to_iso(datetime.fromtimestamp(self.ended_wall, timezone.utc))

    def end(self, status: str) -> None:
        """Record the end (the caller holds the service's lock, so no answer shows the status without it)."""
        self.status = status
        self.ended_at = time.monotonic() - self.started
        self.ended_wall = time.time()

    def hurry(self) -> None:
        """Drop the pacing: the rest of the work runs as fast as the machine allows."""
        self.seconds = 0.0
        self._hurry.set()

    def answer(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "progress": round(self.progress, 3),
            "primes": self.primes,
        }


def _count_primes(start: int, stop: int) -> int:
    return sum(1 for n in range(max(start, 2), stop) if all(n % d for d in range(2, math.isqrt(n) + 1)))


class JobService:
    """The service: start it, create jobs, stop it (a context manager too)."""

    def __init__(self, port: int = 0, *, token: str | None = None) -> None:
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # no access log in notebook cells
                return

            def _reply(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _host_ok(self) -> bool:
                if self.headers.get("Host") not in (service.address, f"localhost:{service.port}"):
                    self._reply(400, {"error": "unexpected Host header"})
                    return False
                if token is not None and self.headers.get("Authorization") != f"Bearer {token}":
                    self._reply(401, {"error": "send Authorization: Bearer <token>"})
                    return False
                return True

            def do_GET(self) -> None:
                if not self._host_ok():
                    return
                job = service.jobs.get(self.path.removeprefix("/jobs/").split("?")[0])
                if not self.path.startswith("/jobs/") or job is None:
                    self._reply(404, {"error": f"no job at {self.path}"})
                    return
                with service._lock:
                    self._reply(200, job.answer())

            def do_POST(self) -> None:
                if not self._host_ok():
                    return
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                    body = json.loads(self.rfile.read(length) or b"{}")
                    job = service.start(
                        int(body.get("work", 20_000)), float(body.get("seconds", 5)), body.get("fail_at")
                    )
                except (ValueError, TypeError, AttributeError) as error:
                    self._reply(400, {"error": str(error)})
                    return
                self._reply(201, {"id": job.id, "url": service.url_of(job)})

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.address = f"127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="job-service", daemon=True)
        self._thread.start()

    def url_of(self, job: Job | str) -> str:
        return f"http://{self.address}/jobs/{job if isinstance(job, str) else job.id}"

    def start(self, work: int = 20_000, seconds: float = 5.0, fail_at: float | None = None) -> Job:
        """Start a job counting the primes below ``work`` in at least ``seconds``; it fails at ``fail_at``."""
        if not 100 <= work <= 10_000_000:
            raise ValueError("work must be from 100 to 10000000")
        if not 0 <= seconds <= 3600:
            raise ValueError("seconds must be from 0 to 3600")
        if fail_at is not None and not 0 <= float(fail_at) <= 1:
            raise ValueError("fail_at must be from 0 to 1")
        fail = None if fail_at is None else float(fail_at)
        job = Job(id=uuid.uuid4().hex[:8], work=work, seconds=seconds, fail_at=fail)
        self.jobs[job.id] = job
        threading.Thread(target=self._run, args=(job,), name=f"job-{job.id}", daemon=True).start()
        return job

    def _run(self, job: Job) -> None:
        step = math.ceil(job.work / SLICES)
        for number, start in enumerate(range(0, job.work, step), start=1):
            found = _count_primes(start, min(start + step, job.work))
            pause = job.started + job.seconds * number / SLICES - time.monotonic()
            job._hurry.wait(max(pause, 0.001))  # paced, and never hogging the machine the monitor shares
            with self._lock:
                job.primes += found
                job.progress = min(start + step, job.work) / job.work
                job.timeline.append((time.monotonic() - job.started, job.progress))
                if job.fail_at is not None and job.progress >= job.fail_at:
                    job.end("failed")
                    return
        with self._lock:
            job.end("succeeded")

    def wait(self, job: Job, timeout: float = 120) -> Job:
        """Block until ``job`` has ended (for notebooks and tests)."""
        deadline = time.monotonic() + timeout
        while job.ended_at is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job.id} still running after {timeout:g} s")
            time.sleep(0.02)
        return job

    def close(self) -> None:
        """Stop answering: afterwards every GET is refused, like a service that is down."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> JobService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
