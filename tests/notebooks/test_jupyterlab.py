"""The loss explorer works in a real JupyterLab in a real browser: run every cell of 02-redundancy, move
the clip slider with the keyboard, and the explorer's plot shows another clip.

A JupyterLab server is started on a free port over a temporary copy of the notebooks (the fixture's
parameters written into each `parameters` cell), with its own settings, workspaces and runtime folders;
headless Chromium drives it through chromedriver (selenium), and `window.jupyterapp` (exposed by
--LabApp.expose_app_in_browser) runs the cells. A screenshot is saved beside the test's files.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
from notebook_helpers import NOTEBOOKS, PARAMETERS, with_parameters

pytestmark = pytest.mark.slow

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
INSTALL = "install them with `apt-get install -y chromium chromium-driver` (as root)"
# JupyterLab settings for a test: every cell stays in the page (no windowing), so that the last cell's
# output can be found, and no pop-up asks about news.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false"},
}
LAST_CELL = "const c = document.querySelectorAll('.jp-Notebook .jp-CodeCell'); const last = c[c.length - 1];"
# The plots in the output of a notebook's last cell (where the explorer is), their traces' data as JSON.
TRACES = f"""{LAST_CELL}
const plots = last ? Array.from(last.querySelectorAll('.jp-OutputArea .js-plotly-plot')) : [];
const values = a => a == null ? null : Array.from(a, v => typeof v === 'object' && v ? Array.from(v) : v);
return JSON.stringify(plots.map(p => (p.data || []).map(t => [t.x, t.y, t.z].map(values))));
"""
OPEN_AND_IDLE = """
const app = window.jupyterapp;
const panel = app && Array.from(app.shell.widgets('main')).find(w => w.sessionContext);
if (!panel) return false;
app.shell.activateById(panel.id);  // headless, nothing has focus: make the notebook the current one
const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
return !!(panel.sessionContext.isReady && kernel && kernel.status === 'idle');
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout: float, what: str, every: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@contextmanager
def jupyterlab(root: Path, work: Path, env: dict):
    """A JupyterLab server over `root` on a free local port, with its settings and state under `work`;
    yields its URL. Its kernels inherit `env`."""
    for plugin, values in LAB_SETTINGS.items():
        path = work / "lab-settings" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = dict(env, JUPYTERLAB_SETTINGS_DIR=str(work / "lab-settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(work / "lab-workspaces"), JUPYTER_RUNTIME_DIR=str(work / "runtime"))  # fmt: skip
    port = free_port()
    command = [
        Path(sys.executable).with_name("jupyter"), "lab", "--no-browser", "--LabApp.expose_app_in_browser=True",
        "--IdentityProvider.token=", "--ServerApp.password=",  # no token, no password: a local test server
        f"--port={port}", "--ServerApp.port_retries=0", "--ServerApp.ip=127.0.0.1", f"--ServerApp.root_dir={root}",
        *(["--allow-root"] if os.geteuid() == 0 else []),  # CI containers run as root
    ]  # fmt: skip
    log_path = work / "jupyterlab.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            assert server.poll() is None, f"jupyter lab exited: {log_path.read_text()[-3000:]}"
            try:
                return urllib.request.urlopen(f"{url}/api/status", timeout=2).status == 200
            except OSError:
                return False

        try:
            wait_for(up, 60, "the JupyterLab server")
            yield url
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


@contextmanager
def chromium(profile: Path, size: tuple[int, int] = (1500, 1100)):
    """Headless Chromium through chromedriver, with a fresh profile in `profile`."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--window-size={size[0]},{size[1]}", f"--user-data-dir={profile}"):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def run_all_cells(driver, url: str, notebook: str) -> list:
    """Open `notebook`, run every cell, wait for its last cell's plots and sliders; returns the sliders."""
    driver.get(f"{url}/lab/tree/{notebook}")
    wait_for(lambda: driver.execute_script(OPEN_AND_IDLE), 120, f"{notebook} open with an idle kernel")
    driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells')")

    def drawn():
        sliders = driver.execute_script(
            f"{LAST_CELL} return last ? Array.from(last.querySelectorAll('[role=slider]')) : [];"
        )
        return sliders if sliders and any(json.loads(driver.execute_script(TRACES))) else None

    sliders = wait_for(drawn, 180, f"the plots and sliders of {notebook}'s last cell")
    failed = driver.execute_script(
        "return Array.from(document.querySelectorAll('.jp-OutputArea-output'))"
        ".map(e => e.innerText).filter(t => t.includes('Traceback'));"
    )
    assert not failed, f"a cell of {notebook} failed: {failed[0][:2000]}"
    return sliders


def screenshot(driver, path: Path) -> Path:
    """The last cell at the top of the notebook, the side panel folded away."""
    driver.execute_script("window.jupyterapp.shell.collapseLeft()")
    driver.execute_script(f"{LAST_CELL} last.scrollIntoView({{block: 'start'}});")
    time.sleep(1.5)  # plotly's relayout after the panel folds
    driver.save_screenshot(str(path))
    return path


@pytest.fixture
def browser_installed():
    """Skips at once, before any fixture is built, without Chromium, chromedriver or selenium."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if missing:
        pytest.skip(f"no {' and no '.join(missing)}: {INSTALL}")
    pytest.importorskip("selenium", reason="selenium is a dev extra: pip install -e '.[dev]'")


@pytest.fixture
def lab(browser_installed, tmp_path, notebook_cache):
    """A JupyterLab server over a copy of the notebooks pointed at the fixture's cache; yields its URL."""
    root = tmp_path / "notebooks"
    root.mkdir()
    for name, parameters in PARAMETERS.items():
        nb = with_parameters(NOTEBOOKS / f"{name}.ipynb", parameters)
        (root / f"{name}.ipynb").write_text(json.dumps(nb, indent=1))
    with jupyterlab(root, tmp_path, dict(os.environ, TOTO_LENS_CACHE=str(notebook_cache))) as url:
        yield url


@pytest.mark.timeout(420)
def test_loss_explorer_slider_changes_its_plot_in_jupyterlab(lab, tmp_path):
    from selenium.webdriver.common.keys import Keys

    with chromium(tmp_path / "chromium") as driver:
        sliders = run_all_cells(driver, lab, "02-redundancy.ipynb")
        before = driver.execute_script(TRACES)
        clip = sliders[0]  # the explorer's first control: which clip
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", clip)
        clip.click()
        clip.send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)
        wait_for(lambda: driver.execute_script(TRACES) != before, 30,
                 "the explorer's plot data to change after two steps of the clip slider")  # fmt: skip
        assert float(clip.get_attribute("aria-valuenow")) == 2, "two arrow keys: clip 0 → clip 2"
        shot = screenshot(driver, tmp_path / "loss-explorer.png")
    print(f"screenshot: {shot}")
