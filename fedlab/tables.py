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


def bench_federated_table(path: Path | None = None) -> str:
    path = Path(path or BENCH_DIR / "federated.json")
    if not path.is_file():
        return "(no benchmark result yet: run `make bench`)"
    b = json.loads(path.read_text())
    w, m = b["wall_time"], b["simulation_memory"]
    t = w.get("federated_server_timings", {})
    hw = b["manifest"]["hardware"]
    return "\n".join([
        "| measure | value | goal |",
        "|---|---|---|",
        f"| federated wall time (4 clients x 2 rounds x 5 steps, Flower + Ray) | {w['federated_s']:.1f} s | |",
        f"| centralized wall time (40 steps, same batch and eval) | {w['centralized_s']:.1f} s | |",
        f"| ratio federated / centralized | **{w['ratio']:.2f}** | <= 1.15 ({'met' if w['goal_met'] else 'not met'}) |",
        f"| of which: simulation start/stop (Ray), outside the ServerApp | {w.get('simulation_overhead_s', float('nan')):.1f} s | |",
        f"| of which: server set-up / rounds / per-client eval / generation | {t.get('setup_s', float('nan')):.1f} / {t.get('rounds_s', float('nan')):.1f} / {t.get('client_eval_s', float('nan')):.1f} / {t.get('generation_s', float('nan')):.1f} s | |",
        f"| peak memory of the simulation, 2 clients | {m['clients_2']['peak_rss_mb']:.0f} MB | |",
        f"| peak memory of the simulation, 8 clients | {m['clients_8']['peak_rss_mb']:.0f} MB | |",
        f"| ratio 8 / 2 clients | **{m['ratio_8_over_2']:.2f}** | <= 1.2 ({'met' if m['goal_met'] else 'not met'}) |",
        f"\n{b['settings']['model']} on {b['settings']['dataset']}, {hw['cpu']}, {hw['cpu_cores']} cores.",
    ])


def _quick_frame():
    from .profiles import load_profile
    from .report import frame, profile_results

    return frame(profile_results(load_profile("quick")))


def results_main_table() -> str:
    from .report import main_table

    return main_table(_quick_frame())


def results_cost_table() -> str:
    from .report import cost_table

    return cost_table(_quick_frame())


def results_claims_table() -> str:
    from .report import check_claims, claims_markdown

    return claims_markdown(check_claims(_quick_frame()))


BLOCKS = {"results-main": results_main_table, "results-costs": results_cost_table, "results-claims": results_claims_table,
          "zeroshot": zeroshot_table, "bench-evaluators": bench_evaluators_table, "bench-federated": bench_federated_table}


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
