"""The reports' index page: ``reports/index.html`` links every rendered report and shows the figures.

Written by ``make reproduce`` after each notebook execution, from what is in the reports folder (so a
partial rerun with ``--only`` still lists the reports rendered before), with each report's title
taken from its notebook's first heading and its parameters from the executed notebook.
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

import nbformat

from fedlab import paths


def _title_and_parameters(executed: Path) -> tuple[str, dict]:
    """The first markdown heading of an executed notebook and the parameters papermill injected."""
    book = nbformat.read(executed, as_version=4)
    title = next(
        (
            m.group(1)
            for c in book.cells
            if c.cell_type == "markdown"
            for m in [re.search(r"^#\s+(.+)$", c.source, re.M)]
            if m
        ),
        executed.stem,
    )
    params = (book.metadata.get("papermill") or {}).get("parameters") or {}
    return title, params


def stderr_outputs(out: Path) -> list[tuple[str, int, str]]:
    """Every stderr output of the executed notebooks in ``out`` as ``(notebook, cell, its text)``: a
    rendered report should have none (they show as red boxes); the smoke reproduce test asserts it."""
    found = []
    for executed in sorted(Path(out).glob("*.ipynb")):
        book = nbformat.read(executed, as_version=4)
        for i, cell in enumerate(book.cells):
            for output in cell.get("outputs", []):
                if (
                    output.get("output_type") == "stream"
                    and output.get("name") == "stderr"
                    and output.get("text", "").strip()
                ):
                    found.append((executed.stem, i, output["text"]))
    return found


def write_index(out: Path, profile_name: str, seconds: dict[str, float] | None = None) -> Path:
    """Write ``out/index.html``: one entry per ``*.html`` report in ``out`` (title, parameters, execution
    time where known), then every figure of the profile in the figures folder. Returns the page's path."""
    out = Path(out)
    seconds = seconds or {}
    entries = []
    for page in sorted(out.glob("*.html")):
        if page.name == "index.html":
            continue
        executed = page.with_suffix(".ipynb")
        title, params = _title_and_parameters(executed) if executed.exists() else (page.stem, {})
        shown = {k: v for k, v in params.items() if k not in ("FORCE",)}
        extra = ", ".join(f"{k}={v}" for k, v in shown.items())
        took = f", {seconds[page.stem]:.0f} s" if page.stem in seconds else ""
        entries.append(
            f'<li><a href="{html.escape(page.name)}">{html.escape(title)}</a> '
            f"<small>({html.escape(extra)}{took})</small></li>"
        )
    figs = sorted(paths.figures_dir().glob(f"{profile_name}_*.png"))
    thumbs = "".join(
        f'<figure style="display:inline-block;margin:6px;width:360px"><a href="{html.escape(rel)}">'
        f'<img src="{html.escape(rel)}" style="width:100%"></a><figcaption><small>{html.escape(f.stem)}</small>'
        f"</figcaption></figure>"
        for f in figs
        for rel in [os.path.relpath(f, out)]
    )
    page = out / "index.html"
    page.write_text(
        f"<!doctype html><meta charset='utf-8'><title>fedlab reports ({html.escape(profile_name)})</title>"
        f"<h1>fedlab study reports: profile {html.escape(profile_name)}</h1>"
        f"<p>{len(entries)} reports, rendered by <code>make reproduce</code> from the result files in "
        f"<code>results/</code>.</p><ol>{''.join(entries)}</ol>"
        f"<h2>Figures ({len(figs)})</h2>{thumbs or '<p>none yet: <code>make figures</code></p>'}\n"
    )
    return page
