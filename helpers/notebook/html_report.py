"""The series' results as web pages: each executed notebook as HTML beside it, and one
``index.html`` that links them with their title, status, wall time and the run's parameters.

A page opens in any browser, offline and without Jupyter: nbconvert's ``HTMLExporter``
inlines the styles and the figures. ``SeriesReport`` writes the index when the series is
planned and again after each notebook, so an interrupted series still has a true index.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
import nbformat
from nbconvert import HTMLExporter

from helpers.io import write_atomic

INDEX = "index.html"
STATUSES = ("ok", "failed", "not run")

# An ATX heading ("# 01 Data: ..."), the form every notebook of the series opens with;
# a regular expression is enough for one line and needs no Markdown parser.
HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.+?)(?:\s+#+)?\s*$")


def notebook_title(notebook: nbformat.NotebookNode, default: str) -> str:
    """The text of the first Markdown heading in ``notebook``, else ``default``."""
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                match = HEADING.match(line)
                if match:
                    return match.group(1)
    return default


def export_html(executed: Path) -> Path:
    """Write ``executed`` (a notebook, outputs and errors included) as HTML beside it,
    atomically; return the page's path."""
    body, _ = HTMLExporter().from_notebook_node(nbformat.read(executed, as_version=4))
    page = executed.with_suffix(".html")
    write_atomic(page, body.encode())
    return page


def publish(executed: Path) -> tuple[Path | None, str]:
    """``export_html``, never raising: the page, or None and the reason in one line (also
    printed), with any older page of that notebook removed so that none is mistaken for it."""
    try:
        return export_html(executed), ""
    except Exception as error:  # noqa: BLE001 - a damaged or odd notebook can make nbconvert raise anything
        reason = " ".join(f"{type(error).__name__}: {error}".split())[:300]
        executed.with_suffix(".html").unlink(missing_ok=True)
        print(f"    no HTML page for {executed.name} ({reason})", file=sys.stderr, flush=True)
        return None, reason


def duration(seconds: float | None) -> str:
    """Wall time for people: "42.0 s", "3 min 05 s", "2 h 07 min"; "" when unknown."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def now() -> str:
    """The local date and time, to the second, with its UTC offset."""
    return datetime.now().astimezone().isoformat(sep=" ", timespec="seconds")


@dataclass(frozen=True)
class Entry:
    """One notebook of the series as the index shows it."""

    name: str  # the notebook's file name without .ipynb
    title: str
    status: str = "not run"
    seconds: float | None = None
    page: str = ""  # the HTML page's file name, beside the index; "" when there is none
    problem: str = ""  # why there is no page for a notebook that ran

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status {self.status!r} is not one of {STATUSES}")


ENVIRONMENT = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
ENVIRONMENT.filters.update(duration=duration, urlquote=quote)
TEMPLATE = ENVIRONMENT.from_string("""\
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{ heading }}</title>
<style>
body { font-family: sans-serif; margin: 2em auto; max-width: 60em; padding: 0 1em; }
table { border-collapse: collapse; margin-bottom: 2em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
td.time { text-align: right; white-space: nowrap; }
.ok { color: #1a7f37; } .failed { color: #cf222e; font-weight: bold; } .not-run { color: #777; }
</style>
</head>
<body>
<h1>{{ heading }}</h1>
<p>Started {{ started }}; updated {{ updated }};
{{ done }} of {{ entries|length }} notebook(s) run{% if done %} in {{ total|duration }}{% endif %}.</p>
<table id="notebooks">
<tr><th>notebook</th><th>title</th><th>status</th><th>wall time</th></tr>
{% for e in entries %}
<tr>
<td>{% if e.page %}<a href="{{ e.page|urlquote }}">{{ e.name }}</a>{% else %}{{ e.name }}{% endif %}</td>
<td>{{ e.title }}{% if e.problem %} (no HTML page: {{ e.problem }}){% endif %}</td>
<td class="{{ e.status|replace(' ', '-') }}">{{ e.status }}</td>
<td class="time">{{ e.seconds|duration }}</td>
</tr>
{% endfor %}
</table>
<h2>Parameters</h2>
<table id="parameters">
<tr><th>parameter</th><th>value</th></tr>
{% for key, value in parameters %}
<tr><td>{{ key }}</td><td>{{ value }}</td></tr>
{% endfor %}
</table>
</body>
</html>
""")


def render_index(entries: Sequence[Entry], parameters: dict[str, Any], started: str,
                 updated: str, overrides: Collection[str] = ()) -> str:
    """The index page; parameters named in ``overrides`` (given with ``-p``) show as ``-p KEY``."""
    shown = [(f"-p {key}" if key in overrides else key, "None" if value is None else value)
             for key, value in parameters.items()]
    dataset = parameters.get("DATASET", "")
    return TEMPLATE.render(heading=f"Notebook series{f': {dataset}' if dataset else ''}",
                           entries=entries, parameters=shown, started=started, updated=updated,
                           done=sum(e.status != "not run" for e in entries),
                           total=sum(e.seconds or 0.0 for e in entries))


@dataclass
class SeriesReport:
    """The index of one run of the series in ``folder`` (where the executed notebooks land),
    rewritten whenever a notebook's entry changes."""

    folder: Path
    parameters: dict[str, Any]
    overrides: Collection[str] = ()
    entries: list[Entry] = field(default_factory=list)
    started: str = field(default_factory=now)

    @classmethod
    def plan(cls, notebooks: Sequence[Path], folder: Path, parameters: dict[str, Any],
             overrides: Collection[str] = ()) -> SeriesReport:
        """Every notebook "not run", titled from its source; the index written at once."""
        entries = [Entry(nb.stem, notebook_title(nbformat.read(nb, as_version=4), nb.stem))
                   for nb in notebooks]
        report = cls(folder, dict(parameters), tuple(overrides), entries)
        report.write()
        return report

    @property
    def index(self) -> Path:
        return self.folder / INDEX

    def finish(self, position: int, status: str, seconds: float, executed: Path) -> None:
        """Record how the notebook at ``position`` ended, export ``executed`` as HTML (a
        failed export is one printed line, never raised) and rewrite the index."""
        page, problem = publish(executed)
        self.entries[position] = replace(self.entries[position], status=status, seconds=seconds,
                                         page=page.name if page else "", problem=problem)
        self.write()

    def write(self) -> Path:
        """Write the index atomically; return its path."""
        self.folder.mkdir(parents=True, exist_ok=True)
        page = render_index(self.entries, self.parameters, self.started, now(), self.overrides)
        write_atomic(self.index, page.encode())
        return self.index
