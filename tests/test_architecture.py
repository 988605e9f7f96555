"""The folder tree is the architecture: these rules hold for every module of the package, read from its
source (imports anywhere in a module count, including those inside functions)."""

from __future__ import annotations

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "monitoring"
# Lower ranks sit below higher ones; a module may import only from lower ranks (or its own subpackage).
RANKS = {
    "settings": 0,
    "sdk_range": 0,
    "core": 1,
    "scheduler": 2,
    "runtime": 3,
    "client": 4,
    "worker": 4,
    "web": 5,
    "notebook": 5,
    "cli": 6,
    "bench": 7,
}
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path) -> set[str]:
    """Every ``monitoring...`` module that ``path`` imports (``from monitoring import x`` names x)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("monitoring")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("monitoring"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in modules() else node.module)
    return found


def area(module: str) -> str:
    """``monitoring.core.models`` -> ``core``; ``monitoring.worker`` -> ``worker``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "package"


def test_every_module_belongs_to_a_known_layer() -> None:
    areas = {area(name) for name in modules()} - {"package", "__main__"}
    assert areas == set(RANKS), "a new top-level module or folder needs a rank in this test"


@pytest.mark.parametrize("module", sorted(modules()))
def test_imports_flow_down_the_layers(module: str) -> None:
    if area(module) in ("package", "__main__"):
        return
    rank = RANKS[area(module)]
    for imported in imports_of(modules()[module]):
        other = area(imported)
        if other == area(module):
            continue
        assert other in RANKS and RANKS[other] < rank, f"{module} imports {imported}: against the layers"


def test_there_is_no_import_cycle() -> None:
    graph = {
        name: {i for i in imports_of(path) if i in modules() and i != name}
        for name, path in modules().items()
    }
    done: set[str] = set()

    def visit(name: str, trail: list[str]) -> None:
        if name in trail:
            cycle = [*trail[trail.index(name) :], name]
            # A package's __init__ importing its own submodules (re-exports) is not a cycle.
            if not all(step.startswith(cycle[0] + ".") or step == cycle[0] for step in cycle):
                pytest.fail("import cycle: " + " -> ".join(cycle))
            return
        if name in done:
            return
        for imported in sorted(graph[name]):
            visit(imported, [*trail, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])


@pytest.mark.parametrize("module", sorted(modules()))
def test_modules_are_short_enough_to_read_in_one_sitting(module: str) -> None:
    lines = len(modules()[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{module} has {lines} lines (at most {MAX_LINES}): split it"


def test_only_settings_reads_the_environment() -> None:
    readers = [
        name
        for name, path in modules().items()
        if name != "monitoring.settings"
        and ("os.environ" in path.read_text() or "getenv" in path.read_text())
    ]
    assert readers == []


def names_the_bench(path: Path) -> bool:
    """Imports the bench, or holds the string ``"bench"`` or ``monitoring.bench`` (code, not comments)."""
    for node in ast.walk(ast.parse(path.read_text())):
        is_text = isinstance(node, ast.Constant) and isinstance(node.value, str)
        if is_text and (node.value == "bench" or "monitoring.bench" in node.value):
            return True
    return any(area(imported) == "bench" for imported in imports_of(path))


def test_nothing_in_the_product_names_the_bench() -> None:
    assert [name for name, path in modules().items() if area(name) != "bench" and names_the_bench(path)] == []


def test_core_imports_nothing_from_the_other_subpackages() -> None:
    for name, path in modules().items():
        if area(name) == "core":
            assert {area(i) for i in imports_of(path)} <= {"core"}, name


def test_the_products_entry_points_know_only_the_built_in_job_sources() -> None:
    """The bench registers its recording source only in its own processes: a request for it anywhere else
    is refused where it is made (400 at the HTTP edge, a usage error in the CLI)."""
    code = (
        "import monitoring.cli, monitoring.web.api, monitoring.web.dashboard, monitoring.notebook.widgets\n"
        "from monitoring.core.jobs import job_source_names\n"
        "print(','.join(job_source_names()))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "simulated,http,callable"


def test_the_cli_imports_the_web_stack_only_to_serve_it() -> None:
    """Every ``python -m monitoring`` process (a scheduler, a worker, each control command) starts without
    FastAPI and uvicorn: importing them costs a third of the CLI's start-up. ``serve`` imports them itself."""
    code = "import sys, monitoring.cli\nprint(sorted({'fastapi', 'uvicorn', 'starlette'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
