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


# What only durable code (an orchestrator or an activity) uses: none of it in a cell. Registering the
# package's orchestrator and activity on a worker (add_orchestrator, add_activity) is wiring: notebook 01
# shows it.
DURABLE_CODE = re.compile(
    r"OrchestrationContext|ActivityContext|create_timer|call_activity|call_sub_orchestrator"
    r"|wait_for_external_event|set_custom_status|continue_as_new|\bctx\b"
)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_no_cell_defines_an_orchestrator_or_an_activity(path: Path) -> None:
    for cell in code_cells(path):
        assert not DURABLE_CODE.search("".join(cell["source"])), (
            f"{path.name}: orchestration code belongs in monitoring/"
        )


def test_the_rule_catches_durable_code_and_lets_wiring_through() -> None:
    assert DURABLE_CODE.search("def watch(ctx, job):\n    yield ctx.create_timer(at)")
    assert DURABLE_CODE.search("def check(context: ActivityContext, job): ...")
    assert not DURABLE_CODE.search(
        "worker.add_orchestrator(minimal_monitor)\nworker.add_activity(minimal_check)"
    )


SDK_WIRING_TAG = "sdk-wiring"
SDK_CALLS = (
    "DurableTaskSchedulerWorker(", "host_address=", "taskhub=", "secure_channel=", "token_credential=",
    "add_orchestrator(", "add_activity(", ".start()", "DurableTaskSchedulerClient(",
    "schedule_new_orchestration(", "get_orchestration_state(", "wait_for_orchestration_completion(",
    ".stop()",
)  # fmt: skip


def sdk_wiring_cells(path: Path) -> list[str]:
    """The sources of ``path``'s cells tagged ``sdk-wiring``, in order (what a learner copies)."""
    return [
        "".join(cell["source"])
        for cell in code_cells(path)
        if SDK_WIRING_TAG in cell.get("metadata", {}).get("tags", [])
    ]


def test_notebook_01_wires_the_sdk_in_plain_sight() -> None:
    wiring = "\n".join(sdk_wiring_cells(NOTEBOOKS[0]))
    assert [call for call in SDK_CALLS if call not in wiring] == []
    # Before any helper: the first cell that uses connect() comes after the last wiring cell.
    sources = ["".join(cell["source"]) for cell in code_cells(NOTEBOOKS[0])]
    tagged = [SDK_WIRING_TAG in cell.get("metadata", {}).get("tags", []) for cell in code_cells(NOTEBOOKS[0])]
    last_wiring = max(index for index, is_tagged in enumerate(tagged) if is_tagged)
    first_helper = min(index for index, source in enumerate(sources) if "connect()" in source)
    assert last_wiring < first_helper


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_every_notebook_has_an_exercise_with_a_check_and_a_hidden_worked_solution(path: Path) -> None:
    notebook = json.loads(path.read_text())
    markdown = ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "markdown"]
    assert any("Your turn" in text for text in markdown), f"{path.name}: no 'Your turn' exercise"
    cells = code_cells_of(notebook)
    checks = [cell for cell in cells if "check_" in "".join(cell["source"])]
    solutions = [cell for cell in cells if cell["metadata"].get("jupyter", {}).get("source_hidden")]
    assert checks, f"{path.name}: no cell checks the learner's answer"
    assert solutions, f"{path.name}: no worked solution (a collapsed cell)"
    for solution in solutions:
        source = "".join(solution["source"])
        assert any("check_" in ast.unparse(a.test) for a in asserts_in(source)), (
            f"{path.name}: a worked solution should assert that the exercise's check accepts it"
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
