"""The split on disk checks itself: a damaged or edited split CSV, a missing or damaged
record, stops the run with one sentence naming the file, never a retrain on fewer rows."""

from __future__ import annotations

import pytest

from helpers.config import Layout
from helpers.data.arrays import read_split_rows
from helpers.data.split_file import file_facts, read_split_file
from helpers.errors import UserError


def test_the_record_holds_the_csv_rows_and_checksum(fresh_layout: Layout) -> None:
    df, record = read_split_file(fresh_layout)
    assert record["csv_rows"] == len(df) == 80
    assert record["csv_md5"] == file_facts(fresh_layout.split_csv.read_bytes())["csv_md5"]


def test_an_edited_split_of_the_same_length_is_caught_by_its_checksum(fresh_layout: Layout) -> None:
    text = fresh_layout.split_csv.read_text()
    fresh_layout.split_csv.write_text(text.replace(",test,", ",train,", 1))
    with pytest.raises(UserError, match="another checksum"):
        read_split_rows(fresh_layout, "val")


def test_a_damaged_record_names_the_file(fresh_layout: Layout) -> None:
    fresh_layout.split_config.write_text('{"dataset": "toy", "cou')
    with pytest.raises(UserError, match=f"{fresh_layout.split_config} is damaged"):
        read_split_rows(fresh_layout, "train")
