"""The series' web pages: each notebook exported as HTML, and the index that links them."""

from __future__ import annotations

import base64
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest

from helpers.notebook.html_report import INDEX, SeriesReport, duration, export_html, notebook_title

# a 1 x 1 PNG, as a figure output carries it
PIXEL = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e2215bc40000000049454e44ae426082")).decode()


class Tables(HTMLParser):
    """The rows of every table of a page (cell texts) and its links."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.links: list[str] = []
        self._table, self._in_cell = "", False
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._table = dict(attrs)["id"] or ""
            self.tables[self._table] = []
        elif tag == "tr":
            self.tables[self._table].append([])
        elif tag in ("td", "th"):
            self.tables[self._table][-1].append("")
            self._in_cell = True
        elif tag == "a":
            self.links.append(dict(attrs)["href"] or "")

    def handle_endtag(self, tag: str) -> None:
        self._in_cell = self._in_cell and tag not in ("td", "th")

    def handle_data(self, data: str) -> None:
        if self._in_cell:
            self.tables[self._table][-1][-1] += data


def notebook(path: Path, *cells: nbformat.NotebookNode) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = list(cells)
    nbformat.write(nb, path)
    return path


def executed(path: Path, title: str, failed: bool = False) -> Path:
    """A notebook as papermill leaves it: a title, printed text, a figure, maybe an error."""
    code = nbformat.v4.new_code_cell("print('hello 42'); show()", outputs=[
        nbformat.v4.new_output("stream", text="hello 42\n"),
        nbformat.v4.new_output("display_data", data={"image/png": PIXEL, "text/plain": "<Figure>"})])
    cells = [nbformat.v4.new_markdown_cell("[![badge](https://example.org/b.svg)](https://example.org)"),
             nbformat.v4.new_markdown_cell(f"# {title}\n\nWhat it does.\n\n## A section"), code]
    if failed:
        cells.append(nbformat.v4.new_code_cell("1 / 0", outputs=[nbformat.v4.new_output(
            "error", ename="ZeroDivisionError", evalue="division by zero",
            traceback=["\x1b[0;31mZeroDivisionError\x1b[0m: division by zero"])]))
    return notebook(path, *cells)


def test_export_writes_the_outputs_figures_and_errors_beside_the_notebook(tmp_path: Path) -> None:
    page = export_html(executed(tmp_path / "02_bad.ipynb", "02 Bad", failed=True))
    assert page == tmp_path / "02_bad.html"
    text = page.read_text()
    assert "hello 42" in text and f"data:image/png;base64,{PIXEL}" in text
    assert "ZeroDivisionError" in text and "division by zero" in text
    assert [p.name for p in tmp_path.iterdir() if p.suffix not in (".ipynb", ".html")] == []


def test_the_title_is_the_first_markdown_heading() -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("# a comment, not a heading"),
                nbformat.v4.new_markdown_cell("Some text\n\n## 05 WGAN-GP: synthetic images ##"),
                nbformat.v4.new_markdown_cell("# Later")]
    assert notebook_title(nb, "05_wgan_gp") == "05 WGAN-GP: synthetic images"
    nb.cells = nb.cells[:1]
    assert notebook_title(nb, "05_wgan_gp") == "05_wgan_gp"


def test_duration_reads_for_people() -> None:
    assert [duration(s) for s in (None, 4.25, 185, 7625)] == ["", "4.2 s", "3 min 05 s", "2 h 07 min"]


def test_the_index_links_each_page_with_title_status_time_and_the_parameters(tmp_path: Path) -> None:
    sources = [executed(tmp_path / f"{name}.ipynb", title)
               for name, title in (("01_a", "01 First"), ("02_b", "02 Second <draft>"), ("03_c", "03 Third"))]
    out = tmp_path / "root" / "executed"
    parameters = {"PROFILE": "smoke", "DATASET": "chest_xray", "ROOT": "/data/root", "SEED": 42,
                  "WEIGHTS": "none", "LABEL": "<script>"}
    report = SeriesReport.plan(sources, out, parameters, overrides=["WEIGHTS", "LABEL"])
    page = Tables((out / INDEX).read_text())
    assert [row[2] for row in page.tables["notebooks"][1:]] == ["not run"] * 3 and page.links == []

    executed(out / "01_a.ipynb", "01 First")
    report.finish(0, "ok", 12.34, out / "01_a.ipynb")
    executed(out / "02_b.ipynb", "02 Second <draft>", failed=True)
    report.finish(1, "failed", 3.0, out / "02_b.ipynb")

    text = (out / INDEX).read_text()
    page = Tables(text)
    assert page.tables["notebooks"][1:] == [["01_a", "01 First", "ok", "12.3 s"],
                                            ["02_b", "02 Second <draft>", "failed", "3.0 s"],
                                            ["03_c", "03 Third", "not run", ""]]
    assert page.links == ["01_a.html", "02_b.html"]
    assert all((out / link).is_file() for link in page.links)
    assert "ZeroDivisionError" in (out / "02_b.html").read_text()
    assert dict(map(tuple, page.tables["parameters"][1:])) == {
        "PROFILE": "smoke", "DATASET": "chest_xray", "ROOT": "/data/root", "SEED": "42",
        "-p WEIGHTS": "none", "-p LABEL": "<script>"}
    assert "<script>" not in text  # escaped: the page runs no code
    assert report.started in text and "2 of 3 notebook(s) run in 15.3 s" in text


def test_a_failed_export_is_one_line_and_the_series_goes_on(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    source = executed(tmp_path / "01_a.ipynb", "01 First")
    out = tmp_path / "executed"
    report = SeriesReport.plan([source, source], out, {"DATASET": "x"})
    (out / "01_a.ipynb").write_text("{ not a notebook")
    (out / "01_a.html").write_text("a page from an earlier run")
    report.finish(0, "failed", 1.0, out / "01_a.ipynb")
    report.finish(1, "ok", 1.0, out / "missing.ipynb")
    said = capsys.readouterr().err.splitlines()
    assert len(said) == 2 and said[0].startswith("    no HTML page for 01_a.ipynb (")
    assert "missing.ipynb" in said[1]
    assert not (out / "01_a.html").exists()  # never mistaken for this run's page
    page = Tables((out / INDEX).read_text())
    assert [row[2] for row in page.tables["notebooks"][1:]] == ["failed", "ok"]
    assert page.links == [] and "(no HTML page: " in page.tables["notebooks"][1][1]


def test_an_unknown_status_is_a_programming_error(tmp_path: Path) -> None:
    report = SeriesReport.plan([executed(tmp_path / "01_a.ipynb", "01")], tmp_path / "out", {})
    with pytest.raises(ValueError, match="status 'done'"):
        report.finish(0, "done", 1.0, tmp_path / "01_a.ipynb")
