"""Every notebook opened in a real JupyterLab, run to the end, its sliders moved and seen to redraw.

A notebook lists the sliders it promises in its metadata (``nbutils.sliders``: the slider
descriptions); one that promises none must say why in a markdown cell ("No slider" ...).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from labtools import RESULTS, ROOT, SCREENSHOTS

pytestmark = pytest.mark.browser
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
RUN_TIMEOUT_S = 1500  # the comparison notebook runs every method: minutes on 2 cores, more on busy ones
REDRAW_TIMEOUT_S = 120  # a slider that refits a network (notebook 06) takes tens of seconds on 2 busy cores


def promised_sliders(path: Path) -> list[str]:
    nb = json.loads(path.read_text())
    sliders = nb["metadata"].get("nbutils", {}).get("sliders", [])
    if not sliders:
        text = " ".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
        assert re.search(r"no slider", text, re.IGNORECASE), f"{path.name}: promises no slider and does not say why"
    return sliders


def first_error(path: Path) -> str | None:
    """'cell N: Ename: evalue' for the first cell of a saved notebook that raised or never ran, else None."""
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    for i, cell in enumerate(cells, 1):
        if cell.get("execution_count") is None and "".join(cell["source"]).strip():
            return f"cell {i} ({''.join(cell['source']).splitlines()[0][:60]!r}) never ran"
        for out in cell.get("outputs", []):
            if out["output_type"] == "error":
                return f"cell {i} ({''.join(cell['source']).splitlines()[0][:60]!r}): {out['ename']}: {out['evalue']}"
    return None


def run_all_cells(page, timeout_s: float) -> None:
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    prompts = page.locator(".jp-Notebook .jp-CodeCell .jp-InputPrompt")
    deadline, stable = time.time() + timeout_s, 0
    while time.time() < deadline:
        texts = prompts.all_inner_texts()
        busy = any("*" in t for t in texts)
        started = any(re.search(r"\d", t) for t in texts)
        stable = stable + 1 if started and not busy else 0
        if stable >= 3:
            return
        time.sleep(0.5)
    raise AssertionError(f"cells still running after {timeout_s} s")


def save(page, path: Path) -> None:
    before = path.stat().st_mtime
    page.keyboard.press("Control+s")
    deadline = time.time() + 30
    while path.stat().st_mtime == before and time.time() < deadline:
        time.sleep(0.2)


def move_slider(page, interact, slider) -> bool:
    """Press an arrow key on the slider's handle; True when its interact output redraws."""
    output = interact.locator(".widget-output").last
    readout = slider.locator(".widget-readout")
    before_value, before_image = readout.inner_text(), output.screenshot()
    handle = slider.locator(".noUi-handle").first
    for key in ("ArrowRight", "ArrowLeft"):  # a slider at its maximum can only go left
        handle.focus()
        page.keyboard.press(key)
        page.wait_for_timeout(300)
        if readout.inner_text() != before_value:
            break
    else:
        return False
    deadline = time.time() + REDRAW_TIMEOUT_S
    while time.time() < deadline:
        page.wait_for_timeout(500)
        if output.screenshot() != before_image:
            return True
    return False


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_sliders_redraw(notebook, lab, browser):
    url, token, folder = lab
    sliders = promised_sliders(notebook)
    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    try:
        # a workspace of its own, reset: no tab of an earlier notebook stays open behind this one
        page.goto(f"{url}/lab/workspaces/{notebook.stem}/tree/{notebook.name}?reset&token={token}", timeout=60_000)
        page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
        page.locator(".jp-Notebook").first.click()
        page.wait_for_function(
            "() => [...document.querySelectorAll('.jp-Notebook-ExecutionIndicator, .jp-KernelStatus')]"
            ".some(e => /idle/i.test(e.getAttribute('data-status') || e.textContent))", timeout=60_000)
        start = time.time()
        run_all_cells(page, RUN_TIMEOUT_S)
        seconds = time.time() - start
        save(page, folder / notebook.name)
        error = first_error(folder / notebook.name)
        assert error is None, f"{notebook.name}: {error}"

        found = redrawn = 0
        for description in sliders:
            slider = page.locator(".widget-slider", has=page.locator(".widget-label", has_text=re.compile(
                rf"^{re.escape(description)}$")))
            assert slider.count() >= 1, f"{notebook.name}: slider {description!r} is not rendered"
            found += 1
            interact = page.locator(".widget-interact", has=slider.first).last
            slider.first.scroll_into_view_if_needed()
            assert move_slider(page, interact, slider.first), f"{notebook.name}: moving {description!r} redrew nothing"
            redrawn += 1
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{notebook.stem}.png"), full_page=True)
        RESULTS.append(dict(notebook=notebook.stem, seconds=round(seconds, 1), sliders=found, redraw=redrawn))
    finally:
        page.close()
