"""The setup cell as Colab runs it: a stand-in ``google.colab``, a local bare repository
as the address, a temporary folder as Google Drive, pip recorded instead of run."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import nbformat
import pytest

from helpers.config import REPO_ROOT
from helpers.notebook import colab
from helpers.notebook.contract import SETUP_SOURCE

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}).stdout.strip()


@pytest.fixture
def bare_repository(tmp_path: Path) -> Path:
    """A bare repository holding one commit with the project's requirements and pyproject."""
    work = tmp_path / "work"
    work.mkdir()
    for name in ("requirements.txt", "pyproject.toml"):
        (work / name).write_bytes((REPO_ROOT / name).read_bytes())
    git("init", "-q", "-b", "main", cwd=work)
    git("add", ".", cwd=work)
    git("commit", "-q", "-m", "tiny", cwd=work)
    bare = tmp_path / "imbalance-med.git"
    git("clone", "-q", "--bare", str(work), str(bare))
    return bare


@pytest.fixture
def fake_colab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """``google.colab`` with ``drive.mount`` linking a temporary folder as My Drive and
    ``userdata`` holding Kaggle secrets; pip calls recorded; a fresh working folder."""
    drive_folder = tmp_path / "my_drive"
    drive_folder.mkdir()
    record: dict[str, Any] = {"pip": [], "mounts": []}

    def mount(path: str) -> None:
        record["mounts"].append(path)
        Path(path).mkdir(parents=True)
        (Path(path) / "MyDrive").symlink_to(drive_folder)

    secrets = {"KAGGLE_USERNAME": "someone", "KAGGLE_KEY": "k3y"}
    google = types.ModuleType("google")
    google_colab = types.ModuleType("google.colab")
    google_colab.drive = types.SimpleNamespace(mount=mount)
    google_colab.userdata = types.SimpleNamespace(get=secrets.__getitem__)
    google.colab = google_colab
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", google_colab)
    monkeypatch.setattr(colab, "DRIVE_MOUNT", tmp_path / "content" / "drive")
    monkeypatch.setattr(colab, "_pip", lambda *args: record["pip"].append(list(args)))
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for key in secrets:
        monkeypatch.delenv(key, raising=False)
    content = tmp_path / "content"
    content.mkdir()
    monkeypatch.chdir(content)
    record["drive"] = drive_folder
    return record


def run_setup_cell(repository: Path) -> dict[str, Any]:
    """Execute the notebooks' setup cell with the parameters' defaults and this address."""
    namespace = {"REPOSITORY": str(repository), "BRANCH": "main", "DRIVE": "imbalance-med",
                 "ROOT": ""}
    exec(SETUP_SOURCE, namespace)
    return namespace


def test_setup_cell_on_colab_clones_installs_and_puts_root_on_drive(
        bare_repository: Path, fake_colab: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    namespace = run_setup_cell(bare_repository)
    clone = Path.cwd() / "imbalance-med"
    assert git("rev-parse", "HEAD", cwd=clone) == git("rev-parse", "main", cwd=bare_repository)
    assert namespace["PROJECT"] == str(clone) and str(clone) in sys.path
    requirements, editable = fake_colab["pip"]
    named = " ".join(requirements)
    for framework in colab.NOT_ON_COLAB:  # never reinstalled...
        assert f" {framework}>" not in f" {named}" and f" {framework}=" not in f" {named}"
    assert "torchmetrics>=1.4" in requirements and "numpy>=1.26" in requirements
    constraints = Path(requirements[requirements.index("-c") + 1]).read_text()
    assert "torch==" in constraints  # ... and pinned where installed
    assert editable == ["install", "-q", "--no-deps", "-e", str(clone)]
    assert namespace["ROOT"] == str(colab.DRIVE_MOUNT / "MyDrive" / "imbalance-med")
    assert Path(namespace["ROOT"]).resolve() == fake_colab["drive"] / "imbalance-med"
    assert os.environ["KAGGLE_USERNAME"] == "someone" and os.environ["KAGGLE_KEY"] == "k3y"
    out = capsys.readouterr().out
    assert "Kaggle credentials from Colab's secrets" in out and "GPU" in out

    start = time.perf_counter()  # a second run: a quick update, nothing installed or mounted
    again = run_setup_cell(bare_repository)
    assert time.perf_counter() - start < 5
    assert len(fake_colab["pip"]) == 2 and len(fake_colab["mounts"]) == 1
    assert again["ROOT"] == namespace["ROOT"]
    assert "up to date" in capsys.readouterr().out


def test_a_new_commit_is_pulled_on_the_next_run(bare_repository: Path, fake_colab: dict[str, Any],
                                                tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                ) -> None:
    run_setup_cell(bare_repository)
    work = tmp_path / "work"
    (work / "NEW").write_text("x")
    git("add", "NEW", cwd=work)
    git("commit", "-q", "-m", "new", cwd=work)
    git("push", "-q", str(bare_repository), "main", cwd=work)
    run_setup_cell(bare_repository)
    assert (Path.cwd() / "imbalance-med" / "NEW").exists()
    assert "Restart session" in capsys.readouterr().out
    assert len(fake_colab["pip"]) == 2  # same requirements: not installed again


def test_an_explicit_root_wins_over_drive(bare_repository: Path, fake_colab: dict[str, Any],
                                          tmp_path: Path) -> None:
    namespace = {"REPOSITORY": str(bare_repository), "BRANCH": "main", "DRIVE": "imbalance-med",
                 "ROOT": str(tmp_path / "mine")}
    exec(SETUP_SOURCE, namespace)
    assert namespace["ROOT"] == str(tmp_path / "mine") and not fake_colab["mounts"]


def test_a_wrong_branch_is_one_sentence(bare_repository: Path, fake_colab: dict[str, Any]) -> None:
    with pytest.raises(colab.UserError, match="check REPOSITORY and BRANCH"):
        colab.prepare(str(bare_repository), "no-such-branch", drive="")


def test_outside_colab_the_setup_cell_says_so_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert "google.colab" not in sys.modules
    namespace = {"REPOSITORY": "https://github.com/x/y", "BRANCH": "main", "DRIVE": "d", "ROOT": ""}
    exec(SETUP_SOURCE, namespace)
    assert namespace["ROOT"] == "" and "PROJECT" not in namespace
    assert capsys.readouterr().out.strip().splitlines() == [
        "Not on Colab: nothing to set up (ROOT = the repository)."]


def test_every_notebook_carries_this_setup_cell() -> None:
    for path in sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        assert SETUP_SOURCE in [c.source for c in nb.cells], path.name


def test_the_full_opencv_of_colab_is_not_doubled_by_the_headless_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    versions = {"opencv-python": "4.12.0", "torch": "2.9.0"}
    monkeypatch.setattr(colab, "installed_version", versions.get)
    kept = colab.requirements_for_colab(REPO_ROOT)
    assert not any(r.startswith(("opencv-python-headless", "torch>", "jupyterlab")) for r in kept)
    assert "torchmetrics>=1.4" in kept and colab.pinned_frameworks() == ["torch==2.9.0"]
