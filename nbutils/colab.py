"""Where the notebooks live: the repository's URL, in one place, and the header every notebook starts with
(Colab and Binder badges, the Colab install cell) made from it.

    python -m nbutils.colab          # rewrite the header of every notebook from REPOSITORY

The install cell runs before the package exists on Colab, so it cannot import the URL: it is written into each
notebook from here, and a test fails when a notebook's header differs from what this module makes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

REPOSITORY = "https://github.com/nbutils-org/unsupervised-brain-mri"
BRANCH = "main"
_BADGE = re.compile(r"^\[!\[(Open In Colab|Binder)\]")


def _slug() -> str:
    return REPOSITORY.removeprefix("https://github.com/")


def badges(notebook: str) -> list[str]:
    """The Colab and Binder badge lines of a notebook.

    Parameters
    ----------
    notebook : its file name, e.g. ``"03_joint_clustering.ipynb"``.

    Returns
    -------
    two markdown lines.
    """
    return [f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"(https://colab.research.google.com/github/{_slug()}/blob/{BRANCH}/notebooks/{notebook})",
            f"[![Binder](https://mybinder.org/badge_logo.svg)]"
            f"(https://mybinder.org/v2/gh/{_slug()}/{BRANCH}?urlpath=lab/tree/notebooks/{notebook})"]


def install_cell() -> str:
    """The code of the cell after the title: on Colab, pip adds what Colab lacks (nilearn, phate, deepbet, ...;
    torch, NumPy and scikit-learn are there already, and JupyterLab is not needed); elsewhere it does nothing.

    Returns
    -------
    the cell's source.
    """
    return ("# Colab only: pip installs the package and what Colab lacks (elsewhere `make lab` has installed it)\n"
            "import sys\n"
            "if \"google.colab\" in sys.modules:\n"
            "    import subprocess\n"
            f"    subprocess.run([sys.executable, \"-m\", \"pip\", \"install\", \"-q\", \"nbutils @ git+{REPOSITORY}\"],\n"
            "                   check=True)")


def with_header(notebook: dict, name: str) -> dict:
    """A notebook whose badge lines and install cell are made from :data:`REPOSITORY`.

    Parameters
    ----------
    notebook : the notebook's JSON (first cell: markdown with the title and the badges; second: the install cell).
    name : its file name.

    Returns
    -------
    the same dict, updated.
    """
    title = "".join(notebook["cells"][0]["source"]).split("\n")
    kept = [line for line in title if not _BADGE.match(line)]
    lines = kept[:2] + badges(name) + kept[2:]
    notebook["cells"][0]["source"] = "\n".join(lines).splitlines(keepends=True)
    notebook["cells"][1]["source"] = install_cell().splitlines(keepends=True)
    return notebook


def main() -> None:
    for path in sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb")):
        notebook = with_header(json.loads(path.read_text()), path.name)
        path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")
        print(f"{path.name}: header from {REPOSITORY}")


if __name__ == "__main__":
    main()
