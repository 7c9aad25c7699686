"""reporting.readme: generated blocks in README and docs, short README, links that resolve."""

from pathlib import Path

from fedlab.reporting import readme

REPO = Path(__file__).resolve().parents[3]


def test_readme_blocks_are_generated(tmp_path):
    page = tmp_path / "README.md"
    page.write_text(
        "intro\n<!-- begin:backbones -->\nSTALE TABLE\n<!-- end:backbones -->\n"
        "<!-- begin:layout -->\n<!-- end:layout -->\nend\n"
    )
    assert readme.update_readme(page, names=["backbones", "layout"]) == ["backbones", "layout"]
    text = page.read_text()
    assert "STALE TABLE" not in text and "`smollm2-135m` (default)" in text and "Qwen/Qwen2.5-0.5B-Instruct" in text
    for sub in ("core/", "data/", "experiment/", "fl/", "deployment/", "reporting/", "study.py", "cli.py"):
        assert sub in text, sub


def test_the_committed_readme_shows_the_generated_blocks():
    text = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    for name in ("backbones", "layout"):
        begin, end = f"<!-- begin:{name} -->\n", f"<!-- end:{name} -->"
        block = text.split(begin, 1)[1].split(end, 1)[0].rstrip("\n")
        assert block == readme.BLOCKS[name](), f"README block {name} is stale: run `fedlab tables --readme`"


def _anchor(heading: str) -> str:
    """GitHub's anchor of a markdown heading."""
    import re

    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def test_readme_is_short_and_every_page_link_resolves():
    """#20: a README a newcomer finishes (<= 300 lines); README and docs pages link only to files and
    headings that exist."""
    import re

    pages = [REPO / "README.md"] + sorted((REPO / "docs").glob("*.md"))
    assert len(pages) >= 5
    assert len((REPO / "README.md").read_text().splitlines()) <= 300
    for page in pages:
        text = page.read_text()
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if target.startswith(("http://", "https://")):
                continue
            file, _, anchor = target.partition("#")
            dest = (page.parent / file).resolve() if file else page
            assert dest.exists(), f"{page.name}: link to missing {target}"
            if anchor and dest.suffix == ".md":
                headings = {_anchor(h) for h in re.findall(r"^#+ (.+)$", dest.read_text(), re.M)}
                assert anchor in headings, f"{page.name}: no heading #{anchor} in {dest.name}"


def test_every_generated_block_has_a_page():
    text = "\n".join(p.read_text() for p in [REPO / "README.md"] + sorted((REPO / "docs").glob("*.md")))
    for name in readme.BLOCKS:
        assert f"<!-- begin:{name} -->" in text and f"<!-- end:{name} -->" in text, name


def test_update_readme_fills_one_block_on_several_pages(tmp_path):
    a, b = tmp_path / "a.md", tmp_path / "b.md"
    for page in (a, b):
        page.write_text("x\n<!-- begin:backbones -->\nOLD\n<!-- end:backbones -->\n")
    assert readme.update_readme([a, b], names=["backbones"]) == ["backbones"]
    assert a.read_text() == b.read_text() and "OLD" not in a.read_text()
