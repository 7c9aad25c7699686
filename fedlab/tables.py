"""Tables made from result files only (no training), and the README blocks generated from them."""

from __future__ import annotations

import json
import re
from pathlib import Path

from .results import REPO, iter_results

README = REPO / "README.md"
BENCH_DIR = REPO / "bench" / "results"


def _ci(m: dict, key: str) -> str:
    lo, hi = m.get(f"{key}_ci", (None, None))
    return f"{m[key]:.3f} [{lo:.3f}, {hi:.3f}]" if lo is not None else f"{m[key]:.3f}"


def zeroshot_table(root: Path | None = None) -> str:
    """Markdown table of every zero-shot result (full eval sets only, i.e. no ``max_eval`` cap)."""
    rows = []
    for _, r in iter_results(root, "zeroshot/*.json"):
        c, m, d = r["config"], r["metrics"], r["data"]
        if c.get("max_eval") is not None:
            continue
        rows.append(
            f"| {c['dataset']} | {c['model']} | {c['evaluator']} | {m['n']} | {_ci(m, 'accuracy')} | "
            f"{_ci(m, 'macro_f1')} | {m['majority_class_accuracy']:.3f} | "
            f"{'yes' if d.get('offline_resplit') else 'no'} | {c['dtype']} | {m['seconds']:.0f} |"
        )
    head = (
        "| dataset | model | evaluator | eval rows | accuracy [95% CI] | macro-F1 [95% CI] | "
        "majority class | offline re-split | dtype | seconds |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    return head + "\n" + "\n".join(rows) if rows else head


def bench_evaluators_table(path: Path | None = None) -> str:
    path = Path(path or BENCH_DIR / "evaluators.json")
    if not path.is_file():
        return "(no benchmark result yet: run `make bench`)"
    b = json.loads(path.read_text())
    lines = ["| evaluator | examples/s | accuracy | invalid answers |", "|---|---|---|---|"]
    for name, v in b["results"].items():
        lines.append(f"| {name} | {v['examples_per_s']:.2f} | {v['accuracy']:.3f} | {v['invalid_rate']:.1%} |")
    hw = b["manifest"]["hardware"]
    lines.append(
        f"\nSpeed ratio loglik / generate: **{b['speed_ratio_loglik_over_generate']:.2f}x** "
        f"(goal >= 3x: {'met' if b['goal_met'] else 'NOT met'}); {b['results']['loglik']['examples']} "
        f"questions, {b['model']['name']} in {b['model']['dtype']}, {hw['cpu']}, "
        f"{hw['torch_threads']} threads."
    )
    return "\n".join(lines)


BLOCKS = {"zeroshot": zeroshot_table, "bench-evaluators": bench_evaluators_table}


def update_readme(path: Path = README) -> list[str]:
    """Replace each ``<!-- begin:NAME -->...<!-- end:NAME -->`` block with a fresh table."""
    text = path.read_text()
    done = []
    for name, make in BLOCKS.items():
        pattern = re.compile(rf"(<!-- begin:{name} -->\n)(?:.*?\n)?(<!-- end:{name} -->)", re.S)
        if pattern.search(text):
            text = pattern.sub(lambda m: m.group(1) + make() + "\n" + m.group(2), text)
            done.append(name)
    path.write_text(text)
    return done
