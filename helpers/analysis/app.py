"""The Streamlit page of the series (``make app``): pick a trained run, drop images, see the
probability, the label at the run's validation-chosen threshold and the Grad-CAM overlay.

The runs are read from ``<root>/results/*/runs/`` (root: ``$APP_ROOT``, else the
repository). Only the chosen run's framework is imported into this process; should a run
of the other framework be chosen later, its maps are computed in a process of its own.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import streamlit as st

from helpers.analysis import gradcam
from helpers.config import REPO_ROOT
from helpers.errors import UserError

ROOT_ENV = "APP_ROOT"
DISPLAY = 256  # px at which images and overlays are shown
SMALL_SHARE = 0.5  # a side under this share of the run's input size: the label is unreliable
COLUMNS = ["file", "probability", "label", "threshold", "region_score", "run", "message"]


def results_root() -> Path:
    """Where the runs are looked for: ``$APP_ROOT``, else the repository."""
    return Path(os.environ.get(ROOT_ENV) or REPO_ROOT)


def analyse(run: gradcam.TrainedRun, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM maps and probabilities of preprocessed images under ``run``: in this process
    unless the other framework is loaded here already."""
    others = [fw for fw, package in gradcam.FRAMEWORK_PACKAGES.items()
              if fw != run.framework and package in sys.modules]
    if others:
        return gradcam.maps_in_subprocess(run.framework, [run.run_dir], images)[str(run.run_dir)]
    return gradcam.framework_module(run.framework).maps_and_probabilities(run.run_dir, images)


def _enlarged(image: np.ndarray) -> np.ndarray:
    return cv2.resize(image, (DISPLAY, DISPLAY), interpolation=cv2.INTER_LINEAR)


def _choose_run(runs: list[gradcam.TrainedRun]) -> gradcam.TrainedRun:
    """The run picked in the sidebar, with its model card under it."""
    labels = [f"{r.config.get('dataset')} / {r.name}" for r in runs]
    index = st.sidebar.selectbox("Trained run", range(len(runs)), format_func=labels.__getitem__,
                                 key="run")
    run = runs[index]
    st.sidebar.subheader("Model card")
    card = pd.DataFrame({"value": [str(v) for v in run.card().values()]}, index=run.card())
    st.sidebar.table(card)
    return run


def small_image_note(gray: np.ndarray, image_size: int) -> str:
    """A warning for an image far below the model's input size (a side under
    ``SMALL_SHARE`` of ``image_size``), else an empty string."""
    height, width = gray.shape
    if min(height, width) >= SMALL_SHARE * image_size:
        return ""
    return (f"{width} x {height} pixels, far below the model's {image_size} px input: "
            f"the label is unreliable.")


def _read(files: list, run: gradcam.TrainedRun
          ) -> tuple[list[dict], list[tuple[str, np.ndarray, str]]]:
    """Table rows of the files that cannot be used (said in a line each) and the
    (name, preprocessed image, warning or '') of those that can."""
    bad, good = [], []
    for upload in files:
        try:
            gray = gradcam.decode_upload(upload.getvalue())
        except UserError as error:
            st.error(f"{upload.name}: {error}")
            bad.append({"file": upload.name, "run": run.name, "message": str(error)})
            continue
        good.append((upload.name, gradcam.prepare(gray, run),
                     small_image_note(gray, run.image_size)))
    return bad, good


def _show(run: gradcam.TrainedRun, good: list[tuple[str, np.ndarray, str]]) -> list[dict]:
    """Probability, label (with its warning, if any) and overlay of each usable image; their
    table rows."""
    images = np.stack([image for _, image, _ in good])
    with st.spinner(f"Grad-CAM of {len(images)} image(s) with {run.name}"):
        maps, probs = analyse(run, images)
    scores = gradcam.region_scores(maps, images, run.crop)
    positive = run.config.get("positive_class", run.classes[1])
    rows = []
    for (name, image, note), cam, prob, score in zip(good, maps, probs, scores):
        label = run.classes[int(prob >= run.threshold)]
        left, middle, right = st.columns([1, 1, 1])
        left.image(_enlarged(image), caption=f"{name}, preprocessed ({run.image_size} px)")
        middle.image(gradcam.overlay(_enlarged(image), cv2.resize(cam, (DISPLAY, DISPLAY))),
                     caption="Grad-CAM (last convolutional stage)")
        right.markdown(f"**{name}**")
        right.metric(f"Probability of {positive}", f"{prob:.3f}")
        right.metric(f"Label at threshold {run.threshold:.3f}", label)
        if note:
            right.warning(f"{name}: {note}")
        right.caption("The map is empty: no evidence for the positive class." if np.isnan(score)
                      else f"Share of the map inside the expected region: {score:.2f}")
        rows.append({"file": name, "probability": round(float(prob), 4), "label": label,
                     "threshold": round(run.threshold, 4), "region_score": round(float(score), 3),
                     "run": run.name, "message": note})
    return rows


def main() -> None:
    """The page."""
    st.set_page_config(page_title="See what the model sees", layout="wide")
    st.title("See what the model sees")
    root = results_root()
    runs = gradcam.find_runs(root)
    if not runs:
        st.warning(f"No trained run found under {root / 'results'}: train one with `make demo` "
                   f"(the bundled sample) or `python -m helpers.notebook.run`, then reload this page.")
        return
    run = _choose_run(runs)
    files = st.file_uploader("Images: JPEG, PNG or TIFF, any mode, 16-bit too",
                             accept_multiple_files=True, key="uploads")
    if not files:
        st.info("Drop one or more images to see the model's probability, label and Grad-CAM.")
        return
    bad, good = _read(files, run)
    rows = (_show(run, good) if good else []) + bad
    table = pd.DataFrame(rows, columns=COLUMNS)
    st.dataframe(table, hide_index=True)
    st.session_state["table_csv"] = csv = table.to_csv(index=False)
    st.download_button("Download the table as CSV", csv, file_name=f"{run.name}_uploads.csv",
                       mime="text/csv")
