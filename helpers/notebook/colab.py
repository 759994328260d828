"""The setup cell of every notebook: on Colab, the project, its packages, the GPU, Drive
and Kaggle credentials; elsewhere, one line and nothing done.

On a fresh Colab runtime the setup cell clones the repository (``REPOSITORY`` on
``BRANCH``, both notebook parameters) next to the notebook's working folder, then calls
``prepare``: it updates the clone, installs it over Colab's preinstalled torch and
TensorFlow without replacing them, prints the GPU, mounts Google Drive and puts ROOT in a
Drive folder, so data, checkpoints and results outlive the runtime and an interrupted
training continues from its checkpoint when the notebook is run again.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from helpers.errors import UserError

REPOSITORY = "https://github.com/imbalance-med/imbalance-med"  # the badges' and clones' address
BRANCH = "main"
DRIVE_FOLDER = "imbalance-med"  # the folder in "My Drive" that ROOT points at on Colab
DRIVE_MOUNT = Path("/content/drive")
# Colab's preinstalled frameworks: never reinstalled, and pinned while the rest installs
PREINSTALLED = ("torch", "torchvision", "tensorflow", "keras")
NOT_ON_COLAB = PREINSTALLED + ("jupyterlab",)  # Colab is the notebook interface itself
# A requirement left out when one of these, which provide the same module, is installed
# (Colab has the full OpenCV; a second copy of cv2 beside it can break both)
EQUIVALENTS = {"opencv-python-headless": ("opencv-python", "opencv-contrib-python")}
INSTALLED_MARKER = "colab-installed"  # in the clone's .git folder: the installed requirements' hash


def on_colab() -> bool:
    """Whether this kernel is a Colab runtime (its kernel imports ``google.colab``)."""
    return "google.colab" in sys.modules


def clone_dir(repository: str) -> Path:
    """Where the setup cell clones ``repository``: its name, in the working folder."""
    name = repository.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")
    return Path.cwd() / name


def _git(project: Path, *args: str) -> str:
    """Run git in ``project``; a failure is one sentence."""
    proc = subprocess.run(["git", "-C", str(project), *args], capture_output=True, text=True)
    if proc.returncode:
        raise UserError(f"git {' '.join(args)} failed in {project}: "
                        f"{(proc.stderr.strip().splitlines() or ['no message'])[-1]}")
    return proc.stdout.strip()


def update_project(project: Path, repository: str, branch: str) -> str:
    """Clone ``repository`` into ``project`` if missing, else bring it to ``branch``'s tip;
    return a line saying which commit it is at."""
    if not (project / ".git").exists():
        proc = subprocess.run(["git", "clone", "-q", "--branch", branch, repository, str(project)],
                              capture_output=True, text=True)
        if proc.returncode:
            raise UserError(f"Could not clone {repository} (branch {branch}): "
                            f"{proc.stderr.strip().splitlines()[-1]}; check REPOSITORY and BRANCH.")
    before = _git(project, "rev-parse", "--short", "HEAD")
    _git(project, "fetch", "-q", "origin", branch)
    _git(project, "checkout", "-q", "-B", branch, "FETCH_HEAD")
    after = _git(project, "rev-parse", "--short", "HEAD")
    if before == after:
        return f"project {project} at {after} ({branch}), up to date"
    return (f"project {project} updated {before} -> {after} ({branch}): "
            "Runtime > Restart session loads the new code")


def installed_version(name: str) -> str | None:
    """The installed version of distribution ``name``, or None."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def requirements_for_colab(project: Path) -> list[str]:
    """The project's requirements, less the frameworks Colab preinstalls, JupyterLab, and
    those an installed equivalent provides."""
    kept = []
    for line in (project / "requirements.txt").read_text().splitlines():
        name = re.split(r"[\s<>=!~\[;]", line.strip(), maxsplit=1)[0].lower()
        if not name or name.startswith("#") or name in NOT_ON_COLAB:
            continue
        if not any(installed_version(other) for other in EQUIVALENTS.get(name, ())):
            kept.append(line.strip())
    return kept


def pinned_frameworks() -> list[str]:
    """``name==version`` of each preinstalled framework: constraints pip must keep."""
    return [f"{name}=={installed_version(name)}" for name in PREINSTALLED if installed_version(name)]


def _pip(*args: str) -> None:
    """pip in this kernel's Python; a failure is one sentence."""
    proc = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)
    if proc.returncode:
        raise UserError(f"pip install failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")


def _install_hash(project: Path) -> str:
    files = (project / "requirements.txt", project / "pyproject.toml")
    return hashlib.sha256(b"".join(p.read_bytes() for p in files if p.exists())).hexdigest()


def install_project(project: Path) -> str:
    """Install the requirements (frameworks excluded and pinned) and the project in editable
    mode without dependencies, once per runtime and requirements; return a line."""
    marker = project / ".git" / INSTALLED_MARKER
    digest = _install_hash(project)
    if marker.exists() and marker.read_text() == digest:
        return "packages installed already"
    print("installing the packages (a few minutes, once per runtime)...", flush=True)
    constraints = project / ".git" / "colab-constraints.txt"
    constraints.write_text("\n".join(pinned_frameworks()) + "\n")
    _pip("install", "-q", *requirements_for_colab(project), "-c", str(constraints))
    _pip("install", "-q", "--no-deps", "-e", str(project))
    marker.write_text(digest)
    return f"installed the project (editable) and its packages; kept {', '.join(pinned_frameworks())}"


def gpu_line() -> str:
    """The GPU this runtime has, from nvidia-smi (no framework imported)."""
    try:
        proc = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                              capture_output=True, text=True)
    except FileNotFoundError:
        proc = None
    if proc is None or proc.returncode or not proc.stdout.strip():
        return ("no GPU: Runtime > Change runtime type > T4 GPU (the smoke and demo profiles "
                "run on the CPU, slowly)")
    return "GPU: " + "; ".join(proc.stdout.strip().splitlines())


def drive_root(folder: str) -> Path:
    """Mount Google Drive (once per runtime) and return ``folder`` in My Drive, created."""
    if not (DRIVE_MOUNT / "MyDrive").exists():
        from google.colab import drive

        drive.mount(str(DRIVE_MOUNT))
    root = DRIVE_MOUNT / "MyDrive" / folder
    root.mkdir(parents=True, exist_ok=True)
    return root


def kaggle_line() -> str:
    """Kaggle credentials: the environment, the token file, or Colab's secrets (copied to
    the environment); a line saying which."""
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return "Kaggle credentials from the environment"
    if (Path.home() / ".kaggle" / "kaggle.json").exists():
        return "Kaggle credentials from ~/.kaggle/kaggle.json"
    try:
        from google.colab import userdata

        secrets = {k: userdata.get(k) for k in ("KAGGLE_USERNAME", "KAGGLE_KEY")}
    except Exception:  # noqa: BLE001 - secret missing, or this notebook not allowed to read it
        return ("no Kaggle credentials (only DATA_DIR='kaggle' needs them): add KAGGLE_USERNAME "
                "and KAGGLE_KEY in Colab's Secrets (key icon) with notebook access on")
    os.environ.update(secrets)
    return "Kaggle credentials from Colab's secrets"


def prepare(repository: str, branch: str, *, drive: str = "", root: str = "") -> str:
    """The setup cell's one call; returns ROOT.

    Outside Colab: says so in one line and returns ``root`` unchanged. On Colab: updates and
    installs the clone, prints the GPU and the Kaggle credentials' source, and, with
    ``drive`` a folder name and ``root`` empty, returns that folder in My Drive.
    """
    if not on_colab():
        print(f"Not on Colab: nothing to set up (ROOT = {root or 'the repository'}).")
        return root
    project = clone_dir(repository)
    print(update_project(project, repository, branch), flush=True)
    print(install_project(project))
    print(gpu_line())
    print(kaggle_line())
    if drive and not root:
        root = str(drive_root(drive))
        print(f"ROOT = {root} (Google Drive): data, checkpoints and results survive a disconnect")
    else:
        where = "yours" if root else "the runtime disk; lost on disconnect"
        print(f"ROOT = {root or project} ({where})")
    return root
