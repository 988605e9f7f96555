"""The committed notebooks: outputs stripped, numbered, and free of orchestration code."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from monitoring.notebook.saving import strip_outputs

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def code_cells_of(notebook: dict) -> list[dict]:
    return [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]


def code_cells(path: Path) -> list[dict]:
    return code_cells_of(json.loads(path.read_text()))


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


def asserts_in(source: str) -> list[ast.Assert]:
    """The assert statements of a code cell (IPython magics and shell lines left out)."""
    python = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
    return [node for node in ast.walk(ast.parse(python)) if isinstance(node, ast.Assert)]


def fixed_by_its_text(test: ast.expr) -> bool:
    """True when nothing the notebook runs can make ``test`` false: it reads no name, attribute or call."""
    return not any(
        isinstance(node, (ast.Name, ast.Attribute, ast.Call, ast.Subscript)) for node in ast.walk(test)
    )


def test_an_assert_of_literals_is_recognised() -> None:
    assert [
        fixed_by_its_text(a.test) for a in asserts_in("assert True\nassert 1 + 1 == 2\nassert x == 2")
    ] == [
        True,
        True,
        False,
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_every_notebook_asserts_on_what_it_ran_and_cleans_up(path: Path) -> None:
    """Its claims are assert cells (``run.py test`` runs every notebook, so a false claim fails the run), and
    each assert reads something the notebook computed: none is true by its text alone."""
    sources = ["".join(cell["source"]) for cell in code_cells(path)]
    asserts = [statement for source in sources for statement in asserts_in(source)]
    assert asserts, f"{path.name} has no assert cell"
    fixed = [ast.unparse(statement.test) for statement in asserts if fixed_by_its_text(statement.test)]
    assert not fixed, f"{path.name}: asserts that cannot fail: {fixed}"
    assert "close()" in sources[-1], f"{path.name}: the last cell should stop the worker"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_readme_indexes_every_notebook(path: Path) -> None:
    assert f"notebooks/{path.name}" in README


def test_the_tutorials_save_hook_strips_what_a_run_adds() -> None:
    notebook = json.loads(NOTEBOOKS[0].read_text())
    for cell in code_cells_of(notebook):
        cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "ran\n"}]
        cell["execution_count"] = 3
        cell["metadata"]["execution"] = {"iopub.status.idle": "2026-11-29T15:00:00Z"}
    notebook["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    model = {"type": "notebook", "content": notebook}
    strip_outputs(model=model, path=NOTEBOOKS[0].name, contents_manager=None)
    assert all(cell["outputs"] == [] and cell["execution_count"] is None for cell in code_cells_of(notebook))
    assert not any("execution" in cell["metadata"] for cell in notebook["cells"])
    assert "widgets" not in notebook["metadata"]
    assert [cell["source"] for cell in notebook["cells"]] == [
        cell["source"] for cell in json.loads(NOTEBOOKS[0].read_text())["cells"]
    ], "a person's edits are kept"
    text_file = {"type": "file", "content": "print(1)"}
    strip_outputs(model=text_file, path="x.py", contents_manager=None)
    assert text_file == {"type": "file", "content": "print(1)"}
