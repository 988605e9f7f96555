"""The tutorial in a real browser: JupyterLab on loopback, each notebook opened in headless Chromium, Run All.

Checks what a person would see: no error, the control panel's widgets rendered, plots drawn as images.
Screenshots are kept in artifacts/. The notebooks are copied first, so the run never saves outputs into
the committed files.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from netns import PrivateNetwork
from test_scheduler import free_port

from monitoring.scheduler import process
from monitoring.scheduler.server import DEFAULT_PORT

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
RUN_ALL_SECONDS = 240  # generous: a loaded CI machine runs the kernels slowly
QUEUED_SECONDS = 30  # Run All marks every cell queued at once; nothing marked by then means a lost click
# The prompts of the code cells whose code is shown: a collapsed cell (a worked solution) shows a placeholder
# with an empty prompt instead; its number is read off the cells around it.
SHOWN_PROMPTS = ".jp-CodeCell:not(:has(.jp-InputPlaceholder)) .jp-InputPrompt"
USER_SETTINGS = {
    # Render every cell (JupyterLab 4 otherwise skips cells scrolled out of view), and no news pop-up.
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}


@pytest.fixture(scope="module")
def jupyter_lab(tmp_path_factory: pytest.TempPathFactory, private_network: PrivateNetwork) -> Iterator[str]:
    """A JupyterLab server on 127.0.0.1 serving a copy of the notebooks; yields its base URL with token.

    Its kernels run in the module's private network (``tests/netns.py``), reached over Unix sockets: each
    notebook starts its local scheduler on the default port 8080 there, whatever else runs on this machine
    (the notebooks under nbval, beside it in another worker).
    """
    root = tmp_path_factory.mktemp("lab")
    for notebook in NOTEBOOKS.glob("*.ipynb"):
        shutil.copy(notebook, root / notebook.name)
    settings = tmp_path_factory.mktemp("lab-settings")
    for plugin, values in USER_SETTINGS.items():
        target = settings / f"{plugin}.jupyterlab-settings"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))
    data = tmp_path_factory.mktemp("lab-data")  # first on JUPYTER_PATH: its "python3" kernel is the one used
    kernel = private_network.command(sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}")
    (data / "kernels" / "python3").mkdir(parents=True)
    (data / "kernels" / "python3" / "kernel.json").write_text(
        json.dumps({"argv": kernel, "display_name": "Python 3 (ipykernel)", "language": "python"})
    )
    port, token = free_port(), secrets.token_hex(16)
    command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.news_url=None",
        f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={settings / 'workspaces'}",
        "--KernelManager.transport=ipc", f"--KernelManager.ip={data / 'kernel'}",
    ]  # fmt: skip
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    jupyter_path = os.pathsep.join(filter(None, [str(data), os.environ.get("JUPYTER_PATH")]))
    log = (root / "jupyter.log").open("w")
    server = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env={**os.environ, "JUPYTER_PATH": jupyter_path},
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    message = "JupyterLab did not start: " + (root / "jupyter.log").read_text()[-2000:]
                    raise AssertionError(message) from None
                time.sleep(0.3)
        yield f"{base}|{token}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        # A notebook that failed before its last cell leaves the on-demand scheduler running.
        process.stop_scheduler_process(DEFAULT_PORT)


def run_all(page: Any, base_and_token: str, notebook: str) -> None:
    base, token = base_and_token.split("|")
    page.goto(f"{base}/lab/workspaces/browser-check/tree/{notebook}?reset&token={token}")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    page.get_by_text("Idle", exact=False).last.wait_for(timeout=60_000)
    start_run_all(page, notebook)
    # Every code cell gets a number once it has run; "[*]" marks one running or queued.
    deadline = time.monotonic() + RUN_ALL_SECONDS
    while True:
        prompts = page.locator(SHOWN_PROMPTS).all_inner_texts()
        if prompts and all(text.strip() not in ("[ ]:", "[*]:", "") for text in prompts):
            break
        if error_outputs(page):
            break  # Run All stops at an error, leaving the rest unrun; the assertion after says which
        assert time.monotonic() < deadline, (
            f"{notebook}: cells still running after {RUN_ALL_SECONDS} s: {prompts}"
        )
        time.sleep(0.5)


def start_run_all(page: Any, notebook: str, attempts: int = 3) -> None:
    """Run > Run All Cells, until a cell shows it was queued ("[*]" or a number).

    On a loaded machine a click can land while the menu is still being drawn and do nothing (seen once: every
    prompt still "[ ]" four minutes later). Run All queues every cell at once, so if no prompt has changed
    after a while the click was lost, and clicking again cannot run anything twice.
    """
    for _ in range(attempts):
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        deadline = time.monotonic() + QUEUED_SECONDS
        while time.monotonic() < deadline:
            prompts = page.locator(SHOWN_PROMPTS).all_inner_texts()
            if any(text.strip() not in ("[ ]:", "") for text in prompts):
                return
            time.sleep(0.5)
        page.keyboard.press("Escape")  # close the menu if it is still open
    raise AssertionError(f"{notebook}: Run All Cells queued nothing in {attempts} attempts")


def error_outputs(page: Any) -> list[str]:
    """Texts of the outputs JupyterLab renders as stderr: tracebacks (and anything a cell logged there)."""
    return page.locator(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
    ).all_inner_texts()


def assert_every_cell_ran_without_error(page: Any, notebook: str) -> None:
    assert error_outputs(page) == [], f"{notebook}: {error_outputs(page)[:1]}"
    prompts = page.locator(SHOWN_PROMPTS).all_inner_texts()
    numbers = [int(text.strip()[1:-2]) for text in prompts]  # "[12]:" -> 12; fails on "[ ]:" or "[*]:"
    cells = page.locator(".jp-CodeCell").count()
    # In order, once each, the collapsed ones too: the numbers rise and the last cell's is the cell count.
    assert numbers == sorted(set(numbers)) and numbers[-1] == cells, (
        f"{notebook}: cells ran out of order or not at all: {numbers} for {cells} cells"
    )


@pytest.mark.parametrize("notebook", sorted(path.name for path in NOTEBOOKS.glob("*.ipynb")))
def test_every_notebook_runs_in_jupyterlab(
    browser_page: Any, jupyter_lab: str, artifacts: Path, notebook: str
) -> None:
    run_all(browser_page, jupyter_lab, notebook)
    assert_every_cell_ran_without_error(browser_page, notebook)
    browser_page.screenshot(path=str(artifacts / f"notebook-{notebook.split('_')[0]}.png"))
    # The exercise's worked solution is collapsed, its code hidden until a click (it ran all the same).
    assert browser_page.locator(".jp-Cell .jp-InputPlaceholder").count() >= 1, "a collapsed worked solution"
    if notebook.startswith("01_"):
        check_code_is_shown_highlighted(browser_page, artifacts)
        plots = browser_page.locator(".jp-OutputArea-output img[src^='data:image/png']")
        assert plots.count() >= 3, "the live plots and the side-by-side figure"
        plots.last.scroll_into_view_if_needed()
        browser_page.screenshot(path=str(artifacts / "notebook-01-plots.png"))
    if notebook.startswith("02_"):
        check_control_panel(browser_page, artifacts)
    if notebook.startswith("05_"):
        plots = browser_page.locator(".jp-OutputArea-output img[src^='data:image/png']")
        assert plots.count() >= 4, "the live plots, the panel's and the checks on the job's progress"
        plots.nth(1).scroll_into_view_if_needed()
        browser_page.screenshot(path=str(artifacts / "notebook-05-progress.png"))
        plots.nth(3).scroll_into_view_if_needed()  # the endpoint that is down: where the monitor ended
        browser_page.screenshot(path=str(artifacts / "notebook-05-endpoint-down.png"))
    if notebook.startswith("06_"):
        plots = browser_page.locator(".jp-OutputArea-output img[src^='data:image/png']")
        assert plots.count() >= 3, "the batch's stacked counts, before and after the worker was killed"
        plots.first.scroll_into_view_if_needed()
        browser_page.screenshot(path=str(artifacts / "notebook-06-batch.png"))
        plots.nth(2).scroll_into_view_if_needed()  # the 40 jobs after the kill, the dashed line where it was
        browser_page.screenshot(path=str(artifacts / "notebook-06-killed.png"))
    if notebook.startswith("04_"):
        plots = browser_page.locator(".jp-OutputArea-output img[src^='data:image/png']")
        plots.first.scroll_into_view_if_needed()  # the sweep, with the red line where it saturated
        browser_page.screenshot(path=str(artifacts / "notebook-04-scale.png"))


def check_code_is_shown_highlighted(page: Any, artifacts: Path) -> None:
    """Notebook 01 shows the package's minimal monitor and the production tour, as rendered outputs."""
    code = page.locator(".jp-OutputArea-output .highlight", has_text="def minimal_monitor")
    assert code.count() == 1, "the minimal monitor's source, highlighted by Pygments"
    assert code.first.locator("span").count() > 50, "keywords, names and strings in their own colours"
    code.first.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "notebook-01-code.png"))
    tour = page.locator(".jp-OutputArea-output table", has_text="continue-as-new")
    assert tour.count() == 1, "the production tour renders as a table"
    tour.first.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "notebook-01-tour.png"))


def check_control_panel(page: Any, artifacts: Path) -> None:
    assert page.locator(".widget-slider").count() >= 3
    assert page.locator(".widget-button", has_text="Run").count() >= 1
    assert page.locator(".widget-readout").count() >= 3
    panel_images = page.locator(".widget-image")
    panel_images.first.wait_for(timeout=30_000)
    assert panel_images.count() >= 2
    assert page.locator(".jp-OutputArea-output img[src^='data:image/png']").count() >= 3
    page.set_viewport_size({"width": 1400, "height": 2400})  # the whole panel fits on screen
    panel = page.locator(".widget-vbox").first
    panel.scroll_into_view_if_needed()
    panel.screenshot(path=str(artifacts / "notebook-02-panel.png"))
    # The notebook's last cell closed the session; a person's click on Run is answered under the button.
    page.locator(".widget-button", has_text="Run").first.click()
    page.get_by_text("Not scheduled: this tutorial session was closed").first.wait_for(timeout=10_000)
    assert page.locator(".jp-OutputArea-output img:not([src])").count() == 0, "no broken-image icon"
