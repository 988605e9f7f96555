"""The committed notebooks: outputs stripped, numbered, and free of orchestration code."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def code_cells(path: Path) -> list[dict]:
    return [cell for cell in json.loads(path.read_text())["cells"] if cell["cell_type"] == "code"]


def test_there_are_numbered_notebooks() -> None:
    assert [path.name[:3] for path in NOTEBOOKS[:2]] == ["01_", "02_"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_committed_without_outputs(path: Path) -> None:
    for cell in code_cells(path):
        assert cell.get("outputs") == [], f"{path.name}: a cell has outputs; strip them (nbstripout)"
        assert cell.get("execution_count") is None, f"{path.name}: a cell has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_no_cell_defines_an_orchestrator(path: Path) -> None:
    pattern = re.compile(r"OrchestrationContext|create_timer|call_activity|add_orchestrator|\bctx\.")
    for cell in code_cells(path):
        assert not pattern.search("".join(cell["source"])), (
            f"{path.name}: orchestration code belongs in monitoring/"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_every_notebook_claims_are_checked_and_it_cleans_up(path: Path) -> None:
    sources = ["".join(cell["source"]) for cell in code_cells(path)]
    assert any("assert " in source for source in sources), f"{path.name} has no assert cell"
    assert "close()" in sources[-1], f"{path.name}: the last cell should stop the worker"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_readme_indexes_every_notebook(path: Path) -> None:
    assert f"notebooks/{path.name}" in README
