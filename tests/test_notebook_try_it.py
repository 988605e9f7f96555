"""Notebook 02 invites the reader to press Run; doing so before its scripted cells breaks none of its checks.

The notebook runs as nbval runs it (a real kernel, the time scale of the test run), with one cell inserted
right after the control panel appears: the clicks a reader would make. Every later cell must still pass.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient
from netns import KernelInPrivateNetwork, PrivateNetwork

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "02_scenarios.ipynb"
READERS_CLICKS = """\
panel.set(interval=1, timeout=5, job_duration=2)
panel.run_button.click()
panel.set(interval=2, timeout=10, job_duration=30, job_outcome="Failed")
panel.run_button.click()
panel.run_button.click()
assert len(panel.traces) == 3
"""


def test_a_readers_runs_do_not_break_the_notebooks_checks(private_network: PrivateNetwork) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    shown = next(i for i, cell in enumerate(notebook.cells) if cell.source.rstrip().endswith("\npanel"))
    notebook.cells.insert(shown + 1, nbformat.v4.new_code_cell(READERS_CLICKS))
    kernel = KernelInPrivateNetwork(private_network, kernel_name="python3")  # its own port 8080
    try:
        NotebookClient(
            notebook, km=kernel, timeout=600, resources={"metadata": {"path": str(NOTEBOOK.parent)}}
        ).execute()
    finally:
        kernel.shutdown_kernel(now=True)  # a kernel given to NotebookClient is the giver's to stop
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    # The reader's three runs and the notebook's four all finished, and the notebook said so.
    texts = "".join(output.get("text", "") for output in outputs)
    assert "4 runs scheduled" in texts
