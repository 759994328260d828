"""Data acquisition (notebook 01): dataset registry, Kaggle download, file discovery,
a robust image reader and the image index (its audit: ``helpers.data.audit``).

The index (one row per readable image) is written under ``layout.reports("audit")`` so
that later phases read it with :func:`load_index` instead of decoding every file again.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import imagehash
import numpy as np
import pandas as pd
from joblib import Parallel, cpu_count, delayed
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm  # plain text bar: works in papermill without ipywidgets

from helpers.config import SAMPLE_DIR, Layout
from helpers.data import kaggle, near_copies
from helpers.errors import UserError
from helpers.io import read_json, save_json

INDEX_COLUMNS = ["path", "label", "official_split", "patient", "md5", "phash", "phash_mirror",
                 "near_copy", "nearest_other", "width", "height", "format", "mode", "bytes"]
THUMBNAIL = "thumbnail"  # in memory only: the near-copy thumbnails live in thumbnails.npy
_NUMBER_COLUMNS = ("near_copy", "nearest_other", "width", "height", "bytes")
SKIPPED_COLUMNS = ["path", "reason"]
OFFICIAL_SPLITS = ("train", "val", "test")
SYSTEM_FILES = frozenset({"thumbs.db", "ehthumbs.db", "desktop.ini"})  # compared lower-case
SYSTEM_DIRS = frozenset({"__MACOSX"})
EMPTY_FOLDER = "empty class folder (no files)"
_MIN_FILES_FOR_PROCESSES = 1000  # starting workers (~2 s) costs what ~1,000 files take on one core
_SCALE_BLOCK = 2**20  # values of a high-bit-depth image scaled per float64 block (8 MB)
_CHEST_PATIENT = re.compile(r"^(person\d+|(?:NORMAL2-)?IM-\d+)")


# ---------------------------------------------------------------- registry

def chest_patient_id(filename: str) -> str | None:
    """Patient of a Kermany chest X-ray: the leading ``personN`` or ``[NORMAL2-]IM-NNNN``."""
    match = _CHEST_PATIENT.match(Path(filename).name)
    return match.group(1) if match else None


@dataclass(frozen=True)
class DatasetSpec:
    """How one data set lies on disk and which of its two labels is the disease."""

    name: str
    positive_class: str
    kaggle_slug: str | None = None
    # class folder name -> binary label; None: every sub-folder of the data folder is a class
    class_folders: Mapping[str, str] | None = None
    patient_id: Callable[[str], str | None] | None = None
    crop: str = "center"  # "center" (chest X-ray) or "foreground" (MRI)
    has_official_split: bool = False  # train/val/test folders name an official split
    expected_layout: str = "<data dir>/<class>/<image>, one sub-folder per class"
    # perceptual-hash bits (of 64) within which two images count as near-duplicates; films of
    # different children can be 2-4 bits apart, so chest_xray links identical hashes only
    near_duplicate_distance: int = 4
    # near-copy distance (helpers.data.near_copies) within which two images are one picture,
    # calibrated per data set (docs/splits.md): made copies of chest films measure under 0.05
    # (one cropped film in 100: 0.198), films of different children 0.147 and more; the
    # brain tumor set's real copies reach 0.154, so it uses 0.16
    near_copy_distance: float = 0.10

    @property
    def labels(self) -> list[str] | None:
        """The two binary labels, or None until the folder of an unregistered set is read."""
        return sorted(set(self.class_folders.values())) if self.class_folders else None


REGISTRY: dict[str, DatasetSpec] = {
    "chest_xray": DatasetSpec(
        "chest_xray", "PNEUMONIA", kaggle_slug="paultimothymooney/chest-xray-pneumonia",
        class_folders={"NORMAL": "NORMAL", "PNEUMONIA": "PNEUMONIA"},
        patient_id=chest_patient_id, crop="center", has_official_split=True,
        expected_layout="chest_xray/{train,val,test}/{NORMAL,PNEUMONIA}/<image>",
        near_duplicate_distance=0),
    "brain_tumor": DatasetSpec(
        "brain_tumor", "Brain Tumor", kaggle_slug="preetviradiya/brian-tumor-dataset",
        class_folders={"Brain Tumor": "Brain Tumor", "Healthy": "Healthy"}, crop="foreground",
        expected_layout="Brain Tumor Data Set/{Brain Tumor,Healthy}/<image>",
        near_copy_distance=0.16),
    "brain_mri": DatasetSpec(
        "brain_mri", "Tumor", kaggle_slug="hghdhygf/brain-tumor-mri-image-dataset",
        class_folders={"glioma": "Tumor", "meningioma": "Tumor", "pituitary": "Tumor",
                       "notumor": "Healthy"}, crop="foreground",
        expected_layout="<...>/{glioma,meningioma,notumor,pituitary}/<image>"),
}


def get_spec(name: str, positive_class: str | None = None) -> DatasetSpec:
    """The registered data set ``name``, or any folder with one sub-folder per class.

    For a folder of your own, ``positive_class`` (the disease class folder) is required; it
    is checked against the classes found when the folder is indexed.
    """
    if not name or not re.fullmatch(r"[\w.-]+", name):
        raise UserError(f"Dataset name {name!r} is not usable: use letters, digits, '_', '-' "
                        f"(e.g. one of {', '.join(REGISTRY)}).")
    if name in REGISTRY:
        spec = REGISTRY[name]
        if positive_class in (None, "", spec.positive_class):
            return spec
        if positive_class not in spec.labels:
            raise UserError(f"POSITIVE_CLASS {positive_class!r} is not a label of {name}: "
                            f"use one of {', '.join(spec.labels)} (default {spec.positive_class}).")
        return replace(spec, positive_class=positive_class)
    if not positive_class:
        raise UserError(f"{name!r} is not a registered data set ({', '.join(REGISTRY)}): for "
                        "your own folder with one sub-folder per class, also pass POSITIVE_CLASS "
                        "(-p POSITIVE_CLASS=<name of the disease class folder>).")
    return DatasetSpec(name, positive_class)


# ---------------------------------------------------------------- where the data is

def resolve_data_dir(spec: DatasetSpec, layout: Layout, data_dir: str | os.PathLike) -> Path:
    """The folder to read: "" = bundled sample (chest_xray only), "kaggle" = download into
    ``layout.raw_dir`` (skipped when already there), anything else = that folder, read in place."""
    text = str(data_dir).strip()
    if not text:
        if spec.name != "chest_xray":
            raise UserError(f"There is no bundled sample of {spec.name}: pass DATA_DIR (--data-dir) "
                            "= the folder holding it, or DATA_DIR=kaggle to download it.")
        if not SAMPLE_DIR.is_dir():
            raise UserError(f"The bundled sample {SAMPLE_DIR} is missing: restore data/sample "
                            "from the repository (git checkout data/sample) or pass DATA_DIR.")
        return SAMPLE_DIR
    if text.lower() == "kaggle":
        if spec.kaggle_slug is None:
            raise UserError(f"{spec.name} has no Kaggle source: pass its folder as DATA_DIR (--data-dir).")
        return kaggle.download(spec.kaggle_slug, layout.raw_dir)
    path = Path(text).expanduser().resolve()
    if path.is_file():
        raise UserError(f"DATA_DIR {path} is a file: unzip it and pass the folder that holds "
                        "the images as DATA_DIR (--data-dir).")
    if not path.is_dir():
        raise UserError(f"The data folder {path} does not exist: check DATA_DIR (--data-dir), or "
                        "leave it empty for the bundled sample or set it to kaggle.")
    return path


# ---------------------------------------------------------------- discovery

@dataclass
class FileScan:
    """The files under a data folder: candidates to index and what was ignored."""

    root: Path
    class_folders: dict[str, str]  # class folder name -> label
    files: list[str] = field(default_factory=list)  # POSIX paths relative to root, sorted
    empty_folders: list[str] = field(default_factory=list)  # class folders with no file at all
    ignored: Counter = field(default_factory=Counter)  # reason -> count (not images, not counted)


def _is_system(name: str, is_dir: bool) -> bool:
    """Hidden files, macOS resource forks, Windows thumbnail caches."""
    return name.startswith(".") or (name in SYSTEM_DIRS if is_dir else name.lower() in SYSTEM_FILES)


def _walk(root: Path) -> tuple[list[str], list[str], Counter]:
    """All non-system files and folders under ``root`` (relative POSIX paths, sorted)."""
    files, dirs, ignored = [], [], Counter()
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        for name in [d for d in dirnames if _is_system(d, True)]:
            ignored["system folder (__MACOSX, hidden)"] += 1
            dirnames.remove(name)
        dirs += [(rel / d).as_posix() for d in dirnames]
        for name in filenames:
            if _is_system(name, False):
                ignored["system file (.DS_Store, Thumbs.db, hidden)"] += 1
            else:
                files.append((rel / name).as_posix())
    return sorted(files), sorted(dirs), ignored


def _nested_copy(rel: str, root_name: str, existing: set[str]) -> bool:
    """True when ``rel`` lies in a folder named like its parent (``chest_xray/chest_xray/``)
    and the same file exists one level up: the Kaggle zip's duplicate tree, outer copy wins."""
    parts = rel.split("/")
    for i in range(len(parts) - 1):
        parent = root_name if i == 0 else parts[i - 1]
        if parts[i] == parent and "/".join(parts[:i] + parts[i + 1:]) in existing:
            return True
    return False


def _entries(folder: Path) -> list[Path]:
    return [e for e in folder.iterdir() if not _is_system(e.name, e.is_dir())]


def _unwrap(root: Path) -> Path:
    """Descend through wrapper folders: a single sub-folder that itself holds only folders."""
    while True:
        entries = _entries(root)
        if len(entries) != 1 or not entries[0].is_dir() or any(e.is_file() for e in _entries(entries[0])):
            return root
        root = entries[0]


def _class_folders(spec: DatasetSpec, data_dir: Path) -> dict[str, str]:
    """The registered folder -> label map, or the sub-folders of a folder of your own."""
    if spec.class_folders is not None:
        return dict(spec.class_folders)
    root = _unwrap(data_dir)
    names = sorted(d.name for d in root.iterdir() if d.is_dir() and not _is_system(d.name, True))
    if not names:
        raise UserError(f"{data_dir} has no class sub-folders: put the images in one sub-folder "
                        f"per class (e.g. {data_dir}/<class>/<image>) and pass that folder.")
    return {n: n for n in names}


def class_folder_of(rel: str, class_folders: Mapping[str, str]) -> str | None:
    """The nearest enclosing folder of ``rel`` that names a class, or None."""
    for part in reversed(rel.split("/")[:-1]):
        if part in class_folders:
            return part
    return None


def find_files(spec: DatasetSpec, data_dir: Path) -> FileScan:
    """Every candidate file under ``data_dir``, without system files or the nested copy."""
    data_dir = _existing_dir(data_dir)
    folders = _class_folders(spec, data_dir)
    files, dirs, ignored = _walk(data_dir)
    existing = set(files)
    kept = [f for f in files if not _nested_copy(f, data_dir.name, existing)]
    if len(kept) < len(files):
        ignored["nested duplicate copy (e.g. chest_xray/chest_xray/)"] += len(files) - len(kept)
    with_files = {"/".join(f.split("/")[:i]) for f in files for i in range(1, f.count("/") + 1)}
    class_dirs = [d for d in dirs if d.rsplit("/", 1)[-1] in folders]
    if not class_dirs:
        raise UserError(f"No class folders ({', '.join(folders)}) under {data_dir}: pass the "
                        f"folder that holds the unzipped data set, laid out as {spec.expected_layout}.")
    empty = [d for d in class_dirs if d not in with_files]
    return FileScan(data_dir, folders, kept, empty, ignored)


def _existing_dir(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"The data folder {path} does not exist: check DATA_DIR (--data-dir).")
    return path


# ---------------------------------------------------------------- reading images

class UnreadableImageError(ValueError):
    """A file that is not a decodable image; the message is the short reason."""


def read_image(path: str | os.PathLike) -> np.ndarray:
    """The image at ``path`` as 8-bit grayscale (H x W uint8), whatever its extension says.

    JPEG, PNG, TIFF, BMP; modes 1, L, LA, P, RGB, RGBA, CMYK, 16-bit and 32-bit integer or
    float (scaled to 0-255 by the image's own range). Raises UnreadableImageError for empty,
    truncated, corrupt or non-image files.
    """
    return _decode(Path(path).read_bytes())[0]


def decode_image(data: bytes) -> np.ndarray:
    """The bytes of an image file as 8-bit grayscale, as ``read_image`` reads a file."""
    return _decode(data)[0]


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) of the image in ``data`` from its header alone (Pillow's ``open``
    decodes no pixels); raises UnreadableImageError as ``decode_image`` does."""
    with _opened(data) as img:
        return img.size


@contextmanager
def _opened(data: bytes) -> Iterator[Image.Image]:
    """The image in ``data`` with its header read; a failure, then or inside the block, as
    UnreadableImageError with the short reason."""
    if not data:
        raise UnreadableImageError("empty file (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as img:
            yield img
    except UnidentifiedImageError:
        raise UnreadableImageError("not an image (content not recognised)") from None
    except Image.DecompressionBombError as exc:
        raise UnreadableImageError(f"too large to decode safely ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - a damaged file can make a decoder raise anything
        reason = "truncated image" if "truncated" in str(exc).lower() else "corrupt image"
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise UnreadableImageError(f"{reason} ({detail})") from None


def _decode(data: bytes) -> tuple[np.ndarray, str, str, tuple[int, int]]:
    """Decode bytes: (grayscale array, format, original mode, (width, height))."""
    with _opened(data) as img:
        img.load()  # decodes fully; truncation raises (LOAD_TRUNCATED_IMAGES is False)
        return _to_gray(img), str(img.format), img.mode, img.size


def _to_gray(img: Image.Image) -> np.ndarray:
    """8-bit grayscale: colour via ITU-R 601 luma, high bit depths scaled by min..max."""
    if img.mode in ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr"):
        return np.asarray(img.convert("L"))
    if img.mode.startswith(("I", "F")):  # I;16, I;16B, I (32-bit), F
        return _scaled_to_8bit(np.asarray(img))
    return np.asarray(img.convert("RGB").convert("L"))


def _scaled_to_8bit(values: np.ndarray) -> np.ndarray:
    """``values`` (H x W) mapped by their own min..max onto 0-255, a block of rows at a time.

    By hand rather than ``cv2.normalize``, which moves some pixels of a 16-bit image by one
    level: these are the numbers of one whole-image float64 pass (those the caches were built
    with), without a float64 copy of the image.
    """
    low, high = float(values.min()), float(values.max())
    out = np.zeros(values.shape, np.uint8)
    if high > low:
        scale = 255.0 / (high - low)
        rows = max(1, _SCALE_BLOCK // max(1, values.shape[1]))
        for start in range(0, values.shape[0], rows):
            block = values[start:start + rows].astype(np.float64)
            out[start:start + rows] = np.round((block - low) * scale)
    return out


# ---------------------------------------------------------------- index

def _index_file(path: str) -> dict[str, Any] | str:
    """Read one file once: its index fields, or the reason it cannot be used."""
    try:
        data = Path(path).read_bytes()
        gray, fmt, mode, (width, height) = _decode(data)
    except (UnreadableImageError, OSError) as exc:
        return str(exc)
    phash, phash_mirror = perceptual_hashes(gray)
    return {"md5": hashlib.md5(data).hexdigest(), "phash": phash, "phash_mirror": phash_mirror,
            "width": width, "height": height, "format": fmt, "mode": mode, "bytes": len(data),
            THUMBNAIL: near_copies.thumbnail(gray)}


def perceptual_hashes(gray: np.ndarray) -> tuple[str, str]:
    """imagehash.phash of the image and of its left-right mirror image, as hex strings.

    Both come from one 32 x 32 LANCZOS thumbnail, the size phash itself resizes to (its
    hash_size 8 x highfreq_factor 4), which gives the same hashes for less work.
    """
    small = Image.fromarray(gray).resize((32, 32), Image.Resampling.LANCZOS)
    return (str(imagehash.phash(small)),
            str(imagehash.phash(small.transpose(Image.Transpose.FLIP_LEFT_RIGHT))))


def _run_parallel(paths: list[str], workers: int | None) -> list[dict[str, Any] | str]:
    """``_index_file`` over ``paths`` on all cores (processes), in order, with a progress bar."""
    n_jobs = workers or cpu_count()
    if len(paths) < _MIN_FILES_FOR_PROCESSES:
        n_jobs = 1
    results = Parallel(n_jobs=n_jobs, return_as="generator", batch_size=32)(
        delayed(_index_file)(p) for p in paths)
    return list(tqdm(results, total=len(paths), desc="indexing", unit="file"))


def index_images(spec: DatasetSpec, data_dir: str | os.PathLike,
                 workers: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read every candidate file once: (index, skipped), both sorted by path.

    ``index`` has INDEX_COLUMNS and the thumbnails (column ``thumbnail``): ``near_copy``
    numbers the near-copy groups (images within ``spec.near_copy_distance`` of each other),
    ``nearest_other`` is each image's distance to its nearest other file of another patient
    (where known). ``skipped`` has path and reason for every file found but not
    indexed (files found = indexed + skipped); class folders without any file are listed too,
    with a path ending in "/". Stops with a UserError unless exactly two labels have images.
    """
    scan = find_files(spec, Path(data_dir))
    rows, skipped, jobs = [], [(d + "/", EMPTY_FOLDER) for d in scan.empty_folders], []
    for rel in scan.files:
        folder = class_folder_of(rel, scan.class_folders)
        if folder is None:
            skipped.append((rel, f"outside the class folders ({', '.join(scan.class_folders)})"))
        else:
            jobs.append((rel, scan.class_folders[folder]))
    results = _run_parallel([str(scan.root / rel) for rel, _ in jobs], workers)
    for (rel, label), result in zip(jobs, results):
        if isinstance(result, str):
            skipped.append((rel, result))
        else:
            rows.append({"path": rel, "label": label, **_file_meta(spec, rel), **result})
    print(_scan_note(scan, len(rows), len(skipped)))
    index = pd.DataFrame(rows, columns=INDEX_COLUMNS + [THUMBNAIL]).sort_values("path", ignore_index=True)
    if len(index):
        pairs = near_copies.candidate_pairs(np.stack(index[THUMBNAIL]), workers=workers)
        index["near_copy"] = near_copies.copy_groups(pairs, len(index), spec.near_copy_distance)
        index["nearest_other"] = near_copies.nearest_other(pairs, index).round(4)
    skipped_df = pd.DataFrame(skipped, columns=SKIPPED_COLUMNS).sort_values("path", ignore_index=True)
    _check_labels(spec, scan, index, skipped_df)
    return index, skipped_df


def _file_meta(spec: DatasetSpec, rel: str) -> dict[str, str]:
    """Official split (chest: the train/val/test folder) and patient id, "" when none."""
    parts = rel.split("/")[:-1]
    split = next((p for p in reversed(parts) if p in OFFICIAL_SPLITS), "") if spec.has_official_split else ""
    patient = (spec.patient_id(rel) if spec.patient_id else None) or ""
    return {"official_split": split, "patient": patient}


def _scan_note(scan: FileScan, indexed: int, skipped: int) -> str:
    ignored = "; ".join(f"{n} {why}" for why, n in sorted(scan.ignored.items()) if n)
    return (f"{len(scan.files)} files found under {scan.root}: {indexed} indexed, "
            f"{skipped} skipped" + (f"; ignored {ignored}" if ignored else ""))


def _check_labels(spec: DatasetSpec, scan: FileScan, index: pd.DataFrame, skipped: pd.DataFrame) -> None:
    """Exactly two labels with images, the positive class among them, or one sentence."""
    found = sorted(index["label"].unique())
    where = f"{scan.root} (expected {spec.expected_layout})"
    if not found:
        why = f"{len(skipped)} files/folders skipped, e.g. {skipped.iloc[0].path}: {skipped.iloc[0].reason}" \
            if len(skipped) else "no files at all"
        raise UserError(f"No readable images in {where}: {why}.")
    if len(found) == 1:
        raise UserError(f"Only the class {found[0]} has images in {where}: the pipeline needs two "
                        "classes, so add the other class folder or pass the right DATA_DIR.")
    if len(found) > 2:
        raise UserError(f"{len(found)} classes have images in {scan.root} ({', '.join(found)}): the "
                        "pipeline is binary, so keep exactly two class sub-folders.")
    if spec.positive_class not in found:
        raise UserError(f"POSITIVE_CLASS {spec.positive_class!r} is not one of the classes found in "
                        f"{scan.root}: use {found[0]!r} or {found[1]!r}.")


# ---------------------------------------------------------------- on disk

def audit_dir(layout: Layout) -> Path:
    return layout.reports("audit")


def save_index(layout: Layout, spec: DatasetSpec, data_dir: Path,
               index_df: pd.DataFrame, skipped_df: pd.DataFrame) -> Path:
    """Write index.csv, thumbnails.npy (in index order), skipped.csv and index.json (where the
    data came from) for later phases."""
    out = audit_dir(layout)
    out.mkdir(parents=True, exist_ok=True)
    index_df[INDEX_COLUMNS].to_csv(out / "index.csv", index=False)
    np.save(out / "thumbnails.npy", np.stack(index_df[THUMBNAIL]).astype(np.uint8))
    skipped_df.to_csv(out / "skipped.csv", index=False)
    save_json({"dataset": spec.name, "data_dir": str(Path(data_dir).resolve()),
               "positive_class": spec.positive_class, "labels": sorted(index_df["label"].unique()),
               "kaggle_slug": spec.kaggle_slug, "crop": spec.crop,
               "near_copy_distance": spec.near_copy_distance,
               "images": len(index_df), "skipped": len(skipped_df)}, out / "index.json")
    return out / "index.csv"


def load_index(layout: Layout, data_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """The index notebook 01 wrote (INDEX_COLUMNS and the thumbnails, sorted by path;
    index.json in ``.attrs``).

    With ``data_dir``, also checks that the index was built from that folder.
    """
    path = audit_dir(layout) / "index.csv"
    if not path.is_file():
        raise UserError(f"No image index for {layout.dataset} at {path}: run notebook 01 "
                        "(01_download_data) first with the same DATASET, DATA_DIR and ROOT.")
    text_columns = [c for c in INDEX_COLUMNS if c not in _NUMBER_COLUMNS]
    df = pd.read_csv(path, dtype={c: str for c in text_columns}, keep_default_na=False)
    thumbs_path = path.with_name("thumbnails.npy")
    thumbs = np.load(thumbs_path) if thumbs_path.is_file() else None
    if thumbs is None or "near_copy" not in df or len(thumbs) != len(df):
        raise UserError(f"The index at {path} has no near-copy groups or thumbnails (an older "
                        "version made it): run notebook 01 again with the same DATASET and ROOT.")
    df[THUMBNAIL] = list(thumbs)
    info_path = path.with_suffix(".json")
    info = read_json(info_path, "run notebook 01 again") if info_path.is_file() else {}
    if data_dir is not None and info.get("data_dir") != str(Path(data_dir).resolve()):
        raise UserError(f"The index at {path} was built from {info.get('data_dir')}, not {data_dir}: "
                        "run notebook 01 again with this DATA_DIR.")
    df.attrs.update(info)
    return df
