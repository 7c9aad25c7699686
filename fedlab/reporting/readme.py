"""The generated blocks of README.md and the docs pages: ``<!-- begin:NAME -->...<!-- end:NAME -->``
replaced by fresh tables made from result files, benchmark files, the backbone registry and the package
layout. The README holds the short ones (the headline answer, backbones, layout); the long tables live
in ``docs/*.md``, which the README links."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

from fedlab import paths
from fedlab.experiment.profiles import load_profile

from .acceptance import acceptance_markdown
from .bench_tables import (
    bench_evaluators_table,
    bench_federated_table,
    bench_secagg_table,
    bench_throughput_table,
    bench_train_table,
)
from .claims import answer_markdown, check_claims, claims_markdown, headline_markdown
from .curves import curves_markdown, profile_headline
from .follow_up import follow_up_markdown
from .frames import result_for, results_frame
from .grid_status import grid_status_markdown
from .matched import matched_markdown
from .sweeps import sweeps_markdown
from .tables import (
    aggregation_table,
    backbones_table,
    cost_summary_table,
    main_table,
    mixed_rank_table,
    secagg_table,
    zeroshot_table,
)
from .verdict_text import floors_markdown, verdict_markdown
from .verdicts import profile_verdicts


def _summary(path: Path) -> str:
    """The first line of a module's docstring."""
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def layout_tree() -> str:
    """The package tree: each subpackage and top-level module with the first line of its docstring."""
    root = paths.PACKAGE
    entries = [("fedlab/", _summary(root / "__init__.py"))]
    for module in sorted(root.glob("*.py")):
        if module.name != "__init__.py":
            entries.append((f"  {module.name}", _summary(module)))
    for init in sorted(root.rglob("__init__.py")):
        if init.parent != root:
            rel = init.parent.relative_to(root)
            entries.append((f"{'  ' * len(rel.parts)}{rel.name}/", _summary(init)))
    entries.append(
        ("  configs/profiles/", "the profiles (smoke, quick, reference, full, paper) as YAML, shipped with the package")
    )
    width = max(len(name) for name, _ in entries) + 2
    return "\n".join(["```"] + [f"{name:{width}s}{summary}".rstrip() for name, summary in entries] + ["```"])


#: the profile whose results the README reports
README_PROFILE = "quick"


def _frame():
    return results_frame(load_profile(README_PROFILE))


@functools.lru_cache(maxsize=1)
def _verdicts() -> dict:
    """The README profile's verdicts (computed once per process: a few seconds of bootstrap)."""
    return profile_verdicts(load_profile(README_PROFILE))


#: the profile trained until learned (issue #19), whose grid runs across sessions: its progress and the
#: verdicts of the cells finished so far are shown beside the README profile's answer
REFERENCE_PROFILE = "reference"


@functools.lru_cache(maxsize=1)
def _reference_verdicts() -> dict:
    return profile_verdicts(load_profile(REFERENCE_PROFILE))


BLOCKS = {
    "results-main": lambda: main_table(_frame()),
    "results-costs": lambda: cost_summary_table(_frame()),
    "results-floors": lambda: floors_markdown(_verdicts()),
    "results-verdicts": lambda: verdict_markdown(_verdicts()),
    "results-claims": lambda: claims_markdown(check_claims(_verdicts())),
    "results-answer": lambda: answer_markdown(_verdicts()),
    "results-headline": lambda: headline_markdown(_verdicts(), profile=README_PROFILE),
    "zeroshot": zeroshot_table,
    "reference_curves": lambda: curves_markdown(load_profile(REFERENCE_PROFILE)),
    "reference-sweeps": lambda: sweeps_markdown(load_profile(REFERENCE_PROFILE)),
    "reference-grid": lambda: grid_status_markdown(load_profile(REFERENCE_PROFILE)),
    "reference-verdicts": lambda: verdict_markdown(_reference_verdicts()),
    "reference-acceptance": lambda: acceptance_markdown(load_profile(REFERENCE_PROFILE), _reference_verdicts()),
    # what deciding each inconclusive verdict would take: seeds, or rows the held-out sets do not have
    "reference-follow-up": lambda: follow_up_markdown(load_profile(REFERENCE_PROFILE), _reference_verdicts()),
    "reference-matched": lambda: matched_markdown(load_profile(REFERENCE_PROFILE)),
    "reference-headline": lambda: profile_headline(load_profile(REFERENCE_PROFILE), _reference_verdicts()),
    "bench-evaluators": bench_evaluators_table,
    "bench-federated": bench_federated_table,
    "bench-train": bench_train_table,
    "bench-throughput": bench_throughput_table,
    "bench-secagg": bench_secagg_table,
    "backbones": backbones_table,
    # the aggregation study (notebook 07) of the quick profile, from its result files
    "aggregation": lambda: aggregation_table(
        [r for c in load_profile("quick").aggregation_configs() if (r := result_for(c)) is not None]
    ),
    # the same study at the reference profile's budget (SmolLM2-135M LoRA on FPB, every run at its last round)
    "reference-aggregation": lambda: aggregation_table(
        [r for c in load_profile(REFERENCE_PROFILE).aggregation_configs() if (r := result_for(c)) is not None],
        measured=True,
    ),
    # clients of different compute (notebook 07): mixed LoRA ranks on the quick profile's aggregation cell
    "mixed-ranks": lambda: mixed_rank_table(
        [r for c in load_profile("quick").mixed_rank_configs() if (r := result_for(c)) is not None]
    ),
    # secure aggregation (notebook 07): the quick profile's aggregation cell without and with SecAgg+
    "secagg": lambda: secagg_table(
        [r for c in load_profile("quick").secagg_configs() if (r := result_for(c)) is not None]
    ),
    "layout": layout_tree,
}


def update_readme(path: Path | list[Path] | None = None, names=None) -> list[str]:
    """Replace each ``<!-- begin:NAME -->...<!-- end:NAME -->`` block (of ``names``, default all) with a
    fresh table, in ``path`` (one file or several; default README.md and every ``docs/*.md`` page).
    Each block is made once, however many pages show it; the names of the blocks found are returned."""
    pages = [Path(p) for p in ([path] if isinstance(path, (str, Path)) else path)] if path else paths.markdown_pages()
    texts = {page: page.read_text() for page in pages}
    done = []
    for name, make in BLOCKS.items():
        if names is not None and name not in names:
            continue
        pattern = re.compile(rf"(<!-- begin:{name} -->\n)(?:.*?\n)?(<!-- end:{name} -->)", re.S)
        hits = [page for page, text in texts.items() if pattern.search(text)]
        if hits:
            block = make()
            for page in hits:
                texts[page] = pattern.sub(lambda m, block=block: m.group(1) + block + "\n" + m.group(2), texts[page])
            done.append(name)
    for page, text in texts.items():
        if page.read_text() != text:
            page.write_text(text)
    return done
