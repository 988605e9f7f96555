"""Show the package's own code in a notebook: highlighted, with the file and line numbers it comes from."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent


@dataclass(frozen=True)
class SourceView:
    """Source text of a function, class or module, and where it lives (rendered highlighted by IPython)."""

    path: str
    first_line: int
    last_line: int
    text: str

    @property
    def where(self) -> str:
        return f"{self.path}, lines {self.first_line}-{self.last_line}"

    def _repr_html_(self) -> str:
        from IPython.display import Code

        return f"<p><code>{self.where}</code></p>" + Code(self.text, language="python")._repr_html_()

    def __repr__(self) -> str:
        return f"# {self.where}\n{self.text}"


def source_of(*objects: Any) -> SourceView:
    """The source of ``objects`` (consecutive definitions of one file are shown as one block)."""
    files = {inspect.getsourcefile(obj) for obj in objects}
    if len(files) != 1:
        raise ValueError("show definitions from one file at a time")
    spans = [(start, start + len(lines) - 1) for lines, start in map(inspect.getsourcelines, objects)]
    first, last = min(start for start, _ in spans), max(end for _, end in spans)
    lines = Path(files.pop() or "").read_text().splitlines()
    path = Path(inspect.getsourcefile(objects[0]) or "").resolve()
    shown = path.relative_to(PACKAGE_ROOT) if path.is_relative_to(PACKAGE_ROOT) else path
    return SourceView(str(shown), max(first, 1), last, "\n".join(lines[max(first, 1) - 1 : last]))


def lines_of(obj: Any, needle: str) -> int:
    """The line number, in ``obj``'s file, of the first line of ``obj``'s source containing ``needle``."""
    lines, start = inspect.getsourcelines(obj)
    for offset, line in enumerate(lines):
        if needle in line:
            return start + offset
    raise ValueError(f"{needle!r} is not in the source of {getattr(obj, '__qualname__', obj)!r}")


@dataclass(frozen=True)
class Pointer:
    """One thing the production orchestrator adds, and the line of the package that does it."""

    what: str
    why: str
    path: str
    line: int
    code: str


class Tour(list[Pointer]):
    """Pointers rendered as a table in a notebook."""

    def _repr_markdown_(self) -> str:
        rows = [f"| {p.what} | {p.why} | `{p.path}:{p.line}` | `{p.code}` |" for p in self]
        return "\n".join(["| adds | why | where | the line |", "|---|---|---|---|", *rows])


def pointer(what: str, why: str, obj: Any, needle: str) -> Pointer:
    line = lines_of(obj, needle)
    path = Path(inspect.getsourcefile(obj) or "").resolve()
    text = path.read_text().splitlines()[line - 1].strip()
    return Pointer(what, why, str(path.relative_to(PACKAGE_ROOT)), line, text)


def production_tour() -> Tour:
    """Where :mod:`monitoring.core.orchestration` does what :mod:`monitoring.core.minimal` leaves out."""
    from monitoring.core.orchestration import _Monitor
    from monitoring.core.schedule import CheckSchedule

    return Tour(
        [
            pointer("a schedule anchored at the start", "a slow check never pushes later ones back",
                    _Monitor.due_of_check, "self.started_at + timedelta"),
            pointer("a final check at the deadline", "a job that ends just before the timeout is not missed",
                    CheckSchedule.offset_of_check, "min("),
            pointer("retries", "one failing call does not end the monitor",
                    _Monitor.check, "retry_delay_seconds("),
            pointer("a guard past the deadline", "a check that hangs cannot hold the monitor",
                    _Monitor.check, "if winner is guard.timer:"),
            pointer("continue-as-new", "the history (replayed every episode) stays short",
                    _Monitor.run, "continue_as_new("),
            pointer("the cancel event", "a person can stop it mid-wait",
                    _Monitor.sleep_until, "winner is self.cancel"),
        ]
    )  # fmt: skip
