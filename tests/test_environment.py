"""``environment.yml`` (conda) against ``requirements.txt`` (pip): one set of pins, the same Pythons."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
ENVIRONMENT = yaml.safe_load((ROOT / "environment.yml").read_text())
REQUIREMENTS = (ROOT / "requirements.txt").read_text()
PYPROJECT = (ROOT / "pyproject.toml").read_text()


def pinned_requirements() -> dict[str, set[str]]:
    """Package name -> the versions requirements.txt pins (one per Python-version marker)."""
    pins: dict[str, set[str]] = {}
    for line in REQUIREMENTS.splitlines():
        found = re.match(r"([A-Za-z0-9_.-]+)==([^\s;]+)", line)
        if found:
            pins.setdefault(found.group(1).lower().replace("_", "-"), set()).add(found.group(2))
    return pins


def conda_and_pip_entries() -> tuple[list[str], list[str]]:
    conda = [entry for entry in ENVIRONMENT["dependencies"] if isinstance(entry, str)]
    pip_sections = [entry["pip"] for entry in ENVIRONMENT["dependencies"] if isinstance(entry, dict)]
    return conda, [line for section in pip_sections for line in section]


def test_environment_installs_requirements_txt_through_pip() -> None:
    conda, pip = conda_and_pip_entries()
    assert "pip" in conda
    assert pip == ["-r requirements.txt"], "pip packages belong in requirements.txt, not environment.yml"
    assert "-e ." in REQUIREMENTS.splitlines(), "requirements.txt installs this package (editable)"


def test_environment_python_matches_the_projects_python() -> None:
    conda, _ = conda_and_pip_entries()
    python = [entry for entry in conda if entry.replace(" ", "").startswith("python")]
    assert len(python) == 1
    spec = python[0].replace(" ", "")
    lowest = re.search(r">=(\d+\.\d+)", spec)
    assert lowest is not None, f"{spec}: give the lowest Python"
    assert f'requires-python = ">={lowest.group(1)}"' in PYPROJECT
    compiled_for = re.search(r"--python-version (\d+\.\d+)", REQUIREMENTS)
    assert compiled_for is not None and compiled_for.group(1) == lowest.group(1), (
        "requirements.txt is compiled for the lowest Python environment.yml allows"
    )
    assert "--universal" in REQUIREMENTS, "pins that hold for every Python environment.yml allows"


def test_conda_packages_other_than_python_and_pip_are_pinned_as_in_requirements_txt() -> None:
    conda, _ = conda_and_pip_entries()
    pins = pinned_requirements()
    for entry in conda:
        name, _, version = entry.partition("=")
        name = re.split(r"[<>=! ]", name)[0].lower()
        if name in ("python", "pip"):
            continue
        assert name in pins, f"environment.yml installs {name}, which requirements.txt does not pin"
        assert version.lstrip("=") in pins[name], (
            f"{name}: environment.yml {version}, requirements.txt {pins[name]}"
        )


def test_every_direct_requirement_is_pinned() -> None:
    pins = pinned_requirements()
    direct = [
        re.split(r"[<>=~! \[]", line, maxsplit=1)[0].lower().replace("_", "-")
        for line in (ROOT / "requirements.in").read_text().splitlines()
        if line.strip() and not line.startswith(("#", "-"))
    ]
    assert direct and all(name in pins for name in direct), [name for name in direct if name not in pins]
