"""The notebooks' source: every nbutils function that computes on a device is given the config's
(``cfg.device``), so that a notebook on a GPU leaves no work on the CPU, and every header (badges, Colab install
cell) is the one :mod:`nbutils.colab` makes from the repository's one URL."""

import ast
import importlib
import inspect
import json
from pathlib import Path

import pytest

from nbutils import colab

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
CHOOSES_THE_DEVICE = {"nbutils.config.load"}  # the config cell: where the device is decided


def code_of(notebook: Path) -> ast.Module:
    cells = json.loads(notebook.read_text())["cells"]
    lines = [line for c in cells if c["cell_type"] == "code" for line in "".join(c["source"]).splitlines()
             if not line.lstrip().startswith(("%", "!"))]
    return ast.parse("\n".join(lines))


def nbutils_names(tree: ast.Module) -> dict:
    """Local name -> the nbutils module or object it was imported as."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("nbutils"):
            for alias in node.names:
                try:
                    names[alias.asname or alias.name] = importlib.import_module(f"{node.module}.{alias.name}")
                except ImportError:
                    names[alias.asname or alias.name] = getattr(importlib.import_module(node.module), alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("nbutils"):
                    names[alias.asname or alias.name.split(".")[0]] = importlib.import_module(alias.name.split(".")[0])
    return names


def calls_without_device(tree: ast.Module) -> list[str]:
    """``module.function(...)`` calls to nbutils functions that take a device and are not given one."""
    names, missing = nbutils_names(tree), []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id in names):
            continue
        fn = getattr(names[node.func.value.id], node.func.attr, None)
        try:
            params = list(inspect.signature(fn).parameters)
        except (TypeError, ValueError):
            continue
        qualified = f"{getattr(fn, '__module__', '')}.{getattr(fn, '__name__', '')}"
        if "device" not in params or qualified in CHOOSES_THE_DEVICE:
            continue
        positional = len(node.args) > params.index("device") and not any(
            isinstance(a, ast.Starred) for a in node.args)
        keyword = any(k.arg in ("device", None) for k in node.keywords)
        if not (positional or keyword):
            missing.append(f"line {node.lineno}: {ast.unparse(node)[:100]}")
    return missing


def test_the_check_finds_a_call_that_forgets_the_device():
    tree = ast.parse("from nbutils.methods import cuts\nfrom nbutils.data import datasets\n"
                     "cuts.cluster(z, m, f, 'kmeans')\ncuts.cluster(z, m, f, device=cfg.device)\n"
                     "datasets.phantom_volumes(3, 8, 128)\n")
    assert [m.split(":")[0] for m in calls_without_device(tree)] == ["line 3", "line 5"]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.stem for n in NOTEBOOKS])
def test_notebooks_give_every_computing_function_the_configs_device(notebook):
    assert not calls_without_device(code_of(notebook))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.stem for n in NOTEBOOKS])
def test_badges_and_the_colab_install_cell_come_from_the_one_repository_url(notebook):
    on_disk = json.loads(notebook.read_text())
    made = colab.with_header(json.loads(notebook.read_text()), notebook.name)
    assert [c["source"] for c in on_disk["cells"][:2]] == [c["source"] for c in made["cells"][:2]], (
        "run python -m nbutils.colab")
    install = "".join(on_disk["cells"][1]["source"])
    assert f"nbutils @ git+{colab.REPOSITORY}" in install and "jupyterlab" not in install


def test_what_colab_installs_leaves_jupyterlab_out():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith("jupyterlab") for d in project["dependencies"])  # Colab has its own front end
    assert any(d.startswith("jupyterlab") for d in project["optional-dependencies"]["dev"])  # make lab and the tests
