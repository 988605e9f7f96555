#!/usr/bin/env python3
"""One command per job, on a fresh machine with only Python: each sets up ``.venv`` first.

    python3 run.py tutorial   open the tutorial notebooks in JupyterLab (http://127.0.0.1:8888)
    python3 run.py demo       scheduler + worker + one monitor in the terminal
    python3 run.py test       lint, unit and integration tests, and every notebook under nbval

Extra arguments go to the tool underneath (``python3 run.py test -k cli``).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".requirements.sha256"
NOTEBOOKS = ROOT / "notebooks"
STRIP_OUTPUTS_HOOK = "monitoring.notebook.saving.strip_outputs"
# JupyterLab's first start asks "get notified about official Jupyter news?" in a toast that covers the first
# notebook's plots. The tutorial answers no, in JupyterLab's settings overrides inside .venv (read as the
# defaults: a person can still change them in Settings).
LAB_OVERRIDES = VENV / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
NO_NEWS = {"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False}}
# Test files run in parallel (pytest-xdist): most of their time is spent waiting on timers and processes, so
# more workers than a 2-core machine's cores still pay (measured: see the README's tests section).
WORKERS = 3


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def restore_ctrl_c() -> None:
    """Take SIGINT back if this process was started with it ignored (a background job of a script, some CI
    runners): an ignored signal stays ignored across exec, so every child would ignore Ctrl-C too. A handled
    one is reset to the default in a child, where Python raises KeyboardInterrupt for it again."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def run(*command: str | Path, env: dict[str, str] | None = None, own_session: bool = False) -> None:
    """Run ``command`` in ROOT; exit with its code if it fails.

    Ctrl-C reaches the child too (same process group): this process waits for it to finish its own
    shutdown (JupyterLab in a terminal asks to confirm, then stops its kernels) instead of killing it.
    With ``own_session`` the child runs in a session of its own, out of the terminal's reach, and a Ctrl-C
    (or a SIGTERM) here asks it to stop with SIGTERM.
    """
    restore_ctrl_c()
    with subprocess.Popen(
        [str(part) for part in command], cwd=ROOT, env=env, start_new_session=own_session
    ) as child:
        if own_session:  # a SIGTERM for this process is meant for the child too: it is out of reach otherwise
            signal.signal(signal.SIGTERM, lambda signum, frame: child.terminate())
        while True:
            try:
                returncode = child.wait()
                break
            except KeyboardInterrupt:
                if own_session:
                    child.terminate()
                continue
    if returncode != 0:
        sys.exit(returncode)


def set_up() -> None:
    """Create .venv and install requirements.txt into it, unless it is already up to date."""
    if sys.version_info < (3, 10):  # noqa: UP036 - run.py runs on whatever python3 the machine has
        sys.exit(f"Python 3.10 or newer is needed; this is {sys.version.split()[0]}")
    if not PYTHON.exists():
        say(f"creating {VENV.relative_to(ROOT)}")
        venv.create(VENV, with_pip=True)
    wanted = hashlib.sha256(
        b"".join((ROOT / name).read_bytes() for name in ("requirements.txt", "pyproject.toml"))
    ).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    say("installing requirements.txt (first run takes a few minutes)")
    run(PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    run(PYTHON, "-m", "pip", "install", "--quiet", "-r", "requirements.txt")
    STAMP.write_text(wanted)


def tutorial(args: list[str]) -> None:
    first = sorted(NOTEBOOKS.glob("[0-9]*.ipynb"))
    if not first:
        say("no notebooks yet: running the demo instead")
        demo(args)
        return
    # JupyterLab handles Ctrl-C itself (asks to confirm, then stops its kernels) only when its input is a
    # terminal; with other input (a pipe, /dev/null) a Ctrl-C would stop it half-way, kernels left running.
    # Then it runs out of the terminal's reach and a Ctrl-C here stops it with SIGTERM, which it handles.
    in_terminal = sys.stdin is not None and sys.stdin.isatty()
    stop_with = "Ctrl-C twice" if in_terminal else "Ctrl-C"
    say(f"opening JupyterLab on 127.0.0.1 at {first[0].name} ({stop_with} stops it)")
    overrides = json.loads(LAB_OVERRIDES.read_text()) if LAB_OVERRIDES.exists() else {}
    LAB_OVERRIDES.parent.mkdir(parents=True, exist_ok=True)
    LAB_OVERRIDES.write_text(json.dumps({**overrides, **NO_NEWS}, indent=2))
    as_root = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    run(
        BIN / "jupyter",
        "lab",
        "--ip=127.0.0.1",
        f"--ServerApp.root_dir={NOTEBOOKS}",
        # The printed link and the browser open the first notebook (the server's "/" redirects there too).
        f"--LabApp.default_url=/lab/tree/{first[0].name}",
        # Notebooks are saved without outputs, as committed, so running the tutorial leaves them clean.
        f"--ContentsManager.pre_save_hook={STRIP_OUTPUTS_HOOK}",
        *as_root,
        *args,
        own_session=not in_terminal,
    )


def demo(args: list[str]) -> None:
    run(PYTHON, "-m", "monitoring", "demo", *args)


def test(args: list[str]) -> None:
    say("ruff check and ruff format --check")
    run(PYTHON, "-m", "ruff", "check", "--no-cache", ".")
    run(PYTHON, "-m", "ruff", "format", "--no-cache", "--check", ".")
    say(f"pytest: tests/ and the notebooks (nbval), {WORKERS} worker processes (tests/parallel.py)")
    notebooks = ["notebooks", "--nbval-lax", "--nbval-current-env"] if any(NOTEBOOKS.glob("*.ipynb")) else []
    # Each file whole in one worker, the longest first (tests/parallel.py orders them). Given before the
    # extra arguments, so that "-n 0" there runs everything in this one process.
    parallel = ["-n", str(WORKERS), "--dist", "loadfile", "--no-loadscope-reorder"]
    run(PYTHON, "-m", "pytest", "tests", *notebooks, *parallel, *args)


COMMANDS = {"tutorial": tutorial, "demo": demo, "test": test}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__.strip())
        sys.exit(2)
    set_up()
    COMMANDS[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
