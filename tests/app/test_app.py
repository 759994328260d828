"""The Streamlit page through Streamlit's AppTest: no runs, choosing a run, good and bad
uploads, images too large or too small, the table to download. The page loads torch in
this process (the toy run is a PyTorch one): run_suites.py gives these tests a process of
their own."""

from __future__ import annotations

import io
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import write_toy_run
from PIL import Image
from streamlit.testing.v1 import AppTest

from helpers.analysis import gradcam
from helpers.config import SAMPLE_DIR

APP = str(Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py")
SAMPLE = SAMPLE_DIR / "chest_xray" / "test" / "PNEUMONIA" / "person113_bacteria_540.jpeg"


def page(root: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("APP_ROOT", str(root))
    return AppTest.from_file(APP, default_timeout=180).run()


def encoded(array: np.ndarray, fmt: str) -> bytes:
    """``array`` as the bytes of a ``fmt`` file (uint16: a 16-bit grey image)."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def two_runs(toy_run_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The toy run and a copy of it named as seed 43 (the same weights)."""
    root = tmp_path_factory.mktemp("two_runs")
    shutil.copytree(toy_run_root, root, dirs_exist_ok=True)
    runs = root / "results" / "chest_xray" / "runs"
    first = next(runs.iterdir())
    second = runs / first.name.replace("seed42", "seed43")
    shutil.copytree(first, second)
    config = json.loads((second / "config.json").read_text())
    config.update(seed=43, run=second.name)
    (second / "config.json").write_text(json.dumps(config))
    return root


def test_without_runs_the_page_says_how_to_get_one(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    at = page(tmp_path, monkeypatch)
    assert not at.exception
    assert len(at.warning) == 1 and "No trained run found" in at.warning[0].value
    assert "make demo" in at.warning[0].value
    assert not at.file_uploader


def test_choosing_a_run_shows_its_model_card(two_runs: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    at = page(two_runs, monkeypatch)
    assert not at.exception
    choice = at.sidebar.selectbox(key="run")
    assert choice.options == [
        "chest_xray / pytorch-baseline-scratch-seed42",
        "chest_xray / pytorch-baseline-scratch-seed43"]
    card = at.sidebar.table[0].value["value"]
    assert card["seed"] == "42" and card["scenario"] == "baseline" and card["image size"] == "32 px"
    metrics = json.loads(next((two_runs / "results/chest_xray/runs").iterdir())
                         .joinpath("metrics.json").read_text())
    assert card["threshold (validation, Youden)"] == str(round(metrics["youden_threshold"], 4))
    at.sidebar.selectbox(key="run").select(1).run()
    assert at.sidebar.table[0].value["value"]["seed"] == "43"
    assert "Drop one or more images" in at.info[0].value


def test_good_and_bad_uploads_then_the_table_to_download(toy_run_root: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    at = page(toy_run_root, monkeypatch)
    ramp = np.linspace(0, 65535, 80 * 60, dtype=np.uint16).reshape(60, 80)
    rgba = np.random.default_rng(0).integers(0, 256, (50, 70, 4), dtype=np.uint8)
    at.file_uploader(key="uploads").set_value([
        ("xray.jpeg", SAMPLE.read_bytes(), "image/jpeg"),
        ("ramp16.png", encoded(ramp, "PNG"), "image/png"),
        ("colour.tiff", encoded(rgba, "TIFF"), "image/tiff"),
        ("notes.txt", b"not an image at all", "text/plain"),
        ("empty.png", b"", "image/png"),
        ("huge.png", bytes(21 * 2**20), "image/png"),
    ]).run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 3 and all("\n" not in e for e in errors)
    assert errors[0].startswith("notes.txt: not usable: not an image")
    assert errors[1].startswith("empty.png: not usable: empty file")
    assert errors[2].startswith("huge.png: too large (21.0 MB")
    probabilities = [float(m.value) for m in at.metric if m.label.startswith("Probability")]
    labels = [m.value for m in at.metric if m.label.startswith("Label at threshold")]
    assert len(probabilities) == 3 and all(0 <= p <= 1 for p in probabilities)
    assert set(labels) <= {"NORMAL", "PNEUMONIA"} and len(labels) == 3
    table = at.dataframe[0].value
    assert list(table["file"]) == ["xray.jpeg", "ramp16.png", "colour.tiff", "notes.txt",
                                   "empty.png", "huge.png"]
    assert at.download_button[0].label == "Download the table as CSV"
    downloaded = pd.read_csv(io.StringIO(at.session_state["table_csv"]), keep_default_na=False)
    assert list(downloaded["file"]) == list(table["file"])
    good = downloaded.iloc[:3]
    assert good["probability"].astype(float).tolist() == pytest.approx(probabilities, abs=1e-3)
    assert good["label"].tolist() == labels
    scores = pd.to_numeric(good["region_score"])  # empty: a map without positive evidence
    assert scores.dropna().between(0, 1).all()
    assert downloaded["message"].iloc[3:].tolist() == [e.split(": ", 1)[1] for e in errors]
    # the training preprocessing: the sample's probability is the one the run recorded
    recorded = pd.read_csv(next(toy_run_root.glob("results/*/runs/*/predictions.csv")))
    assert float(good["probability"].iloc[0]) == pytest.approx(
        recorded.loc[recorded["path"].str.endswith(SAMPLE.name), "probability"].item(), abs=1e-4)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow's, at 89.5 MP
def test_a_huge_image_is_refused_and_a_tiny_one_labelled_with_a_warning(
        toy_run_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    huge = io.BytesIO()
    Image.new("I;16", (13_000, 13_000)).save(huge, "PNG")  # 169 megapixels in ~330 KB
    assert len(huge.getvalue()) < gradcam.MAX_UPLOAD_MB * 2**20
    ramp = np.linspace(0, 65535, 300 * 400, dtype=np.uint16).reshape(300, 400)
    at = page(toy_run_root, monkeypatch)
    at.file_uploader(key="uploads").set_value([
        ("huge16.png", huge.getvalue(), "image/png"),
        ("ramp16.png", encoded(ramp, "PNG"), "image/png"),
        ("dot.png", encoded(np.full((1, 1), 128, np.uint8), "PNG"), "image/png"),
        ("strip.png", encoded(np.zeros((15, 200), np.uint8), "PNG"), "image/png"),
    ]).run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "huge16.png: too large (13,000 x 13,000 pixels = 169.0 megapixels; "
        f"at most {gradcam.MAX_UPLOAD_PIXELS / 1e6:g} megapixels)."]
    labels = [m.value for m in at.metric if m.label.startswith("Label at threshold")]
    assert len(labels) == 3 and set(labels) <= {"NORMAL", "PNEUMONIA"}
    size = gradcam.load_run(next(toy_run_root.glob("results/*/runs/*"))).image_size
    assert 15 < size / 2 <= 200  # the strip's short side is under half the input size
    warnings = [w.value for w in at.warning]
    assert warnings == [
        f"dot.png: 1 x 1 pixels, far below the model's {size} px input: the label is unreliable.",
        f"strip.png: 200 x 15 pixels, far below the model's {size} px input: "
        "the label is unreliable."]
    table = at.dataframe[0].value
    assert list(table["file"]) == ["ramp16.png", "dot.png", "strip.png", "huge16.png"]
    assert list(table["message"]) == ["", *(w.split(": ", 1)[1] for w in warnings),
                                      at.error[0].value.split(": ", 1)[1]]


def test_a_run_of_the_other_framework_is_computed_in_a_process_of_its_own(
        toy_run_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(toy_run_root, tmp_path, dirs_exist_ok=True)
    write_toy_run(tmp_path, "keras")
    at = page(tmp_path, monkeypatch)
    assert at.sidebar.selectbox(key="run").options == [
        "chest_xray / keras-baseline-scratch-seed42",
        "chest_xray / pytorch-baseline-scratch-seed42"]
    upload = ("xray.jpeg", SAMPLE.read_bytes(), "image/jpeg")
    at.sidebar.selectbox(key="run").select(1).run()
    at.file_uploader(key="uploads").set_value([upload]).run()  # torch, in this process
    assert "torch" in sys.modules and not at.exception
    at.sidebar.selectbox(key="run").select(0).run()  # keras: in a worker process
    assert not at.exception and "tensorflow" not in sys.modules
    keras_run = tmp_path / "results" / "chest_xray" / "runs" / "keras-baseline-scratch-seed42"
    recorded = pd.read_csv(keras_run / "predictions.csv")
    expected = recorded.loc[recorded["path"].str.endswith(SAMPLE.name), "probability"].item()
    shown = [float(m.value) for m in at.metric if m.label.startswith("Probability")]
    assert shown == [pytest.approx(expected, abs=1e-3)]
