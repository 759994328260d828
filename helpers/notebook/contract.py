"""The cells every notebook shares, written by one command, and the contract they keep.

    python -m helpers.notebook.contract          # rewrite badges, Colab parameters, setup cells
    python -m helpers.notebook.contract --check  # list what breaks the contract; exit 1 if any

Every notebook opens with an "Open in Colab" badge, then its title; its parameters cell
(tagged ``parameters`` for papermill) ends with the Colab parameters; the cell right after
it is the setup cell (tagged ``setup``), the same in every notebook; nothing is stored
with outputs. The repository address comes from ``helpers.notebook.colab.REPOSITORY`` and
``BRANCH`` only: change them and run this command to rewrite every badge, in the README too.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import nbformat

from helpers.config import REPO_ROOT, profile_table
from helpers.errors import UserError
from helpers.notebook.colab import BRANCH, DRIVE_FOLDER, REPOSITORY

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
README = REPO_ROOT / "README.md"
PROFILE_DOC = REPO_ROOT / "docs" / "running.md"
PROFILE_TABLE = re.compile(r"(<!-- profiles: .*? -->\n).*?(<!-- /profiles -->)", re.S)
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
COLAB_URL = re.compile(r"https://colab\.research\.google\.com/github/[^/\s)]+/[^/\s)]+/blob/"
                       r"[^/\s)]+/notebooks/")
PARAMETERS_HEADER = ("# Colab only (ignored elsewhere): the project to clone, and the Drive folder "
                     "for ROOT")
SETUP_SOURCE = '''\
# Setup, the same in every notebook: on Colab, fetch the project and prepare the runtime
import os
import subprocess
import sys

if "google.colab" in sys.modules:  # the project comes from REPOSITORY (helpers/notebook/colab.py)
    PROJECT = os.path.abspath(os.path.basename(REPOSITORY.rstrip("/")).removesuffix(".git"))
    if not os.path.isdir(PROJECT):
        subprocess.run(["git", "clone", "-q", "-b", BRANCH, REPOSITORY, PROJECT], check=True)
    if PROJECT not in sys.path:
        sys.path.insert(0, PROJECT)
from helpers.notebook.colab import prepare

ROOT = prepare(REPOSITORY, BRANCH, drive=DRIVE, root=ROOT)'''


def colab_folder(repository: str | None = None, branch: str | None = None) -> str:
    """Where Colab opens the notebooks folder of ``repository``'s ``branch`` on GitHub
    (default: ``REPOSITORY`` and ``BRANCH``)."""
    repository, branch = repository or REPOSITORY, branch or BRANCH
    match = re.fullmatch(r"https://github\.com/([^/]+)/([^/]+?)(\.git)?/?", repository)
    if not match:
        raise UserError(f"Colab opens notebooks from GitHub only: set helpers.notebook.colab.REPOSITORY "
                        f"to https://github.com/OWNER/NAME (it is {repository}).")
    return f"https://colab.research.google.com/github/{match[1]}/{match[2]}/blob/{branch}/notebooks/"


def colab_url(notebook: str) -> str:
    """Where Colab opens ``notebook`` (a stem such as 01_download_data)."""
    return f"{colab_folder()}{notebook}.ipynb"


def badge(notebook: str) -> str:
    """The Markdown badge that opens ``notebook`` in Colab."""
    return f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(notebook)})"


def colab_parameters() -> str:
    """The lines every parameters cell ends with."""
    return "\n".join([PARAMETERS_HEADER, f'REPOSITORY = "{REPOSITORY}"', f'BRANCH = "{BRANCH}"',
                      f'DRIVE = "{DRIVE_FOLDER}"  # "": ROOT on the runtime disk, lost on disconnect'])


def _tagged(nb: nbformat.NotebookNode, tag: str) -> list[int]:
    return [i for i, c in enumerate(nb.cells) if tag in c.get("metadata", {}).get("tags", [])]


def _is_badge(cell: nbformat.NotebookNode) -> bool:
    return cell.cell_type == "markdown" and cell.source.startswith("[![Open In Colab]")


def synced(nb: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    """``nb`` with its badge, Colab parameters and setup cell as the contract writes them."""
    cells = [c for c in nb.cells if not _is_badge(c) and "setup" not in c.metadata.get("tags", [])]
    nb.cells = [nbformat.v4.new_markdown_cell(badge(name), id="colab-badge"), *cells]
    parameters = _tagged(nb, "parameters")
    if len(parameters) != 1:
        raise UserError(f"{name} needs exactly one cell tagged 'parameters' "
                        f"(it has {len(parameters)}).")
    cell = nb.cells[parameters[0]]
    cell.source = cell.source.split(PARAMETERS_HEADER)[0].rstrip() + "\n" + colab_parameters()
    setup = nbformat.v4.new_code_cell(SETUP_SOURCE, id="colab-setup", metadata={"tags": ["setup"]})
    nb.cells.insert(parameters[0] + 1, setup)
    return nb


def sync_notebook(path: Path) -> bool:
    """Rewrite ``path``'s shared cells; return whether it changed."""
    before = path.read_text()
    after = nbformat.writes(synced(nbformat.reads(before, as_version=4), path.stem)) + "\n"
    if after != before:
        path.write_text(after)
    return after != before


def sync_readme(path: Path = README) -> bool:
    """Point every Colab link of the README at the current repository and branch."""
    before = path.read_text()
    after = COLAB_URL.sub(colab_folder(), before)
    if after != before:
        path.write_text(after)
    return after != before


def sync_profile_table(path: Path = PROFILE_DOC) -> bool:
    """Write ``config.profile_table()`` between the profile markers of ``path``."""
    before = path.read_text()
    if not PROFILE_TABLE.search(before):
        raise UserError(f"{path} lacks the <!-- profiles: ... --> and <!-- /profiles --> markers: "
                        "restore them around its profile table.")
    after = PROFILE_TABLE.sub(lambda m: m.group(1) + profile_table() + m.group(2), before)
    if after != before:
        path.write_text(after)
    return after != before


def profile_table_problems(path: Path = PROFILE_DOC) -> list[str]:
    """Whether ``path``'s profile table is the one helpers/config.py makes."""
    match = PROFILE_TABLE.search(path.read_text())
    table = match.group(0) if match else ""
    return [] if profile_table() in table else [
        f"{path.name}: the profile table is not the one helpers/config.py makes "
        "(run make sync-notebooks)"]


def problems(path: Path) -> list[str]:
    """What ``path`` lacks of the contract (empty: it keeps it)."""
    nb = nbformat.read(path, as_version=4)
    name, cells, found = path.stem, nb.cells, []
    if not cells or cells[0].source != badge(name):
        found.append("the first cell is not its Open-in-Colab badge")
    title = cells[1] if len(cells) > 1 else None
    if title is None or title.cell_type != "markdown" or not title.source.startswith(f"# {name[:2]} "):
        found.append(f"the second cell is not its title ('# {name[:2]} ...')")
    parameters = _tagged(nb, "parameters")
    if len(parameters) != 1 or not cells[parameters[0]].source.endswith(colab_parameters()):
        found.append("no single parameters cell ending with the Colab parameters")
    elif _tagged(nb, "setup") != [parameters[0] + 1] or cells[parameters[0] + 1].source != SETUP_SOURCE:
        found.append("the cell after the parameters is not the setup cell")
    if any(c.get("outputs") or c.get("execution_count") for c in cells if c.cell_type == "code"):
        found.append("stored outputs")
    return found


def readme_problems(notebooks: Sequence[Path], path: Path = README) -> list[str]:
    """The notebooks whose badge link the README lacks."""
    text = path.read_text()
    return [f"README: no Colab link to {nb.stem}" for nb in notebooks if colab_url(nb.stem) not in text]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.notebook.contract",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report, change nothing")
    args = parser.parse_args(argv)
    notebooks = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    try:
        if args.check:
            found = [f"{nb.name}: {p}" for nb in notebooks for p in problems(nb)]
            found += readme_problems(notebooks) + profile_table_problems()
            print("\n".join(found) or f"{len(notebooks)} notebooks keep the contract")
            return 1 if found else 0
        changed = [nb.name for nb in notebooks if sync_notebook(nb)]
        changed += ["README.md"] if sync_readme() else []
        changed += [PROFILE_DOC.name] if sync_profile_table() else []
    except UserError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    print(f"rewrote {', '.join(changed)}" if changed else "every notebook was in sync already")
    print(f"badges point at {colab_url('NN_name')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
