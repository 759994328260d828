"""The split on disk, written and read in one place: the CSV of the train, val and test rows
and its JSON record, which holds the parameters of the split and the CSV's row count and
checksum. Every read checks them, so a damaged or edited split stops the run with a
sentence instead of training on fewer images."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pandas as pd

from helpers.config import Layout
from helpers.errors import UserError
from helpers.io import read_json, save_json, write_atomic

COLUMNS = ["path", "label", "label_id", "split", "group", "md5"]
SPLITS = ("train", "val", "test")
_DTYPES = {"path": str, "label": str, "split": str, "md5": str}


def _again(layout: Layout) -> str:
    return (f"delete {layout.split_csv.name} and {layout.split_config.name} in "
            f"{layout.split_csv.parent} and run notebook 02 again")


def file_facts(data: bytes) -> dict[str, Any]:
    """What the record keeps of the CSV: its data rows and md5."""
    return {"csv_rows": max(data.count(b"\n") - 1, 0), "csv_md5": hashlib.md5(data).hexdigest()}


def write_split_file(layout: Layout, rows: pd.DataFrame, config: dict[str, Any]) -> None:
    """Write the CSV (``COLUMNS`` of ``rows``), then its record (``config`` and the CSV's
    facts), each atomically; the record last, so a CSV without one is never trusted."""
    data = rows[COLUMNS].to_csv(index=False, lineterminator="\n").encode()
    layout.split_csv.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(layout.split_csv, data)
    save_json({**config, **file_facts(data)}, layout.split_config)


def read_record(layout: Layout) -> dict[str, Any]:
    """The split's record; one sentence when the CSV has none or it is damaged."""
    if not layout.split_config.is_file():
        if layout.split_csv.is_file():
            raise UserError(f"The split {layout.split_csv} has no record "
                            f"{layout.split_config.name} beside it (an interrupted notebook 02 "
                            f"or a deleted file): {_again(layout)}.")
        raise UserError(f"No split at {layout.split_csv}: run notebook 02 (preprocessing) first.")
    return read_json(layout.split_config, _again(layout))


def read_split_file(layout: Layout) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The split's rows and record, checked: the CSV must be there, have the row count and
    md5 its record holds (a record written before it held them is taken as it is) and the
    contract's columns."""
    record = read_record(layout)
    if not layout.split_csv.is_file():
        raise UserError(f"The split {layout.split_csv} is missing (its record is there): "
                        f"{_again(layout)}.")
    data = layout.split_csv.read_bytes()
    facts = file_facts(data)
    if "csv_md5" in record and facts != {k: record[k] for k in facts}:
        what = (f"{facts['csv_rows']} rows where {record['csv_rows']} were written"
                if facts["csv_rows"] != record["csv_rows"] else "another checksum")
        raise UserError(f"The split {layout.split_csv} does not match its record ({what}): it "
                        f"was changed or damaged; {_again(layout)}.")
    return checked_rows(layout.split_csv, _again(layout)), record


def checked_rows(csv: Path, remedy: str) -> pd.DataFrame:
    """A rows CSV of the split's contract (split, oversampled or subsampled rows); one
    sentence naming the file when it cannot be read or lacks a column."""
    try:
        df = pd.read_csv(csv, keep_default_na=False, dtype=_DTYPES)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise UserError(f"{csv} is damaged ({type(err).__name__}): {remedy}.") from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing or not df["split"].isin(SPLITS).all():
        what = f"no {', '.join(missing)} column" if missing else "unknown split names"
        raise UserError(f"{csv} is damaged ({what}): {remedy}.")
    return df
