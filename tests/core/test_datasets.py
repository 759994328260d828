"""Data acquisition: registry, Kaggle failures, discovery quirks, robust reading, the index."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import imagehash
import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageFile

from helpers.config import SAMPLE_DIR, Layout
from helpers.data.datasets import (
    EMPTY_FOLDER,
    INDEX_COLUMNS,
    REGISTRY,
    UnreadableImageError,
    chest_patient_id,
    find_files,
    get_spec,
    index_images,
    load_index,
    read_image,
    resolve_data_dir,
    save_index,
)
from helpers.errors import UserError

SAMPLE_JPEGS = sorted((SAMPLE_DIR / "chest_xray" / "train" / "NORMAL").iterdir())[:6]


def one_sentence(message: str) -> bool:
    return "\n" not in message and message.endswith(".") and len(message) < 600


def file_count(index: pd.DataFrame, skipped: pd.DataFrame) -> int:
    """Files accounted for: indexed + skipped (rows ending in '/' are empty folders)."""
    return len(index) + int((~skipped["path"].str.endswith("/")).sum())


# ---------------------------------------------------------------- registry

@pytest.mark.parametrize("name, patient", [
    ("person1_bacteria_1.jpeg", "person1"), ("person1_virus_6.jpeg", "person1"),
    ("IM-0115-0001.jpeg", "IM-0115"), ("NORMAL2-IM-0173-0001-0002.jpeg", "NORMAL2-IM-0173"),
    ("chest_xray/train/NORMAL/NORMAL2-IM-1427-0001.jpeg", "NORMAL2-IM-1427"),
    ("scan.png", None),
])
def test_chest_patient_id_follows_design_examples(name: str, patient: str | None) -> None:
    assert chest_patient_id(name) == patient


def test_registry_specs() -> None:
    assert set(REGISTRY) == {"chest_xray", "brain_tumor", "brain_mri"}
    chest = get_spec("chest_xray")
    assert chest.positive_class == "PNEUMONIA" and chest.labels == ["NORMAL", "PNEUMONIA"]
    assert chest.crop == "center"
    assert chest.kaggle_slug == "paultimothymooney/chest-xray-pneumonia" and chest.has_official_split
    mri = get_spec("brain_mri")
    assert mri.class_folders == {"glioma": "Tumor", "meningioma": "Tumor", "pituitary": "Tumor",
                                 "notumor": "Healthy"}
    assert (mri.positive_class, mri.crop, mri.patient_id) == ("Tumor", "foreground", None)
    assert get_spec("brain_tumor").labels == ["Brain Tumor", "Healthy"]
    assert get_spec("chest_xray", "NORMAL").positive_class == "NORMAL"


def test_get_spec_user_errors() -> None:
    with pytest.raises(UserError, match="POSITIVE_CLASS"):
        get_spec("my_scans")  # unregistered: the positive class is required
    with pytest.raises(UserError, match="not a label of chest_xray"):
        get_spec("chest_xray", "Tumor")
    with pytest.raises(UserError, match="not usable"):
        get_spec("../escape", "x")
    own = get_spec("my_scans", "sick")
    assert (own.positive_class, own.class_folders, own.kaggle_slug) == ("sick", None, None)


# ---------------------------------------------------------------- data dir and Kaggle

def test_resolve_data_dir_sample_and_folders(tmp_path: Path) -> None:
    layout = Layout.of("chest_xray", tmp_path)
    assert resolve_data_dir(get_spec("chest_xray"), layout, "") == SAMPLE_DIR
    assert resolve_data_dir(get_spec("chest_xray"), layout, str(tmp_path)) == tmp_path.resolve()
    with pytest.raises(UserError, match="no bundled sample of brain_tumor"):
        resolve_data_dir(get_spec("brain_tumor"), layout, "")
    with pytest.raises(UserError, match="does not exist") as err:
        resolve_data_dir(get_spec("chest_xray"), layout, tmp_path / "missing")
    assert one_sentence(str(err.value))
    (tmp_path / "archive.zip").write_bytes(b"PK")
    with pytest.raises(UserError, match="unzip it"):
        resolve_data_dir(get_spec("chest_xray"), layout, tmp_path / "archive.zip")
    with pytest.raises(UserError, match="no Kaggle source"):
        resolve_data_dir(get_spec("mine", "a"), layout, "kaggle")


@pytest.fixture
def offline_kaggle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No token file, no network (a dead proxy, so this holds on machines with a network)."""
    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "cache"))
    for var in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


@pytest.mark.parametrize("credentials", [None, ("junk", "0123456789abcdef")])
def test_kaggle_offline_is_one_sentence(offline_kaggle: Path, monkeypatch: pytest.MonkeyPatch,
                                        credentials: tuple[str, str] | None) -> None:
    if credentials:
        monkeypatch.setenv("KAGGLE_USERNAME", credentials[0])
        monkeypatch.setenv("KAGGLE_KEY", credentials[1])
    layout = Layout.of("chest_xray", offline_kaggle / "root")
    with pytest.raises(UserError) as err:  # a SystemExit would not be caught here
        resolve_data_dir(get_spec("chest_xray"), layout, "kaggle")
    message = str(err.value)
    assert one_sentence(message), message
    for needed in ("Could not reach Kaggle", "KAGGLE_USERNAME", "kaggle.json", "DATA_DIR",
                   "paultimothymooney/chest-xray-pneumonia"):
        assert needed in message
    assert not (layout.raw_dir / ".download_complete").exists()


@pytest.mark.parametrize("failure, expected", [
    (SystemExit(1), "did not accept the credentials"),
    (type("UnauthenticatedError", (Exception,), {})("no token"), "did not accept the credentials"),
    (ConnectionError("down"), "Could not reach Kaggle"),
    (RuntimeError("odd\nmulti-line"), "download of paultimothymooney/chest-xray-pneumonia failed"),
])
def test_kaggle_client_failures_become_user_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   failure: BaseException, expected: str) -> None:
    import kagglehub

    def fail(*args: object, **kwargs: object) -> str:
        raise failure
    monkeypatch.setattr(kagglehub, "dataset_download", fail)
    with pytest.raises(UserError, match=expected) as err:
        resolve_data_dir(get_spec("chest_xray"), Layout.of("chest_xray", tmp_path), "kaggle")
    assert one_sentence(str(err.value)) and "DATA_DIR" in str(err.value)


def test_kaggle_download_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import kagglehub

    calls = []

    def fake(handle: str, path: str | None = None, *, output_dir: str, **kw: object) -> str:
        calls.append((handle, output_dir))
        return output_dir
    monkeypatch.setattr(kagglehub, "dataset_download", fake)
    layout = Layout.of("brain_tumor", tmp_path)
    spec = get_spec("brain_tumor")
    assert resolve_data_dir(spec, layout, "kaggle") == layout.raw_dir
    assert resolve_data_dir(spec, layout, "KAGGLE") == layout.raw_dir  # already there: no call
    assert calls == [("preetviradiya/brian-tumor-dataset", str(layout.raw_dir))]


# ---------------------------------------------------------------- discovery

def test_discovery_copes_with_kaggle_archive_quirks(tmp_path: Path) -> None:
    """Nested copy chest_xray/chest_xray/, __MACOSX/, .DS_Store, Thumbs.db: no double count,
    nothing lost (a file only in the nested copy is kept)."""
    outer = tmp_path / "chest_xray"
    for split, label, src in (("train", "NORMAL", 0), ("train", "PNEUMONIA", 1), ("test", "NORMAL", 2),
                              ("test", "PNEUMONIA", 3), ("val", "NORMAL", 4), ("val", "PNEUMONIA", 5)):
        name = f"person{src}_bacteria_1.jpeg" if label == "PNEUMONIA" else f"IM-000{src}-0001.jpeg"
        for tree in (outer, outer / "chest_xray", tmp_path / "__MACOSX" / "chest_xray"):
            (tree / split / label).mkdir(parents=True, exist_ok=True)
            shutil.copy(SAMPLE_JPEGS[src], tree / split / label / name)
    only_nested = outer / "chest_xray" / "train" / "NORMAL" / "IM-0099-0001.jpeg"
    shutil.copy(SAMPLE_JPEGS[0], only_nested)
    (outer / "train" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (outer / "train" / "NORMAL" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (outer / "train" / "NORMAL" / "._IM-0000-0001.jpeg").write_bytes(b"\0\5\26\7")

    scan = find_files(get_spec("chest_xray"), tmp_path)
    assert len(scan.files) == 7
    assert all(not f.startswith(("chest_xray/chest_xray/", "__MACOSX")) for f in scan.files
               if f != "chest_xray/chest_xray/train/NORMAL/IM-0099-0001.jpeg")
    assert scan.ignored["nested duplicate copy (e.g. chest_xray/chest_xray/)"] == 6
    index, skipped = index_images(get_spec("chest_xray"), tmp_path)
    assert len(index) == 7 and skipped.empty
    row = index.set_index("path").loc["chest_xray/test/PNEUMONIA/person3_bacteria_1.jpeg"]
    assert (row.label, row.official_split, row.patient) == ("PNEUMONIA", "test", "person3")
    assert sorted(index["official_split"].unique()) == ["test", "train", "val"]


def test_sample_layout_is_not_mistaken_for_a_nested_copy() -> None:
    """data/sample/chest_xray/chest_xray/ has no outer copy: every image counts."""
    scan = find_files(get_spec("chest_xray"), SAMPLE_DIR)
    on_disk = [p for p in SAMPLE_DIR.rglob("*") if p.is_file() and not p.name.startswith(".")]
    assert len(scan.files) == len(on_disk) > 400 and not scan.ignored


# ---------------------------------------------------------------- reading images

def png_bytes(array: np.ndarray, mode: str | None = None, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    (Image.fromarray(array) if mode is None else Image.fromarray(array).convert(mode)).save(buf, format=fmt)
    return buf.getvalue()


def gradient(dtype: type = np.uint8, low: int = 0, high: int = 255) -> np.ndarray:
    return np.linspace(low, high, 24 * 32).reshape(24, 32).astype(dtype)


def test_pil_keeps_truncated_images_an_error() -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.mark.parametrize("mode", ["L", "P", "RGB", "RGBA", "LA", "1"])
def test_read_image_modes_give_8bit_grayscale(tmp_path: Path, mode: str) -> None:
    rgb = np.stack([gradient(), gradient()[::-1], np.full((24, 32), 90, np.uint8)], axis=-1)
    path = tmp_path / "x.png"
    path.write_bytes(png_bytes(rgb, mode))
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == (24, 32)
    expected = np.asarray(Image.open(path).convert("L"))
    assert np.array_equal(out, expected)


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_read_image_scales_16bit_by_range(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"x.{fmt.lower()}"
    path.write_bytes(png_bytes(gradient(np.uint16, 1000, 3000), fmt=fmt))
    assert Image.open(path).mode.startswith("I")
    out = read_image(path)
    assert out.dtype == np.uint8 and (out.min(), out.max()) == (0, 255)
    assert len(np.unique(out)) > 200  # scaled, not clipped to a few values


def test_read_image_by_content_not_extension(tmp_path: Path) -> None:
    path = tmp_path / "really_a_png.jpg"
    path.write_bytes(png_bytes(gradient()))
    assert np.array_equal(read_image(path), gradient())


@pytest.mark.parametrize("content, reason", [
    (b"", "empty file"), (b"hello, I am text", "not an image"),
    (SAMPLE_JPEGS[0].read_bytes()[:3000], "truncated"),
])
def test_read_image_rejects_bad_files_with_a_reason(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(UnreadableImageError, match=reason):
        read_image(path)


# ---------------------------------------------------------------- index on bad input

@pytest.fixture
def messy_folder(tmp_path: Path) -> Path:
    """A folder of your own: classes sick / well, an empty class folder, and every kind of
    bad file the issue names."""
    root = tmp_path / "messy"
    sick, well = root / "sick", root / "well"
    sick.mkdir(parents=True)
    well.mkdir()
    (root / "empty").mkdir()
    for i, src in enumerate(SAMPLE_JPEGS[:3]):
        shutil.copy(src, sick / f"case{i}.jpeg")
    (sick / "zero.jpg").write_bytes(b"")
    (sick / "truncated.jpg").write_bytes(SAMPLE_JPEGS[3].read_bytes()[:2500])
    (sick / "text.jpg").write_text("not an image\n")
    (sick / "notes.txt").write_text("junk\n")
    (sick / "scan16.tif").write_bytes(png_bytes(gradient(np.uint16, 0, 4000), fmt="TIFF"))
    rgb = np.stack([gradient(), gradient()[::-1], gradient()], axis=-1)
    for mode in ("L", "P", "RGBA"):
        (well / f"mode_{mode}.png").write_bytes(png_bytes(rgb, mode))
    (well / "png_named.jpg").write_bytes(png_bytes(gradient()[::-1]))
    (well / "deep16.png").write_bytes(png_bytes(gradient(np.uint16, 200, 60000)))
    (well / "scan.tif").write_bytes(png_bytes(gradient(), fmt="TIFF"))
    (well / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (well / "Thumbs.db").write_bytes(b"\xd0\xcf")
    (root / "__MACOSX" / "well").mkdir(parents=True)
    (root / "__MACOSX" / "well" / "._scan.tif").write_bytes(b"\0\5")
    (root / "README.md").write_text("# my scans\n")
    return root


def test_index_messy_folder_skips_each_bad_file_with_reason(messy_folder: Path) -> None:
    spec = get_spec("my_scans", "sick")
    index, skipped = index_images(spec, messy_folder)
    assert list(index.columns) == [*INDEX_COLUMNS, "thumbnail"]
    assert sorted(index["path"]) == index["path"].tolist()
    assert set(index["path"]) == {
        "sick/case0.jpeg", "sick/case1.jpeg", "sick/case2.jpeg", "sick/scan16.tif",
        "well/mode_L.png", "well/mode_P.png", "well/mode_RGBA.png", "well/png_named.jpg",
        "well/deep16.png", "well/scan.tif"}
    reasons = dict(zip(skipped["path"], skipped["reason"]))
    assert reasons.keys() == {"README.md", "empty/", "sick/notes.txt", "sick/text.jpg",
                              "sick/truncated.jpg", "sick/zero.jpg"}
    assert reasons["empty/"] == EMPTY_FOLDER
    assert reasons["sick/zero.jpg"].startswith("empty file")
    assert reasons["sick/truncated.jpg"].startswith("truncated")
    assert reasons["sick/text.jpg"].startswith("not an image")
    assert reasons["sick/notes.txt"].startswith("not an image")
    assert reasons["README.md"].startswith("outside the class folders")
    scan = find_files(spec, messy_folder)
    assert len(scan.files) == file_count(index, skipped) == 15
    meta = index.set_index("path")
    assert meta.loc["well/png_named.jpg", "format"] == "PNG"
    assert meta.loc["well/deep16.png", "mode"].startswith("I;16")
    assert meta.loc["sick/scan16.tif", "format"] == "TIFF"
    modes = meta.loc[["well/mode_L.png", "well/mode_P.png", "well/mode_RGBA.png"], "mode"]
    assert set(modes) == {"L", "P", "RGBA"}
    assert (index[["official_split", "patient"]] == "").all().all()
    assert index["md5"].str.fullmatch(r"[0-9a-f]{32}").all()
    for path, phash, mirror in index[["path", "phash", "phash_mirror"]].itertuples(index=False):
        gray = read_image(messy_folder / path)
        assert phash == str(imagehash.phash(Image.fromarray(gray)))
        assert mirror == str(imagehash.phash(Image.fromarray(gray[:, ::-1])))


def test_index_parallel_equals_serial(messy_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import helpers.data.datasets as data

    spec = get_spec("my_scans", "sick")
    serial = index_images(spec, messy_folder, workers=1)
    monkeypatch.setattr(data, "_MIN_FILES_FOR_PROCESSES", 0)
    parallel = index_images(spec, messy_folder, workers=2)
    pd.testing.assert_frame_equal(serial[0], parallel[0])
    pd.testing.assert_frame_equal(serial[1], parallel[1])


def test_index_stops_with_one_sentence(tmp_path: Path, messy_folder: Path) -> None:
    spec = get_spec("my_scans", "sick")
    cases = {"missing": (tmp_path / "nope", "does not exist")}
    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy(SAMPLE_JPEGS[0], flat / "a.jpeg")
    cases["no class folders"] = (flat, "no class sub-folders")
    single = tmp_path / "single" / "sick"
    single.mkdir(parents=True)
    shutil.copy(SAMPLE_JPEGS[0], single / "a.jpeg")
    cases["single class"] = (single.parent, "Only the class sick has images")
    (single.parent / "well").mkdir()  # an empty second class folder leaves one class
    cases["empty second class"] = (single.parent, "Only the class sick has images")
    broken = tmp_path / "broken"
    for label in ("sick", "well"):
        (broken / label).mkdir(parents=True)
        (broken / label / "x.jpg").write_bytes(b"")
    cases["nothing readable"] = (broken, "No readable images")
    hollow = tmp_path / "hollow"
    for label in ("sick", "well"):
        (hollow / label).mkdir(parents=True)
    cases["no images at all"] = (hollow, "No readable images.*empty class folder")
    for name, (folder, message) in cases.items():
        with pytest.raises(UserError, match=message) as err:
            index_images(spec, folder)
        assert one_sentence(str(err.value)), name
    with pytest.raises(UserError, match="POSITIVE_CLASS 'ill' is not one of the classes"):
        index_images(get_spec("my_scans", "ill"), messy_folder)
    shutil.copy(SAMPLE_JPEGS[1], messy_folder / "empty" / "c.jpeg")
    with pytest.raises(UserError, match="3 classes have images"):
        index_images(spec, messy_folder)
    with pytest.raises(UserError, match=r"No class folders \(NORMAL, PNEUMONIA\)"):
        index_images(get_spec("chest_xray"), messy_folder)


# ---------------------------------------------------------------- index on disk

def test_save_and_load_index(tiny_chest: Path, tmp_path: Path) -> None:
    layout = Layout.of("chest_xray", tmp_path)
    with pytest.raises(UserError, match="run notebook 01"):
        load_index(layout)
    spec = get_spec("chest_xray")
    index, skipped = index_images(spec, tiny_chest)
    index.loc[0, "phash"] = "0000000000001234"  # digits only: must stay a string
    save_index(layout, spec, tiny_chest, index, skipped)
    loaded = load_index(layout, data_dir=tiny_chest)
    pd.testing.assert_frame_equal(loaded, index, check_dtype=False)
    assert loaded.loc[0, "phash"] == "0000000000001234"
    assert loaded.attrs["data_dir"] == str(tiny_chest.resolve())
    with pytest.raises(UserError, match="run notebook 01 again"):
        load_index(layout, data_dir=tmp_path)
    (layout.reports("audit") / "thumbnails.npy").unlink()  # an index of an older version
    with pytest.raises(UserError, match="no near-copy groups or thumbnails"):
        load_index(layout)
