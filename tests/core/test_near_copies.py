"""Near copies on data we make: copies of bundled sample images, each kind, grouped with
their originals; different patients of the chest sample never grouped; a planted copy found
by the leakage check after a split."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from helpers.config import SAMPLE_DIR
from helpers.data.datasets import chest_patient_id, get_spec, index_images, read_image
from helpers.data.near_copies import (
    COPY_KINDS,
    LeakageWarning,
    calibration,
    calibration_table,
    candidate_pairs,
    check_summary,
    copy_groups,
    describe_check,
    distance,
    leakage_check,
    make_copy,
    nearest_other,
    thumbnail,
)

THRESHOLD = get_spec("chest_xray").near_copy_distance
TRAIN = SAMPLE_DIR / "chest_xray" / "train"


def sample_images(n: int) -> dict[str, np.ndarray]:
    """n bundled training films of n different patients, both classes: {path: grey image}."""
    out: dict[str, np.ndarray] = {}
    files = sorted((TRAIN / "NORMAL").iterdir()) + sorted((TRAIN / "PNEUMONIA").iterdir())
    patients: set[str] = set()
    for f in files[::7]:
        patient = chest_patient_id(f.name)
        if patient not in patients and len(out) < n:
            patients.add(patient)
            out[f"{f.parent.name}/{f.name}"] = read_image(f)
    return out


@pytest.fixture(scope="module")
def originals() -> dict[str, np.ndarray]:
    return sample_images(8)


def test_each_kind_of_copy_is_grouped_with_its_original_and_only_with_it(originals) -> None:
    names, thumbs = [], []
    for name, gray in originals.items():
        names.append(name)
        thumbs.append(thumbnail(gray))
        for kind in COPY_KINDS:
            names.append(f"{name} {kind}")
            thumbs.append(thumbnail(make_copy(gray, kind)))
    groups = copy_groups(candidate_pairs(np.stack(thumbs)), len(thumbs), THRESHOLD)
    of = dict(zip(names, groups))
    for name in originals:
        assert all(of[f"{name} {kind}"] == of[name] for kind in COPY_KINDS), name
    assert len({of[name] for name in originals}) == len(originals)  # patients stay apart


def test_copies_measure_close_to_zero_and_different_films_far(originals) -> None:
    grays = list(originals.values())
    assert distance(thumbnail(grays[0]), thumbnail(grays[0])) == pytest.approx(0, abs=1e-6)
    for kind in COPY_KINDS:
        assert distance(thumbnail(grays[1]), thumbnail(make_copy(grays[1], kind))) < THRESHOLD
    assert distance(thumbnail(grays[0]), thumbnail(grays[1])) > 2 * THRESHOLD
    with pytest.raises(ValueError, match="unknown copy kind"):
        make_copy(grays[0], "rotated")


def test_copies_are_found_among_many_similar_films() -> None:
    """Forty films of the sample plus a shifted and a marked copy of two of them: exactly
    those two pairs are grouped, so no two patients' films join."""
    films = sample_images(40)
    grays = list(films.values())
    thumbs = np.stack([thumbnail(g) for g in grays]
                      + [thumbnail(make_copy(grays[3], "shifted")),
                         thumbnail(make_copy(grays[17], "marked"))])
    groups = pd.Series(copy_groups(candidate_pairs(thumbs), len(thumbs), THRESHOLD))
    shared = groups[groups.duplicated(keep=False)]
    assert sorted(shared.index) == [3, 17, 40, 41]
    assert groups[3] == groups[40] and groups[17] == groups[41]


def test_no_two_patients_of_the_bundled_sample_share_a_near_copy_group() -> None:
    index, _ = index_images(get_spec("chest_xray"), SAMPLE_DIR)
    patients = index.groupby("near_copy")["patient"].nunique()
    assert len(index) > 400 and patients.max() == 1
    assert index["nearest_other"].min() > THRESHOLD  # every other child's film lies beyond it


def test_nearest_other_skips_the_same_patient_and_the_same_file() -> None:
    pairs = pd.DataFrame({"a": [0, 0, 1], "b": [1, 2, 2], "distance": [0.01, 0.3, 0.2]})
    index = pd.DataFrame({"md5": ["x", "y", "z"], "patient": ["p1", "p1", ""]})
    assert list(nearest_other(pairs, index)) == [0.3, 0.2, 0.2]


def test_calibration_sets_made_copies_against_the_nearest_other_images(originals) -> None:
    grays = list(originals.values())[:2]
    calib = calibration(grays, np.array([0.4, np.nan, 0.05]))
    table = calibration_table(calib, THRESHOLD).set_index("kind")
    assert list(table.index) == [*COPY_KINDS, "nearest other image"]
    assert (table.loc[list(COPY_KINDS), "n"] == 2).all()
    assert (table.loc[list(COPY_KINDS), "within_threshold_%"] == 100).all()
    assert table.loc["nearest other image", "n"] == 2  # the NaN (no candidate) left out
    assert table.loc["nearest other image", "within_threshold_%"] == 50


def test_the_leakage_check_finds_a_planted_copy_in_test(originals) -> None:
    grays = list(originals.items())
    rows = [(name, "train" if i < 5 else "test", thumbnail(g)) for i, (name, g) in enumerate(grays)]
    rows.append(("planted.jpeg", "test", thumbnail(make_copy(grays[2][1], "cropped"))))
    index = pd.DataFrame({"path": [r[0] for r in rows], "thumbnail": [r[2] for r in rows]})
    split = pd.DataFrame({"path": index["path"], "split": [r[1] for r in rows],
                          "label": [p.split("/")[0] for p in index["path"]]})
    check = leakage_check(split, index, THRESHOLD)
    assert len(check) == 4 and set(check["split"]) == {"test"}
    first = check.iloc[0]
    assert (first["path"], first["nearest_train"]) == ("planted.jpeg", grays[2][0])
    assert list(check["within_threshold"]) == [True, False, False, False]
    summary = check_summary(check, THRESHOLD)
    assert summary.loc[0, "within_threshold"] == 1
    with pytest.warns(LeakageWarning, match="near copies of training images"):
        describe_check(summary)
    clean = check_summary(check.iloc[1:], THRESHOLD)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "0 within" in describe_check(clean)
