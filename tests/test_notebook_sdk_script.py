"""What a learner copies runs: notebook 01's ``sdk-wiring`` cells, pasted into a script, run as a script.

The script runs in a process of its own against a local scheduler in another process: once with ``ENDPOINT``
unset (in a private network, so the default port 8080 is its own: the script starts the scheduler itself, as
the notebook does), and once with ``ENDPOINT``/``TASKHUB`` naming a scheduler the test started, the way the
emulator or Azure is named. The cells' own asserts check what they ran.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from netns import PrivateNetwork
from test_notebooks_clean import NOTEBOOKS, sdk_wiring_cells
from test_scheduler import free_port

from monitoring.scheduler import process
from monitoring.scheduler.server import DEFAULT_PORT


@pytest.fixture
def script(tmp_path: Path) -> Path:
    cells = sdk_wiring_cells(NOTEBOOKS[0])
    assert len(cells) >= 5, "notebook 01's sdk-wiring cells"
    path = tmp_path / "wired.py"
    path.write_text("\n\n".join(cells) + '\n\nprint("the script ran to its end")\n')
    return path


def run_script(script: Path, command: list[str], **env: str) -> str:
    environ = {key: value for key, value in os.environ.items() if key not in ("ENDPOINT", "TASKHUB")}
    done = subprocess.run(
        command, cwd=script.parent, env={**environ, **env}, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"the script failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    assert done.stderr == "", f"the script wrote to stderr:\n{done.stderr[-3000:]}"
    return done.stdout


def test_the_wiring_cells_run_as_a_script_on_the_default_local_scheduler(
    script: Path, private_network: PrivateNetwork
) -> None:
    try:
        out = run_script(script, private_network.command(sys.executable, str(script)))
    finally:
        process.stop_scheduler_process(DEFAULT_PORT)  # started by the script, in the private network
    assert "local scheduler at http://localhost:8080" in out and "started it" in out
    assert "worker started on thread:" in out
    assert out.count("custom status:") == 4
    assert out.rstrip().endswith("the script ran to its end")


def test_the_wiring_cells_run_as_a_script_on_the_backend_endpoint_and_taskhub_name(script: Path) -> None:
    port = free_port()
    process.spawn_scheduler_process(port, taskhub="learners-hub")
    try:
        out = run_script(
            script, [sys.executable, str(script)], ENDPOINT=f"http://127.0.0.1:{port}", TASKHUB="learners-hub"
        )
    finally:
        process.stop_scheduler_process(port)
    assert f"endpoint: http://127.0.0.1:{port}\ntask hub: learners-hub" in out
    assert out.count("custom status:") == 4
    assert out.rstrip().endswith("the script ran to its end")
