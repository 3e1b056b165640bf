"""A real JupyterLab server on 127.0.0.1 and a headless Chromium (Debian's) driven by Playwright."""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from labtools import CHROMIUM, CHROMIUM_FLAGS, RESULTS, ROOT, SCREENSHOTS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if not CHROMIUM.exists():
        return f"Chromium not found at {CHROMIUM} (apt-get install chromium); browser tests skipped"
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed (pip install -e '.[dev]'); browser tests skipped"
    return None


@pytest.fixture(scope="session")
def browser():
    reason = missing_browser()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """``(base_url, token, notebooks_dir)`` of a JupyterLab on a random port, rooted at a copy of notebooks/."""
    base = tmp_path_factory.mktemp("lab")
    notebooks = base / "notebooks"
    shutil.copytree(ROOT / "notebooks", notebooks)
    settings = base / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    # render every cell (no virtual scrolling), so every prompt and output is in the page
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    news = base / "settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)  # no "get notified about news" pop-up over the screenshots
    (news / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, NBUTILS_PROFILE="ci", NBUTILS_DATA_DIR=str(base / "data"),
               NBUTILS_BUILD_DIR=str(base / "build"), MPLBACKEND="module://matplotlib_inline.backend_inline")
    log = open(base / "server.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         "--ServerApp.port_retries=0", "--allow-root", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={notebooks}",
         f"--LabApp.user_settings_dir={base / 'settings'}", f"--LabApp.workspaces_dir={base / 'workspaces'}"],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=notebooks,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if server.poll() is not None or time.time() > deadline:
                server.kill()
                tail = (base / "server.log").read_text().splitlines()[-15:]
                pytest.fail("JupyterLab did not start within 60 s; server log:\n" + "\n".join(tail))
            time.sleep(0.5)
    yield url, token, notebooks
    server.terminate()
    try:
        server.wait(10)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


def pytest_collection_modifyitems(config, items):
    """Each notebook runs once: in JupyterLab when the browser tests will run in the ci profile, else under nbval.

    The lab run fails on the first cell that raised or never ran, which is what ``--nbval-lax`` checks.
    """
    will_run = (any(item.get_closest_marker("browser") for item in items) and missing_browser() is None
                and os.environ.get("NBUTILS_PROFILE", "ci") == "ci")
    notebooks = [item for item in items if item.path.suffix == ".ipynb"]
    if will_run and notebooks:
        config.hook.pytest_deselected(items=notebooks)
        items[:] = [item for item in items if item.path.suffix != ".ipynb"]


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    terminalreporter.section("notebooks in JupyterLab (headless Chromium)")
    terminalreporter.write_line(f"{'notebook':<34}{'run s':>8}{'sliders':>9}{'redraw':>8}")
    for r in RESULTS:
        terminalreporter.write_line(f"{r['notebook']:<34}{r['seconds']:>8.1f}{r['sliders']:>9}{r['redraw']:>8}")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / "report.json").write_text(json.dumps(RESULTS, indent=2) + "\n")
