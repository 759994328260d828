"""The preprocessing function and the parallel, resumable, atomic PNG cache."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

import helpers.data.preprocessing as prep
from helpers.analysis.plots import plot_preprocessing_examples
from helpers.config import Layout
from helpers.data.preprocessing import build_cache, center_crop, foreground_crop, preprocess, preview_pairs


def head_scan(h: int = 240, w: int = 320, box: tuple[int, int, int, int] = (40, 150, 100, 130)
              ) -> np.ndarray:
    """A dark MRI-like slice with a bright elliptical head at (top, left, height, width)."""
    img = np.full((h, w), 8, np.uint8)
    top, left, bh, bw = box
    cv2.ellipse(img, (left + bw // 2, top + bh // 2), (bw // 2, bh // 2), 0, 0, 360, 180, -1)
    cv2.putText(img, "L", (5, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 255, 1)  # a marker to ignore
    return img


@pytest.mark.parametrize("shape, size", [((224, 224), 224), ((300, 500), 32), ((41, 37), 64)])
@pytest.mark.parametrize("crop_mode", ["center", "foreground"])
def test_preprocess_returns_a_square_uint8_image(shape, size, crop_mode) -> None:
    img = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    out = preprocess(img, crop_mode, size)
    assert out.shape == (size, size) and out.dtype == np.uint8


def test_preprocess_is_pure_and_rejects_colour() -> None:
    img = head_scan()
    copy = img.copy()
    assert np.array_equal(preprocess(img, "center", 32), preprocess(img, "center", 32))
    assert np.array_equal(img, copy)
    with pytest.raises(ValueError, match="grayscale"):
        preprocess(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="crop_mode"):
        preprocess(img, "middle")


def test_preprocess_raises_local_contrast() -> None:
    yy, xx = np.indices((200, 200))
    faint = (100 + 8 * ((yy // 25 + xx // 25) % 2)).astype(np.uint8)  # low-contrast blocks
    assert preprocess(faint, "center", 64).std() > 1.8 * faint.std()


def test_center_crop_is_a_centred_square_of_095_the_shorter_side() -> None:
    img = np.tile(np.arange(200, dtype=np.uint8), (100, 1))  # pixel value = column
    crop = center_crop(img)
    assert crop.shape == (95, 95)
    assert crop[0, 0] == (200 - 95) // 2 and crop[0, -1] == (200 - 95) // 2 + 94


def test_foreground_crop_frames_the_head_with_a_margin() -> None:
    top, left, bh, bw = 40, 150, 100, 130
    crop = foreground_crop(head_scan(box=(top, left, bh, bw)))
    assert crop.shape[0] == crop.shape[1] == pytest.approx(bw * 1.1, abs=3)
    bright = np.argwhere(crop > 100)
    assert len(bright) == pytest.approx(np.pi * bh * bw / 4, rel=0.05)  # the whole head is inside
    assert bright.min(0).tolist() > [0, 0] and bright.max(0).tolist() < [crop.shape[0] - 1] * 2


def test_foreground_crop_falls_back_to_the_centre_without_a_head() -> None:
    blank = np.full((120, 160), 30, np.uint8)
    assert np.array_equal(foreground_crop(blank), center_crop(blank))


def chest_rows(data_dir: Path) -> pd.DataFrame:
    return pd.DataFrame({"path": sorted(p.relative_to(data_dir).as_posix()
                                        for p in data_dir.rglob("*.jpeg"))})


def test_cache_writes_every_image_then_skips_them(tiny_chest: Path, tmp_path: Path) -> None:
    layout = Layout.of("chest_xray", tmp_path)
    df = chest_rows(tiny_chest)
    report = build_cache(layout, df, tiny_chest, 32, "center", workers=2)
    assert (report.written, report.skipped, report.failed) == (len(df), 0, [])
    files = [layout.cache_path(p, 32) for p in df["path"]]
    img = cv2.imread(str(files[0]), cv2.IMREAD_UNCHANGED)
    assert img.shape == (32, 32) and img.dtype == np.uint8
    stamps = [f.stat().st_mtime_ns for f in files]
    again = build_cache(layout, df, tiny_chest, 32, "center", workers=2)
    assert (again.written, again.skipped) == (0, len(df)) and again.seconds < 1
    assert [f.stat().st_mtime_ns for f in files] == stamps
    whole = files[0].read_bytes()
    files[0].write_bytes(whole[: len(whole) // 2])  # a PNG cut short by a crash
    stale = Path(f"{files[1]}.4242.tmp")
    stale.write_bytes(b"")  # the debris of a killed writer
    repaired = build_cache(layout, df, tiny_chest, 32, "center", workers=2)
    assert (repaired.written, repaired.skipped) == (1, len(df) - 1)
    assert files[0].read_bytes() == whole and not stale.exists()
    pairs = preview_pairs(df.assign(label=df["path"].str.split("/").str[2]), tiny_chest, layout, 32)
    assert len(pairs) == 4 and plot_preprocessing_examples(pairs).axes[-1].images


def test_interrupted_cache_leaves_no_partial_png(tiny_chest: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    layout = Layout.of("chest_xray", tmp_path)
    df = chest_rows(tiny_chest).head(3)

    def interrupted(src: str, dst: str) -> None:
        assert Path(src).stat().st_size > 0  # the temporary file was written...
        raise KeyboardInterrupt  # ...and the run stops before the rename

    monkeypatch.setattr(prep.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_cache(layout, df, tiny_chest, 32, "center", workers=1)
    assert [p for p in layout.processed_dir(32).rglob("*") if p.is_file()] == []
    monkeypatch.undo()
    assert build_cache(layout, df, tiny_chest, 32, "center", workers=1).written == 3


def test_cache_reads_any_format_and_reports_bad_files(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    ramp = np.linspace(0, 65535, 64 * 48).reshape(48, 64).astype(np.uint16)
    Image.fromarray(ramp).save(data / "deep.png")  # 16-bit
    rgb = Image.fromarray(np.dstack([(ramp >> 8).astype(np.uint8)] * 3))
    rgb.convert("RGBA").save(data / "alpha.png")
    rgb.convert("P").save(data / "palette.png")
    rgb.save(data / "scan.tif")
    rgb.save(data / "png_named.jpg", format="PNG")
    (data / "notes.jpg").write_text("not an image")
    (data / "empty.jpg").write_bytes(b"")
    layout = Layout.of("mixed", tmp_path / "root")
    df = pd.DataFrame({"path": sorted(os.listdir(data))})
    report = build_cache(layout, df, data, 32, "foreground", workers=1)
    assert report.written == 5 and [rel for rel, _ in report.failed] == ["empty.jpg", "notes.jpg"]
    assert all(reason for _, reason in report.failed)
    for name in ("deep.png", "alpha.png", "palette.png", "scan.tif", "png_named.jpg"):
        out = cv2.imread(str(layout.cache_path(name, 32)), cv2.IMREAD_UNCHANGED)
        assert out.shape == (32, 32) and out.dtype == np.uint8 and out.std() > 10, name
    assert not layout.cache_path("notes.jpg", 32).exists()
