"""reporting.reports_index: the index page of the rendered reports."""


def test_reports_index_lists_every_report_and_figure(tmp_path, monkeypatch):
    import nbformat
    from nbformat.v4 import new_markdown_cell, new_notebook

    from fedlab.reporting.reports_index import write_index

    monkeypatch.setenv("FEDLAB_FIGURES_DIR", str(tmp_path / "figures"))
    out = tmp_path / "reports"
    out.mkdir()
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "p_forest.png").write_bytes(b"png")
    (tmp_path / "figures" / "other_forest.png").write_bytes(b"png")
    for stem, title in (("00_data", "00 · The benchmarks"), ("02_peft_finance_lora", "02 · One PEFT method")):
        book = new_notebook(cells=[new_markdown_cell(f"badge\n\n# {title}\n\ntext")])
        book.metadata["papermill"] = {"parameters": {"PROFILE": "p", "DOMAIN": "finance", "FORCE": False}}
        nbformat.write(book, out / f"{stem}.ipynb")
        (out / f"{stem}.html").write_text("<html></html>")
    page = write_index(out, "p", {"00_data": 12.0}).read_text()
    assert page.count("<li>") == 2 and "00 · The benchmarks" in page and "02 · One PEFT method" in page
    assert "DOMAIN=finance" in page and "FORCE" not in page and "12 s" in page
    assert "../figures/p_forest.png" in page and "other_forest" not in page
