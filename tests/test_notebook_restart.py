"""Notebook 03's kernel-restart steps, done for real: run its first code cell and the cell that starts the
long monitor in a kernel, restart that kernel, run the first code cell again, then the cell that follows the
monitor (it must not need anything from the old kernel), then the clean-up cell: nothing is left running."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from netns import KernelInPrivateNetwork, PrivateNetwork

from monitoring.runtime.connection import connection_from_env
from monitoring.scheduler import process

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "03_durability_and_control.ipynb"


def code_cell(containing: str) -> str:
    cells = [c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells if c.cell_type == "code"]
    found = [source for source in cells if containing in source]
    assert len(found) == 1, f"one code cell holds {containing!r}"
    return found[0]


def run(client, source: str) -> str:  # type: ignore[no-untyped-def]
    """Run ``source`` in the kernel; its printed output, or a failure with the kernel's error."""
    printed: list[str] = []
    errors: list[str] = []

    def collect(message: dict) -> None:  # type: ignore[type-arg]
        kind, content = message["msg_type"], message["content"]
        if kind == "stream" and content["name"] == "stdout":
            printed.append(content["text"])
        elif kind == "error":
            errors.append(f"{content['ename']}: {content['evalue']}")

    reply = client.execute_interactive(source, timeout=300, output_hook=collect)
    assert reply["content"]["status"] == "ok" and not errors, errors
    return "".join(printed)


@pytest.mark.heavy
def test_the_kernel_restart_steps_of_notebook_03_work(
    tmp_path: Path, private_network: PrivateNetwork
) -> None:
    port = connection_from_env().local_port
    manager = KernelInPrivateNetwork(private_network, kernel_name="python3", ip=str(tmp_path / "kernel"))
    manager.start_kernel(cwd=str(NOTEBOOK.parent))
    try:
        client = manager.client()
        client.start_channels()
        client.wait_for_ready(timeout=120)
        run(client, code_cell("tutorial = connect()"))
        started = run(client, code_cell("restart the kernel now"))
        instance_id = started.split()[1]
        client.stop_channels()

        manager.restart_kernel(now=True)  # Kernel -> Restart Kernel: every name of the old kernel is gone
        client = manager.client()
        client.start_channels()
        client.wait_for_ready(timeout=120)
        run(client, code_cell("tutorial = connect()"))
        followed = run(client, code_cell("predicted from its input"))
        assert (
            "ended Completed after 4 check(s)" in followed
            and "predicted from its input: Completed" in followed
        )
        assert instance_id, "the monitor started before the restart is the one followed after it"
        assert process.scheduler_owner(port) == "tutorial", (
            "the first kernel's tutorial started the scheduler"
        )
        cleaned = run(client, code_cell("nothing of this notebook is left running"))
        assert "nothing of this notebook is left running" in cleaned
        assert process.scheduler_owner(port) is None, (
            "the new kernel stopped the scheduler the old one started"
        )
        client.stop_channels()
    finally:
        manager.shutdown_kernel(now=True)
        if process.scheduler_owner(port) == "tutorial":  # the test failed before the clean-up cell
            process.stop_scheduler_process(port)
