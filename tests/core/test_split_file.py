"""The split on disk checks itself: a damaged or edited split CSV, a missing or damaged
record, stops the run with one sentence naming the file, never a retrain on fewer rows."""

from __future__ import annotations

import json
import shutil

import pytest

from helpers.config import Layout
from helpers.data.arrays import load_arrays, read_split_rows
from helpers.data.preprocessing import complete_png
from helpers.data.split_file import file_facts, read_split_file
from helpers.errors import UserError


def test_the_record_holds_the_csv_rows_and_checksum(fresh_layout: Layout) -> None:
    df, record = read_split_file(fresh_layout)
    assert record["csv_rows"] == len(df) == 80
    assert record["csv_md5"] == file_facts(fresh_layout.split_csv.read_bytes())["csv_md5"]


def test_a_split_cut_short_is_never_trained_on(fresh_layout: Layout) -> None:
    lines = fresh_layout.split_csv.read_text().splitlines(keepends=True)
    fresh_layout.split_csv.write_text("".join(lines[: int(len(lines) * 0.6)]))
    with pytest.raises(UserError, match=r"does not match its record \(47 rows where 80.*"
                                        r"run notebook 02 again"):
        read_split_rows(fresh_layout, "train")
    with pytest.raises(UserError, match="does not match its record"):
        load_arrays(fresh_layout, "test", 32)


def test_an_edited_split_of_the_same_length_is_caught_by_its_checksum(fresh_layout: Layout) -> None:
    text = fresh_layout.split_csv.read_text()
    fresh_layout.split_csv.write_text(text.replace(",test,", ",train,", 1))
    with pytest.raises(UserError, match="another checksum"):
        read_split_rows(fresh_layout, "val")


def test_garbage_in_the_csv_names_the_file(fresh_layout: Layout) -> None:
    record = json.loads(fresh_layout.split_config.read_text())
    for key in ("csv_rows", "csv_md5"):  # a record an older version wrote
        record.pop(key)
    fresh_layout.split_config.write_text(json.dumps(record))
    read_split_rows(fresh_layout, "train")  # an older record is taken as it is
    fresh_layout.split_csv.write_text("\x00garbage;;\nnot,a,split\n")
    with pytest.raises(UserError, match=f"{fresh_layout.split_csv} is damaged.*notebook 02"):
        read_split_rows(fresh_layout, "train")


def test_a_csv_without_its_record_says_so(fresh_layout: Layout) -> None:
    fresh_layout.split_config.unlink()
    with pytest.raises(UserError, match="has no record chest_xray.json|has no record toy.json"):
        read_split_rows(fresh_layout, "train")


def test_a_damaged_record_names_the_file(fresh_layout: Layout) -> None:
    fresh_layout.split_config.write_text('{"dataset": "toy", "cou')
    with pytest.raises(UserError, match=f"{fresh_layout.split_config} is damaged"):
        read_split_rows(fresh_layout, "train")


def test_a_damaged_cached_image_is_removed_and_named_so_notebook_02_rebuilds_it(
        fresh_layout: Layout) -> None:
    processed = fresh_layout.root / "data" / "processed"
    shared = processed.resolve()
    processed.unlink()  # a cache of its own: the shared one stays whole for other tests
    shutil.copytree(shared, processed)
    image = fresh_layout.cache_path(read_split_rows(fresh_layout, "val")["path"][0], 32)
    image.write_bytes(image.read_bytes()[:200])  # cut short, as by a crash
    assert not complete_png(image)
    with pytest.raises(UserError, match=f"could not be read \\(first: {image}\\) and were "
                                        "removed: run notebook 02"):
        load_arrays(fresh_layout, "val", 32)
    assert not image.exists()  # so notebook 02 writes it again instead of skipping it
