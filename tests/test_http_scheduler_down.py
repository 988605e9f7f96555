"""The HTTP API over real HTTP while its scheduler is down: 503 with a JSON error, never a traceback."""

from __future__ import annotations

import time

import httpx

from conftest import new_job_id
from monitoring.client.monitors import MonitorClient
from monitoring.runtime.connection import Connection
from monitoring.scheduler.server import LocalScheduler
from monitoring.web.api import create_app
from monitoring.web.serving import BackgroundServer

INSTANCES = "/runtime/webhooks/durabletask/instances"


def test_the_api_answers_503_while_its_scheduler_is_down_and_202_once_one_answers_again() -> None:
    scheduler = LocalScheduler(0).start()  # no worker: the monitor stays Pending, which is all we need
    port = scheduler.port
    connection = Connection(scheduler.address, "default", "emulator")
    # patience: how long a call waits for a scheduler that went away before the API answers 503.
    with (
        MonitorClient(connection, patience=1.0) as monitors,
        BackgroundServer(create_app(monitors)) as server,
        httpx.Client(base_url=server.url, timeout=60) as http,
    ):
        started = http.post("/api/start_monitoring_job", json={"job_id": new_job_id()})
        assert started.status_code == 202, started.text
        instance_id = started.json()["id"]
        scheduler.stop()
        try:
            for response in (
                http.get(f"{INSTANCES}/{instance_id}"),
                http.post("/api/start_monitoring_job", json={"job_id": new_job_id()}),
                http.get("/api/job_status/some-job"),
                http.post(f"{INSTANCES}/{instance_id}/terminate"),
            ):
                assert response.status_code == 503, (response.request.url, response.text)
                body = response.json()
                assert set(body) == {"error"} and "Traceback" not in body["error"]
        finally:
            scheduler = LocalScheduler(port).start()  # a scheduler answers on the same address again
        try:  # the client reconnects by itself (gRPC backs off between attempts): poll until it has
            deadline = time.monotonic() + 60
            while (again := http.post("/api/start_monitoring_job", json={})).status_code == 503:
                assert time.monotonic() < deadline, again.text
                time.sleep(0.2)
            assert again.status_code == 202, again.text
        finally:
            scheduler.stop()
