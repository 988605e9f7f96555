"""``python -m monitoring serve`` as a process, and the seed's curl commands run as written."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest
from netns import PrivateNetwork
from test_cli import cli, spawn, wait_for_line
from test_scheduler import free_port

from monitoring.scheduler.server import LocalScheduler
from monitoring.web.serving import is_loopback


def test_serve_runs_api_dashboard_and_worker_and_stops_on_ctrl_c() -> None:
    api_port, dashboard_port = free_port(), free_port()
    with LocalScheduler(0) as own:  # a scheduler that only the served worker serves
        server = spawn(
            "serve", "--port", str(api_port), "--dashboard-port", str(dashboard_port), endpoint=own.address
        )
        try:
            wait_for_line(server, "Worker running")
            api = f"http://127.0.0.1:{api_port}"
            body = {"polling_interval_seconds": 0.2, "timeout_seconds": 2, "job_duration_seconds": 0.3}
            started = httpx.post(f"{api}/api/start_monitoring_job", json=body, timeout=30)
            assert started.status_code == 202
            status_url = started.json()["statusQueryGetUri"]
            assert status_url.startswith(api)
            deadline = time.monotonic() + 30
            while (status := httpx.get(status_url, timeout=30).json())["runtimeStatus"] != "Completed":
                assert time.monotonic() < deadline, status
                time.sleep(0.1)
            assert status["output"]["final_status"] == "Completed"
            listed = httpx.get(f"http://127.0.0.1:{dashboard_port}/api/instances", timeout=30).json()
            assert [item["instanceId"] for item in listed["instances"]] == [started.json()["id"]]

            server.send_signal(signal.SIGINT)
            assert server.wait(timeout=30) == 0
            assert server.stderr is not None
            log = server.stderr.read()
            assert "Stopped the HTTP API, the dashboard and the worker" in log
            assert "monitoring.http INFO: POST /api/start_monitoring_job -> 202" in log
            assert "GET /api/instances" not in log  # the dashboard's polling is not logged
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{api_port}/openapi.json", timeout=5)


def test_serve_refuses_a_taken_port_in_one_line_and_starts_nothing() -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"  # unreachable: serve must fail before trying it
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for args in (["--port", str(port)], ["--port", str(free_port()), "--dashboard-port", str(port)]):
            done = cli("serve", *args, endpoint=nowhere)
            assert done.returncode == 2
            assert done.stderr.strip() == (
                f"error: port {port} on 127.0.0.1 is already in use; "
                "stop what listens there or choose another port"
            )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--host", "0.0.0.0"], "refusing to serve on 0.0.0.0: the API has no authentication"),
        (["--port", "7000", "--dashboard-port", "7000"], "--port and --dashboard-port are both 7000"),
        (["--port", "http"], "port must be a number from 1 to 65535"),
    ],
)
def test_serve_bad_arguments_are_one_line(args: list[str], message: str) -> None:
    done = cli("serve", *args, endpoint=f"http://127.0.0.1:{free_port()}")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert message in done.stderr


def test_serve_remote_host_needs_the_explicit_flag() -> None:
    done = cli("serve", "--host", "0.0.0.0", endpoint=f"http://127.0.0.1:{free_port()}")
    assert "--allow-remote" in done.stderr and done.returncode == 2
    assert [is_loopback(host) for host in ("127.0.0.1", "127.9.9.9", "::1", "localhost")] == [True] * 4
    assert [is_loopback(host) for host in ("0.0.0.0", "::", "192.168.1.5", "example.com")] == [False] * 4


# --- the seed's curl commands, verbatim, on the documented default port -----------------------------------
#
# They run as written (http://localhost:7071) against ``python -m monitoring serve`` with nothing set, as a
# person runs them: both inside a private network namespace (tests/netns.py), so port 7071 (and the local
# scheduler's 8080) are free whatever else runs on this machine; nothing started there is reachable outside.

SEED_START_DEFAULT = """curl -X POST http://localhost:7071/api/start_monitoring_job \\
  -H "Content-Type: application/json" \\
  -d '{}'"""
SEED_START_CUSTOM = """curl -X POST http://localhost:7071/api/start_monitoring_job \\
  -H "Content-Type: application/json" \\
  -d '{
    "job_id": "my-custom-job-123",
    "polling_interval_seconds": 10,
    "timeout_seconds": 60
  }'"""
SEED_STATUS = 'curl -X GET "http://localhost:7071/runtime/webhooks/durabletask/instances/{instanceId}"'
SEED_JOB_STATUS = 'curl -X GET "http://localhost:7071/api/job_status/{jobId}"'


def curl_or_skip() -> None:
    if shutil.which("curl") is None:
        message = "curl is not installed (apt-get install curl); .ci/run installs it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def test_the_seed_curl_commands_work_as_written(private_network: PrivateNetwork) -> None:
    curl_or_skip()
    env = {key: value for key, value in os.environ.items() if key not in ("ENDPOINT", "TASKHUB")}

    def run_curl(command: str) -> Any:
        done = subprocess.run(
            private_network.command("bash", "-c", f"{command} --silent --show-error"),
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    server = subprocess.Popen(
        private_network.command(sys.executable, "-m", "monitoring", "serve"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert "http://127.0.0.1:7071/api/start_monitoring_job" in wait_for_line(server, "HTTP API on")
        wait_for_line(server, "Worker running")
        default = run_curl(SEED_START_DEFAULT)
        custom = run_curl(SEED_START_CUSTOM)
        assert default["statusQueryGetUri"] == (
            f"http://localhost:7071/runtime/webhooks/durabletask/instances/{default['id']}"
        )
        assert custom["sendEventPostUri"].endswith(f"/instances/{custom['id']}/raiseEvent/{{eventName}}")

        status = run_curl(SEED_STATUS.replace("{instanceId}", custom["id"]))
        assert status["name"] == "monitoring_job_orchestrator" and status["instanceId"] == custom["id"]
        assert status["runtimeStatus"] in {"Pending", "Running"}
        assert status["input"] == {
            "job_id": "my-custom-job-123",
            "polling_interval_seconds": 10,
            "timeout_seconds": 60,
            "job_duration_seconds": 12,
            "job_outcome": "Completed",
        }
        job = run_curl(SEED_JOB_STATUS.replace("{jobId}", "my-custom-job-123"))
        assert job["job_id"] == "my-custom-job-123" and job["status"] == "Running"
        assert job["instanceId"] == custom["id"]

        default_status = run_curl(SEED_STATUS.replace("{instanceId}", default["id"]))
        assert default_status["input"]["polling_interval_seconds"] == 5
        assert default_status["input"]["job_id"].startswith("job-")
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=60) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        stopped = subprocess.run(
            private_network.command(sys.executable, "-m", "monitoring", "stop-scheduler"),
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
    assert stopped.stderr.strip() == "Stopped the local scheduler on port 8080", "serve started it"
