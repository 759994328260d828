"""The audit of the image index (notebook 01): classes, formats, sizes, skipped files, exact
and near duplicates (perceptual hashes, mirror images included), near copies and their
calibration, patients, a summary, the example figures and their files under
``layout.reports("audit")``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from helpers.config import Layout
from helpers.data import near_copies
from helpers.data.datasets import OFFICIAL_SPLITS, audit_dir, read_image
from helpers.io import save_json

# ---------------------------------------------------------------- duplicates

def near_duplicate_groups(phashes: Sequence[str], max_distance: int = 4,
                          mirrored: Sequence[str] | None = None) -> list[int]:
    """A cluster id per row: rows whose perceptual hashes differ in at most ``max_distance``
    bits are linked (with ``mirrored``, the hashes of the left-right flipped images, a row is
    also linked to the flipped copies of others), clusters are the connected components; ids
    number clusters in order of their first row (0, 1, ...), so a singleton has its own id."""
    if len(phashes) == 0:
        return []
    words = _hash_words(phashes)
    pairs = [_close_pairs(words, words, max_distance)]
    if mirrored is not None:
        pairs.append(_close_pairs(words, _hash_words(mirrored), max_distance))
    rows, cols = (np.concatenate(p) for p in zip(*pairs))
    return near_copies.connected_groups(len(words), rows, cols)


def _hash_words(phashes: Sequence[str]) -> np.ndarray:
    """64-bit hex hashes as uint64 (one word per row)."""
    if any(len(h) != 16 for h in phashes):
        raise ValueError("near_duplicate_groups expects 64-bit perceptual hashes (16 hex digits)")
    return np.array([int(h, 16) for h in phashes], dtype=np.uint64)


def _close_pairs(a: np.ndarray, b: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows of a, rows of b) of all pairs within ``max_distance`` bits.

    Hand-written XOR + popcount in row blocks of ~16M pairs: scikit-learn's hamming radius
    search takes ~40 s for 20,000 hashes where this takes ~1.5 s.
    """
    block = max(1, 2**24 // len(b))
    rows, cols = [], []
    for start in range(0, len(a), block):
        r, c = np.nonzero(np.bitwise_count(a[start:start + block, None] ^ b[None, :]) <= max_distance)
        rows.append(r + start)
        cols.append(c)
    return np.concatenate(rows), np.concatenate(cols)


# ---------------------------------------------------------------- audit

def audit(index_df: pd.DataFrame, skipped_df: pd.DataFrame, max_distance: int = 4,
          copy_distance: float = 0.10) -> dict[str, pd.DataFrame]:
    """Audit tables: classes, formats, modes, sizes, skipped, exact and near duplicates,
    near copies (the index's ``near_copy`` groups, made at ``copy_distance``), patients (when
    known) and a summary (item, value)."""
    tables = {
        "classes": _class_table(index_df),
        "formats": _count_table(index_df, "format"),
        "modes": _count_table(index_df, "mode"),
        "sizes": _size_table(index_df),
        "skipped": skipped_df.reset_index(drop=True),
        "exact_duplicates": _group_table(index_df, index_df.groupby("md5", sort=False).ngroup().to_numpy()),
        "near_duplicates": _group_table(index_df, np.asarray(near_duplicate_groups(
            index_df["phash"].tolist(), max_distance, index_df["phash_mirror"].tolist()), dtype=int)),
        "near_copies": _group_table(index_df, pd.factorize(index_df["near_copy"])[0]),
    }
    if (index_df["patient"] != "").any():
        tables["patients"] = _patient_table(index_df)
    tables["summary"] = _summary(index_df, tables, max_distance, copy_distance)
    return tables


def _with_total(table: pd.DataFrame) -> pd.DataFrame:
    table = table.copy()
    table["total"] = table.sum(axis=1)
    return table


def _class_table(index_df: pd.DataFrame) -> pd.DataFrame:
    """Images per label (per official split when there is one) and each label's share."""
    if (index_df["official_split"] != "").any():
        table = pd.crosstab(index_df["label"], index_df["official_split"])
        table = _with_total(table[[s for s in OFFICIAL_SPLITS if s in table]])
    else:
        table = index_df["label"].value_counts().sort_index().to_frame("total")
    table["share_%"] = (100 * table["total"] / table["total"].sum()).round(1)
    return table.rename_axis("label").reset_index()


def _count_table(index_df: pd.DataFrame, column: str) -> pd.DataFrame:
    """Images per value of ``column`` and label."""
    return _with_total(pd.crosstab(index_df[column], index_df["label"])).reset_index()


def _size_table(index_df: pd.DataFrame) -> pd.DataFrame:
    """Width and height (min, median, max) per label and overall, and how many distinct sizes."""
    def summary(df: pd.DataFrame) -> dict[str, Any]:
        out: dict[str, Any] = {"images": len(df)}
        for dim in ("width", "height"):
            out |= {f"{dim}_{stat}": df[dim].agg(stat) for stat in ("min", "median", "max")}
        out["distinct_sizes"] = len(df.groupby(["width", "height"]))
        return out
    rows = [{"label": label, **summary(df)} for label, df in index_df.groupby("label")]
    return pd.DataFrame(rows + [{"label": "all", **summary(index_df)}])


def _group_table(index_df: pd.DataFrame, cluster: np.ndarray) -> pd.DataFrame:
    """The rows of clusters holding more than one image: group (1, 2, ... in row order), size,
    path, label, official split, md5, phash."""
    sizes = np.bincount(cluster, minlength=1)
    keep = sizes[cluster] > 1
    df = index_df.loc[keep, ["path", "label", "official_split", "md5", "phash"]].copy()
    df.insert(0, "group", pd.factorize(cluster[keep])[0] + 1)
    df.insert(1, "size", sizes[cluster[keep]])
    return df.sort_values(["group", "path"], ignore_index=True)


def _patient_table(index_df: pd.DataFrame) -> pd.DataFrame:
    """Patients per label and how their images spread (chest X-ray)."""
    known = index_df[index_df["patient"] != ""]
    per = known.groupby(["label", "patient"]).size()
    table = per.groupby(level="label").agg(patients="size", images="sum", max_images_per_patient="max",
                                           patients_with_several_images=lambda s: int((s > 1).sum()))
    return table.reset_index()


def _spread(groups: pd.DataFrame, column: str) -> int:
    """Groups whose images carry more than one value of ``column``."""
    return int((groups.groupby("group")[column].nunique() > 1).sum()) if len(groups) else 0


def _summary(index_df: pd.DataFrame, tables: dict[str, pd.DataFrame], max_distance: int,
             copy_distance: float) -> pd.DataFrame:
    exact, near, copies = tables["exact_duplicates"], tables["near_duplicates"], tables["near_copies"]
    items: dict[str, Any] = {"images": len(index_df), "skipped": len(tables["skipped"])}
    items |= {f"class_{label}": int(n) for label, n in index_df["label"].value_counts().sort_index().items()}
    items |= {
        "exact_duplicate_groups": int(exact["group"].nunique()),
        "exact_duplicate_extra_copies": len(exact) - int(exact["group"].nunique()),
        "exact_duplicate_groups_across_labels": _spread(exact, "label"),
        "near_duplicate_max_distance": max_distance,
        "near_duplicate_groups": int(near["group"].nunique()),
        "images_in_near_duplicate_groups": len(near),
        "largest_near_duplicate_group": int(near["size"].max()) if len(near) else 0,
        "near_duplicate_groups_across_labels": _spread(near, "label"),
        "near_copy_distance": copy_distance,
        "near_copy_groups": int(copies["group"].nunique()),
        "images_in_near_copy_groups": len(copies),
        "near_copy_groups_of_different_files": int((copies.groupby("group")["md5"].nunique() > 1).sum()),
        "near_copy_groups_across_labels": _spread(copies, "label"),
    }
    if (index_df["official_split"] != "").any():
        items["exact_duplicate_groups_across_official_splits"] = _spread(exact, "official_split")
        items["near_duplicate_groups_across_official_splits"] = _spread(near, "official_split")
        items["near_copy_groups_across_official_splits"] = _spread(copies, "official_split")
    if "patients" in tables:
        items["patients"] = int(tables["patients"]["patients"].sum())
    return pd.DataFrame({"item": list(items), "value": pd.Series(list(items.values()), dtype=object)})


def describe_audit(tables: Mapping[str, pd.DataFrame]) -> str:
    """The audit's findings in two sentences, for the end of notebook 01."""
    s = dict(zip(tables["summary"]["item"], tables["summary"]["value"]))
    classes = ", ".join(f"{k[len('class_'):]} {v}" for k, v in s.items() if k.startswith("class_"))
    patients = f" from {s['patients']} patients" if "patients" in s else ""
    distance = s["near_duplicate_max_distance"]
    near = f"within {distance} bits" if distance else "identical"
    return (f"{s['images']} readable images{patients} ({classes}), {s['skipped']} skipped. "
            f"{s['exact_duplicate_groups']} groups of byte-identical files "
            f"({s['exact_duplicate_extra_copies']} extra copies, {s['exact_duplicate_groups_across_labels']} "
            f"with conflicting labels) and {s['near_duplicate_groups']} near-duplicate groups "
            f"(perceptual hashes of the image or its mirror image {near}: "
            f"{s['images_in_near_duplicate_groups']} images, largest {s['largest_near_duplicate_group']}, "
            f"{s['near_duplicate_groups_across_labels']} across labels) and "
            f"{s['near_copy_groups_of_different_files']} groups of near copies of different files "
            f"(aligned thumbnails within {s['near_copy_distance']:g}: {s['images_in_near_copy_groups']} "
            f"images in groups, {s['near_copy_groups_across_labels']} across labels): the split "
            "keeps each group on one side.")


def copy_calibration(index_df: pd.DataFrame, data_dir: Path, n: int = 100,
                     seed: int = 42) -> pd.DataFrame:
    """``near_copies.calibration`` on ``n`` random images of the index (read again) against
    every image's ``nearest_other`` distance."""
    picked = index_df.sample(min(n, len(index_df)), random_state=seed)
    grays = [read_image(Path(data_dir) / p) for p in picked["path"]]
    return near_copies.calibration(grays, index_df["nearest_other"].to_numpy(dtype=float))


def example_images(index_df: pd.DataFrame, data_dir: Path, per_class: int = 6,
                   seed: int = 42) -> dict[str, list[tuple[str, np.ndarray]]]:
    """A few random images per label, read as grayscale: {label: [(file name, image)]}."""
    out = {}
    for label, rows in index_df.groupby("label"):
        picked = rows.sample(min(per_class, len(rows)), random_state=seed).sort_values("path")
        out[str(label)] = [(Path(p).name, read_image(Path(data_dir) / p)) for p in picked["path"]]
    return out


def duplicate_examples(groups: pd.DataFrame, data_dir: Path, max_groups: int = 4,
                       per_group: int = 4) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Images of a few duplicate groups (a ``near_duplicates`` / ``exact_duplicates`` audit
    table), groups of different files first: {"group g (labels)": [(name + md5, image)]}."""
    distinct = groups.groupby("group")["md5"].nunique().sort_values(ascending=False, kind="stable")
    out = {}
    for g in distinct.index[:max_groups]:
        rows = groups[groups["group"] == g].head(per_group)
        key = f"group {g} ({', '.join(sorted(rows['label'].unique()))})"
        out[key] = [(f"{Path(p).name}\n{m[:6]}", read_image(Path(data_dir) / p))
                    for p, m in zip(rows["path"], rows["md5"])]
    return out


def save_audit(layout: Layout, tables: Mapping[str, pd.DataFrame], figures: Mapping[str, Any]) -> Path:
    """Write every table as <name>.csv, the summary also as summary.json, and every figure
    as <name>.png under ``layout.reports("audit")``; returns that folder."""
    from helpers.analysis.plots import save_figure

    out = audit_dir(layout)
    out.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        table.to_csv(out / f"{name}.csv", index=False)
    summary = tables["summary"]
    save_json({k: (v.item() if isinstance(v, np.generic) else v)
               for k, v in zip(summary["item"], summary["value"])}, out / "summary.json")
    for name, fig in figures.items():
        save_figure(fig, out / f"{name}.png")
    return out
