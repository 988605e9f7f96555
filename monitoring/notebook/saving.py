"""The tutorial's notebooks stay as committed when a person runs them: saved without outputs.

``python3 run.py tutorial`` gives JupyterLab :func:`strip_outputs` as its contents manager's pre-save hook,
so autosave and Ctrl-S write a person's edits but none of the outputs, execution counts or widget state
that would make the committed notebooks dirty (and ``tests/test_notebooks_clean.py`` fail).
"""

from __future__ import annotations

from typing import Any


def strip_outputs(model: dict[str, Any], **_context: Any) -> None:
    """jupyter_server pre-save hook (called with ``model``, ``path``, ``contents_manager``): strip it."""
    content = model.get("content")
    if model.get("type") != "notebook" or not isinstance(content, dict):
        return
    for cell in content.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        cell.get("metadata", {}).pop("execution", None)  # JupyterLab's optional cell timing
    content.get("metadata", {}).pop("widgets", None)  # saved widget state
