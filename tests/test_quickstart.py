"""The README's quick start as a new user meets it: a fresh clone, its own ``.venv``, the commands verbatim.

The clone is made from this repository's committed ``HEAD`` into a temporary folder; every command of the
README's "Quick start" block runs there through the shell exactly as printed. ``python3 run.py tutorial``
must serve JupyterLab on loopback, open on notebook 01 (the printed link, and the page in a real browser
when Chromium is installed), save notebooks without outputs, and stop on Ctrl-C with no process left.
``python3 run.py test`` then runs in the same clone (after the tutorial has saved a notebook), limited by
``PYTEST_ADDOPTS`` to the fast checks that opening the tutorial could break, so the suite does not run
itself again. Both commands, started with SIGINT ignored, still stop on Ctrl-C.
"""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
NESTED = "MONITORING_QUICKSTART_NESTED"  # set in the clone's own test run, so it skips this module
SETUP_SECONDS = 900  # a first install from an empty pip cache on a slow network; only guards a hang
FIRST_NOTEBOOK = "01_monitoring_pattern.ipynb"
CONFIRM = "Shut down this Jupyter server"  # JupyterLab's question after a first Ctrl-C in a terminal
# How a script's background job (``command &``) or some CI runners start a command: SIGINT ignored, which
# every process it starts inherits unless it takes the signal back (``exec`` keeps the shell out of the way).
IGNORING_CTRL_C = "trap '' INT; exec "

pytestmark = pytest.mark.skipif(bool(os.environ.get(NESTED)), reason="already inside a quick-start run")


def quick_start_commands() -> list[str]:
    """The lines of the first ```bash block under "## Quick start", as printed."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_the_quick_start_is_the_two_run_py_commands() -> None:
    commands = [line.split("#", 1)[0].strip() for line in quick_start_commands()]
    assert commands == ["python3 run.py tutorial", "python3 run.py test"]


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(proc.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def kernel_started(processes: set[int]) -> set[int] | None:
    """``processes`` if one of them is a Jupyter kernel, else None."""
    for pid in processes:
        try:
            if b"ipykernel" in (Path("/proc") / str(pid) / "cmdline").read_bytes():
                return processes
        except OSError:
            continue
    return None


def wait_for_kernel(connection_file: Path) -> None:
    """Return once the kernel behind ``connection_file`` answers (its ``kernel_info`` reply)."""
    from jupyter_client import BlockingKernelClient

    wait_until(connection_file.exists, 60, f"{connection_file.name} to be written")
    client = BlockingKernelClient(connection_file=str(connection_file))
    client.load_connection_file()
    client.start_channels()
    try:
        # The reply on the shell channel, not wait_for_ready: that one also reads the heartbeat, which a
        # kernel on a loaded machine can miss for a second while it is alive and starting ("Kernel died").
        reply = client.kernel_info(reply=True, timeout=SETUP_SECONDS)  # the timeout only guards a hang
        assert reply["content"]["status"] == "ok", reply["content"]
    finally:
        client.stop_channels()


def wait_until(condition: Any, limit: float, what: str) -> Any:
    deadline = time.monotonic() + limit
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"gave up after {limit:g} s waiting for {what}"
        time.sleep(0.3)


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """A fresh clone of HEAD and the environment of a new user's shell (no venv, no PYTHONPATH)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout to clone")
    if not Path("/proc").is_dir():
        pytest.skip("finds left-over processes through /proc (Linux)")
    home = tmp_path_factory.mktemp("quickstart")
    target = home / "durable-monitoring"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(target)], check=True)
    # A new user's shell: none of this session's Python, Jupyter or monitoring settings. MONITORING_TEST_RUN
    # stays: it marks the clone's processes for the suite's left-behind check.
    dropped = ("PYTHON", "VIRTUAL_ENV", "ENDPOINT", "TASKHUB", "JUPYTER", "PYTEST_", "MONITORING_")
    env = {
        key: value
        for key, value in os.environ.items()
        if key == "MONITORING_TEST_RUN" or not key.startswith(dropped)
    }
    env.update(
        # Keep JupyterLab's and the scheduler's files out of the real home; no desktop browser pops up.
        JUPYTER_CONFIG_DIR=str(home / "jupyter-config"),
        JUPYTER_RUNTIME_DIR=str(home / "jupyter-runtime"),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "jupyter-workspaces"),
        IPYTHONDIR=str(home / "ipython"),
        MONITORING_STATE_DIR=str(home / "state"),
        BROWSER="true",
        # pip byte-compiles every file it installs (~18 s of CPU here); Python compiles what it imports.
        PIP_NO_COMPILE="1",
    )
    yield target, env


class Command:
    """A ``run.py`` command running in the clone as in a person's terminal: a process group of its own, and a
    terminal (a pseudo-terminal) as its input; or, with ``terminal=False``, /dev/null as its input (a pipe, a
    script, an IDE's run button). Its output goes to ``<log>.log`` beside the clone.

    JupyterLab asks to confirm a Ctrl-C only when its input is a terminal. With any other input it does not
    handle Ctrl-C at all: the first one interrupted its event loop at once, without stopping its kernels, and
    a file request still in flight then left a worker thread that kept the process from exiting (found when
    this test ran with /dev/null as input: no exit within 30 s, a Traceback at the next Ctrl-C). So
    ``run.py`` then runs it in a session of its own and turns the Ctrl-C into a SIGTERM, which it handles.
    """

    def __init__(
        self, clone: Path, env: dict[str, str], command: str, log: str, terminal: bool = True
    ) -> None:
        self.log_path = clone.parent / f"{log}.log"
        self.env = env
        self.log = self.log_path.open("w")
        self.terminal: int | None = None
        stdin: Any = subprocess.DEVNULL
        if terminal:
            self.terminal, stdin = pty.openpty()
        # bash, as in a person's terminal: it runs the one command in its own place (dash would stay in
        # between and die at once of the Ctrl-C, hiding the command's own exit status).
        self.process = subprocess.Popen(
            command, shell=True, executable=shutil.which("bash"), cwd=clone, env=env, stdin=stdin,
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        if terminal:
            os.close(stdin)
        self.seen: set[int] = set()  # every process seen below it, to clean up whatever session it is in

    def output(self) -> str:
        return self.log_path.read_text()

    def running(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"the command exited {self.process.returncode}:\n{self.output()[-3000:]}")
        return True

    def url(self) -> str | None:
        self.running()
        found = re.search(r"http://127\.0\.0\.1:\d+/\S*\?token=\w+", self.output())
        return found.group(0) if found else None

    def below(self) -> set[int]:
        found = descendants(self.process.pid)
        self.seen |= found
        return found

    def ctrl_c(self) -> None:
        """What a terminal sends on Ctrl-C: SIGINT to the foreground process group."""
        os.killpg(self.process.pid, signal.SIGINT)

    def kill(self) -> None:
        self.below()
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        for pid in self.seen:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        self.log.close()
        if self.terminal is not None:
            os.close(self.terminal)


def api(url: str, path: str, *, method: str = "GET", body: Any = None) -> tuple[int, Any]:
    base, token = re.match(r"(http://[^/]+)/\S*\?token=(\w+)", url).groups()  # type: ignore[union-attr]
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        base + path, data=data, method=method, headers={"Authorization": f"token {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read() or b"null")


def test_quick_start_commands_work_as_written(
    clone: tuple[Path, dict[str, str]], request: pytest.FixtureRequest, artifacts: Path
) -> None:
    target, env = clone
    tutorial_line, test_line = quick_start_commands()

    tutorial = Command(target, env, tutorial_line, "tutorial")
    try:
        url = wait_until(tutorial.url, SETUP_SECONDS, "the tutorial to print JupyterLab's link")
        # It serves on loopback and its link opens notebook 01.
        assert url.split("?")[0].endswith(f"/lab/tree/{FIRST_NOTEBOOK}"), url
        listing = wait_until(lambda: _answers(url, "/api/contents"), 60, "JupyterLab to answer")
        names = [item["name"] for item in listing["content"]]
        assert FIRST_NOTEBOOK in names and all(name.endswith(".ipynb") for name in names), names
        # No "get notified about Jupyter news?" toast over the first plots: the tutorial answered no.
        _, news = api(url, "/lab/api/settings/@jupyterlab/apputils-extension:notification")
        assert news["schema"]["properties"]["fetchNews"]["default"] == "false"  # JupyterLab's is "none": ask
        _open_in_a_browser_or_start_its_kernel(url, request, artifacts)

        # JupyterLab saves the notebook (as it autosaves while a person works): no outputs reach the file.
        _, model = api(url, f"/api/contents/{FIRST_NOTEBOOK}")
        notebook = model["content"]
        first_code = next(cell for cell in notebook["cells"] if cell["cell_type"] == "code")
        first_code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "ran\n"}]
        first_code["execution_count"] = 1
        api(url, f"/api/contents/{FIRST_NOTEBOOK}", method="PUT",
            body={"type": "notebook", "format": "json", "content": notebook})  # fmt: skip
        saved = json.loads((target / "notebooks" / FIRST_NOTEBOOK).read_text())
        assert all(
            cell.get("outputs", []) == [] and cell.get("execution_count") is None
            for cell in saved["cells"]
            if cell["cell_type"] == "code"
        ), "the tutorial saved outputs into a notebook"

        # Ctrl-C twice stops it, as the README says: JupyterLab asks to confirm the first (it waits 5 s for
        # the second), then stops its kernels and exits, with nothing left running.
        below = tutorial.below()
        assert below, "JupyterLab and its kernel run below the tutorial command"
        tutorial.ctrl_c()
        wait_until(lambda: CONFIRM in tutorial.output(), 60, "JupyterLab to ask to confirm the Ctrl-C")
        tutorial.ctrl_c()
        assert tutorial.process.wait(timeout=120) == 0, tutorial.output()[-3000:]  # the timeout guards a hang
        assert "Shutting down 1 kernel" in tutorial.output(), tutorial.output()[-3000:]
        wait_until(lambda: not any(alive(pid) for pid in below), 30, "JupyterLab's processes to end")
        assert "Traceback" not in tutorial.output(), tutorial.output()[-3000:]
    finally:
        tutorial.kill()

    # With no terminal as its input, one Ctrl-C stops it as cleanly: its kernels shut down, nothing left.
    _one_ctrl_c_stops_the_tutorial(
        Command(target, env, tutorial_line, "tutorial-no-terminal", terminal=False)
    )

    # The test command, verbatim, in the clone the tutorial just used.
    nested = {
        **env,
        NESTED: "1",
        "PYTEST_ADDOPTS": "-q -p no:cacheprovider -k 'test_notebooks_clean or test_environment'",
    }
    completed = subprocess.run(
        test_line, shell=True, cwd=target, env=nested, capture_output=True, text=True, timeout=SETUP_SECONDS
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert re.search(r"\d+ passed", completed.stdout), completed.stdout[-2000:]


def test_both_commands_stop_on_ctrl_c_when_started_with_it_ignored(
    clone: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """Started with SIGINT ignored, ``run.py`` takes it back for itself and for what it starts (pip, ruff,
    JupyterLab, pytest and its workers): a Ctrl-C stops the command and leaves nothing running."""
    target, env = clone
    tutorial_line, test_line = quick_start_commands()
    _one_ctrl_c_stops_the_tutorial(
        Command(target, env, IGNORING_CTRL_C + tutorial_line, "tutorial-ignoring-ctrl-c", terminal=False)
    )

    # The test command, in the middle of a test that only a signal ends (pytest's workers around it).
    marker = tmp_path / "running"
    waits = tmp_path / "test_waits.py"
    waits.write_text(
        "import os, time\n\n\ndef test_waits_for_ctrl_c():\n"
        f"    open({str(marker)!r}, 'w').write(str(os.getpid()))\n    while True:\n        time.sleep(1)\n"
    )
    nested = {**env, NESTED: "1", "PYTEST_ADDOPTS": "-q -p no:cacheprovider"}
    command_only = test_line.split("#", 1)[0].strip()  # the README's line ends with a comment
    line = f"{IGNORING_CTRL_C}{command_only} {waits} -k test_waits_for_ctrl_c"
    command = Command(target, nested, line, "test-ignoring-ctrl-c", terminal=False)
    try:
        wait_until(
            lambda: command.running() and marker.exists() and marker.read_text(), 600, "the test to start"
        )
        below = command.below()
        assert int(marker.read_text()) in below, (marker.read_text(), below)
        command.ctrl_c()
        # The timeout only guards a hang; 2 is pytest's exit status for a run cut short.
        assert command.process.wait(timeout=120) == 2, command.output()[-3000:]
        assert "KeyboardInterrupt" in command.output(), command.output()[-3000:]
        wait_until(lambda: not any(alive(pid) for pid in below), 30, "pytest's processes to end")
    finally:
        command.kill()


def _one_ctrl_c_stops_the_tutorial(piped: Command) -> None:
    """With no terminal as its input, one Ctrl-C stops the tutorial: its kernels shut down, nothing left."""
    env = piped.env
    try:
        url = wait_until(piped.url, SETUP_SECONDS, "the tutorial to print JupyterLab's link")
        assert "(Ctrl-C stops it)" in piped.output(), piped.output()[-3000:]
        wait_until(lambda: _answers(url, "/api/contents"), 60, "JupyterLab to answer")
        _, kernel = api(url, "/api/kernels", method="POST", body={"name": "python3"})
        # Ready, answering a kernel_info request: a kernel stopped while still importing prints a traceback.
        wait_for_kernel(Path(env["JUPYTER_RUNTIME_DIR"]) / f"kernel-{kernel['id']}.json")
        below = wait_until(lambda: kernel_started(piped.below()), 60, "JupyterLab's kernel to start")
        piped.ctrl_c()
        assert piped.process.wait(timeout=120) == 0, piped.output()[-3000:]  # the timeout only guards a hang
        assert "Shutting down 1 kernel" in piped.output(), piped.output()[-3000:]
        wait_until(lambda: not any(alive(pid) for pid in below), 30, "JupyterLab's processes to end")
        assert "Traceback" not in piped.output(), piped.output()[-3000:]
    finally:
        piped.kill()


def _answers(url: str, path: str) -> Any:
    try:
        return api(url, path)[1]
    except OSError:
        return None


def _open_in_a_browser_or_start_its_kernel(url: str, request: pytest.FixtureRequest, artifacts: Path) -> None:
    """Open the printed link in headless Chromium (if installed): notebook 01 is open, its kernel idle.

    Without Chromium, start the notebook's kernel through the API, as opening it would.
    """
    if not any(shutil.which(name) for name in ("chromium", "chromium-browser")):
        session = {"path": FIRST_NOTEBOOK, "type": "notebook", "name": "", "kernel": {"name": "python3"}}
        api(url, "/api/sessions", method="POST", body=session)
        return
    page = request.getfixturevalue("browser_page")
    page.goto(url)
    page.locator(".jp-mod-current .lm-TabBar-tabLabel", has_text=FIRST_NOTEBOOK).first.wait_for(
        timeout=60_000
    )
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    page.get_by_text("Idle", exact=False).last.wait_for(timeout=60_000)
    page.screenshot(path=str(artifacts / "quickstart-tutorial.png"))
