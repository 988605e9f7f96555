"""Notebook 02 invites the reader to press Run; doing so before its scripted cells breaks none of its checks.

The notebook runs as nbval runs it (a real kernel, the time scale of the test run), with one cell inserted
right after the control panel appears: the clicks a reader would make. Every later cell must still pass.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "02_scenarios.ipynb"
READERS_CLICKS = """\
panel.set(interval=1, timeout=5, job_duration=2)
panel.run_button.click()
panel.set(interval=2, timeout=10, job_duration=30, job_outcome="Failed")
panel.run_button.click()
panel.run_button.click()
assert len(panel.traces) == 3
"""


def test_a_readers_runs_do_not_break_the_notebooks_checks(tmp_path: Path) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    shown = next(i for i, cell in enumerate(notebook.cells) if cell.source.rstrip().endswith("\npanel"))
    notebook.cells.insert(shown + 1, nbformat.v4.new_code_cell(READERS_CLICKS))
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    ).execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    # The reader's three runs and the notebook's four all finished, and the notebook said so.
    texts = "".join(output.get("text", "") for output in outputs)
    assert "4 runs scheduled" in texts
