"""The study's claims, each decided by a paired test from :mod:`fedlab.reporting.verdicts` (never by
eyeballing two CIs), with the evidence written out.

1. Federated comes close to centralized: supported only when the two are *equivalent* (TOST at the
   profile's margin); "not equivalent" and "inconclusive" are reported as such.
2. Federated beats isolated training: supported when the one-sided paired test against the mean of
   the isolated clients rejects "not better" (Holm-corrected); the number of single clients it beats
   significantly is shown beside it.
3. A cheaper method (QLoRA, IA3) costs less than LoRA for a small loss: supported when it is
   non-inferior to LoRA at the margin *and* at least one cost is lower with evidence (bytes are exact;
   energy and memory need repeats). Each cost is reported separately.
"""

from __future__ import annotations

from fedlab.data import domain_of

from .verdict_text import client_verdict_counts
from .verdicts import FAMILIES

SUPPORTED, NOT_SUPPORTED = "supported", "not supported"


def _effect(c: dict) -> str:
    return f"{c['metric']} {c['federated']:.3f} vs {c['other_score']:.3f}: {c['effect']:+.3f} [{c['ci'][0]:+.3f}, {c['ci'][1]:+.3f}]"


def _in_seeds(c: dict, side: str) -> str:
    """ " in at least one seed" when a side of the comparison pools several seeds (collapse is judged per seed)."""
    return " in at least one seed" if (c.get(f"n_seeds_{side}") or c.get("n_seeds") or 1) > 1 else ""


def _collapse_note(c: dict) -> str:
    notes = []
    if c["federated_collapsed"]:
        notes.append(f"the federated model answers one class for >= 90 % of rows{_in_seeds(c, 'a')}")
    if c.get("other_collapsed"):
        notes.append(f"{c['other']} answers one class for >= 90 % of rows{_in_seeds(c, 'b')}")
    return f" ({'; '.join(notes)})" if notes else ""


def check_claims(verdicts: dict) -> list[dict]:
    """Each claim for each (backbone, dataset, method), with its evidence and verdict."""
    out = []
    clients = client_verdict_counts(verdicts)
    for c in verdicts["comparisons"]:
        cell = {"model": c.get("model", "-"), "dataset": c["dataset"], "method": c["method"]}
        if c["family"] == FAMILIES[0]:
            out.append(
                dict(
                    cell,
                    claim="1 federated comes close to centralized",
                    test=c["verdict"],
                    evidence=f"{_effect(c)}, margin ±{c['margin']:g}{_collapse_note(c)}",
                    verdict=SUPPORTED if c["verdict"] == "equivalent" else NOT_SUPPORTED,
                )
            )
        elif c["family"] == FAMILIES[1]:
            won, total = clients.get((c.get("model", "-"), c["dataset"], c["method"]), (0, 0))
            out.append(
                dict(
                    cell,
                    claim="2 federated beats isolated training",
                    test=c["verdict"],
                    evidence=(
                        f"{_effect(c)} vs the isolated clients' mean; significantly better than "
                        f"{won} of {total} single clients{_collapse_note(c)}"
                    ),
                    verdict=SUPPORTED if c["verdict"] == "better" else NOT_SUPPORTED,
                )
            )
        elif c["family"] == FAMILIES[3]:
            costs = c["costs"]
            lower = [k for k, v in costs.items() if v["verdict"] == "lower"]
            cost_text = "; ".join(f"{k}: {v['verdict']}" for k, v in costs.items())
            ok = c["verdict"] == "non-inferior" and bool(lower)
            out.append(
                dict(
                    cell,
                    claim=f"3 {c['method']} costs less than LoRA with small loss",
                    test=c["verdict"],
                    evidence=f"{_effect(c)} ({c['verdict']} at -{c['margin']:g}); {cost_text}{_collapse_note(c)}",
                    cheaper_in=lower,
                    verdict=SUPPORTED if ok else NOT_SUPPORTED,
                )
            )
    return out


def claims_markdown(claims: list[dict]) -> str:
    if not claims:
        return "(no results to check the claims against yet)"
    lines = [
        "| claim | backbone | dataset | method | our numbers (effect [95 % CI]) | test | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in claims:
        lines.append(
            f"| {c['claim']} | {c['model']} | {c['dataset']} | {c['method']} | {c['evidence']} | {c['test']} | **{c['verdict']}** |"
        )
    return "\n".join(lines)


#: the words of each family's verdicts, in the order the answer lists them
_ANSWER_ORDER = {
    FAMILIES[0]: ("equivalent", "not equivalent", "inconclusive"),
    FAMILIES[1]: ("better", "not better"),
    FAMILIES[3]: ("non-inferior", "inconclusive", "inferior"),
}
_LISTED = {
    FAMILIES[0]: ("equivalent", "not equivalent"),
    FAMILIES[1]: ("better",),
    FAMILIES[3]: ("non-inferior", "inferior"),
}  # cells named with their effect; others only counted


def _cell(c: dict) -> str:
    return (
        f"{c.get('model', '-')} {c['dataset']} {c['method']} {c['effect']:+.3f} [{c['ci'][0]:+.3f}, {c['ci'][1]:+.3f}]"
    )


def _count_line(rows: list[dict], family: str) -> str:
    """``3 cells: *equivalent* 0, *not equivalent* 2 (cell effect [CI]; ...), *inconclusive* 1``."""
    words = list(_ANSWER_ORDER[family]) + sorted({c["verdict"] for c in rows} - set(_ANSWER_ORDER[family]))
    parts = []
    for word in words:
        hits = [c for c in rows if c["verdict"] == word]
        if not hits and word != _ANSWER_ORDER[family][0]:  # the finding sought is counted even when 0
            continue
        named = f" ({'; '.join(_cell(c) for c in hits)})" if hits and word in _LISTED.get(family, ()) else ""
        parts.append(f"*{word}* {len(hits)}{named}")
    return f"{len(rows)} cell{'s' if len(rows) != 1 else ''}: {', '.join(parts)}"


def _cost_line(rows: list[dict]) -> str:
    """How often each cost of the cheaper method came out lower / equal / higher / undecided."""
    out = []
    for cost in sorted({k for c in rows for k in c.get("costs", {})}):
        tally: dict[str, int] = {}
        for c in rows:
            if cost in c.get("costs", {}):
                word = c["costs"][cost]["verdict"].split(" (")[0]
                tally[word] = tally.get(word, 0) + 1
        out.append(f"{cost} {', '.join(f'{w} {n}' for w, n in sorted(tally.items()))}")
    return "; ".join(out)


def answer_markdown(verdicts: dict) -> str:
    """The study's answer per domain, in the verdicts' own words: for each family of comparisons how
    many (backbone, dataset, method) cells got which verdict, the cells with a definite finding named
    with their effect and 95 % CI. Nothing here is stronger than the verdict table it counts."""
    comparisons = verdicts.get("comparisons") or []
    if not comparisons:
        return "(no results to answer from yet)"
    by_domain: dict[str, list[dict]] = {}
    for c in comparisons:
        by_domain.setdefault(domain_of(c["dataset"]), []).append(c)
    lines = []
    for domain, rows in by_domain.items():
        datasets = sorted({c["dataset"] for c in rows})
        models = sorted({c.get("model", "-") for c in rows})
        lines.append(f"**{domain}** ({', '.join(datasets)}; {', '.join(models)}; cells = backbone x dataset x method)")
        fed_cen = [c for c in rows if c["family"] == FAMILIES[0]]
        if fed_cen:
            collapsed = sum(bool(c["federated_collapsed"]) for c in fed_cen)
            lines.append(
                f"- Federated vs centralized (TOST at ±{fed_cen[0]['margin']:g}): {_count_line(fed_cen, FAMILIES[0])}."
                + (
                    f" The federated model answers one class for >= 90 % of rows"
                    f"{' in at least one seed' if any(_in_seeds(c, 'a') for c in fed_cen) else ''} in {collapsed} of "
                    f"{len(fed_cen)} cells."
                    if collapsed
                    else ""
                )
            )
        fed_iso = [c for c in rows if c["family"] == FAMILIES[1]]
        if fed_iso:
            lines.append(
                f"- Federated vs isolated (mean of the clients, one-sided): {_count_line(fed_iso, FAMILIES[1])}."
            )
        for method in sorted({c["method"] for c in rows if c["family"] == FAMILIES[3]}):
            cheap = [c for c in rows if c["family"] == FAMILIES[3] and c["method"] == method]
            lines.append(
                f"- {method} vs LoRA, federated (non-inferiority at -{cheap[0]['margin']:g}): "
                f"{_count_line(cheap, FAMILIES[3])}; costs vs LoRA: {_cost_line(cheap)}."
            )
        lines.append("")
    return "\n".join(lines).rstrip()


#: how the headline names the methods
_NAMES = {"lora": "LoRA", "qlora": "QLoRA", "ia3": "IA3"}


def _margins_text(rows: list[dict], sign: str = "±", several: str = "its dataset's margin") -> str:
    """The margin(s) of ``rows``: "±0.05" for one, "its dataset's margin (fiqa_sa ±0.05, fpb ±0.03)" for
    several; ``sign="-"`` with ``several="minus its dataset's margin"`` gives the non-inferiority bound."""
    margins = {c["dataset"]: c["margin"] for c in rows}
    if len(set(margins.values())) == 1:
        return f"{sign}{next(iter(margins.values())):g}"
    inner = ", ".join(f"{d} {sign if sign == '±' else ''}{m:g}" for d, m in sorted(margins.items()))
    return f"{several} ({inner})"


def _beyond_margin(c: dict) -> bool:
    """Whether the 90 % CI TOST decides with lies wholly outside ±margin: the difference is shown to exceed
    the margin, not only to differ from zero (a significant difference whose CI reaches inside the margin is
    "not equivalent" in the verdict table too, but is not shown to be larger than the margin)."""
    lo, hi = c.get("ci_tost") or c["ci"]
    return hi < -c["margin"] or lo > c["margin"]


def headline_sentences(verdicts: dict, profile: str | None = None) -> list[str]:
    """The answer in at most four sentences per domain (plus one saying where it comes from), counted
    from the verdicts exactly as :func:`answer_markdown` counts them: what the README says first.
    "Inconclusive" and "not better" are said as such; nothing is stronger than the verdict table."""
    comparisons = verdicts.get("comparisons") or []
    if not comparisons:
        return []
    by_domain: dict[str, list[dict]] = {}
    for c in comparisons:
        by_domain.setdefault(domain_of(c["dataset"]), []).append(c)
    source = f"the `{profile}` profile's" if profile else "the"
    out = [
        f"Counted from {source} paired tests on the same held-out rows (one cell = backbone x dataset x PEFT "
        f"method; Holm-corrected within each family of comparisons)."
    ]
    for domain, rows in by_domain.items():
        fed_cen = [c for c in rows if c["family"] == FAMILIES[0]]
        if fed_cen:
            n = len(fed_cen)
            count = {
                w: sum(c["verdict"] == w for c in fed_cen) for w in ("equivalent", "not equivalent", "inconclusive")
            }
            lower = sum(c["verdict"] == "not equivalent" and c["effect"] < 0 for c in fed_cen)
            beyond = sum(c["verdict"] == "not equivalent" and _beyond_margin(c) for c in fed_cen)
            other = n - sum(count.values())
            out.append(
                f"**{domain.capitalize()}** ({n} cells): federated was equivalent to centralized within "
                f"{_margins_text(fed_cen)} (TOST) in {count['equivalent']}, not equivalent in "
                f"{count['not equivalent']}"
                + (
                    f" (federated lower in {lower} of them; the whole 90 % CI beyond the margin in {beyond})"
                    if count["not equivalent"]
                    else ""
                )
                + " and inconclusive in "
                f"{count['inconclusive']}" + (f", undecided in {other}" if other else "") + "."
            )
            collapsed = sum(bool(c["federated_collapsed"]) for c in fed_cen)
            if collapsed:
                seeds = " in at least one seed" if any(_in_seeds(c, "a") for c in fed_cen) else ""
                out.append(
                    f"The federated model answered one class on at least 90 % of the rows{seeds} in "
                    f"{collapsed} of these {n} cells."
                )
        fed_iso = [c for c in rows if c["family"] == FAMILIES[1]]
        if fed_iso:
            better = sum(c["verdict"] == "better" for c in fed_iso)
            out.append(
                f"Federated beat the mean of the clients trained alone in {better} of {len(fed_iso)} "
                f"{domain} cells (one-sided paired test); in the others it was not shown to be better."
            )
        parts = []
        for method in sorted({c["method"] for c in rows if c["family"] == FAMILIES[3]}):
            cheap = [c for c in rows if c["family"] == FAMILIES[3] and c["method"] == method]
            non = sum(c["verdict"] == "non-inferior" for c in cheap)
            inf = sum(c["verdict"] == "inferior" for c in cheap)
            inc = sum(c["verdict"] == "inconclusive" for c in cheap)
            parts.append(
                f"{_NAMES.get(method, method)} was non-inferior to LoRA in {non} of {len(cheap)} cells, "
                f"inferior in {inf} and inconclusive in {inc}"
            )
        if parts:
            noninf = [c for c in rows if c["family"] == FAMILIES[3]]
            bound = _margins_text(noninf, "-", "minus its dataset's margin")
            out.append(f"Federated, at {bound}: " + "; ".join(parts) + ".")
    return out


def headline_markdown(verdicts: dict, profile: str | None = None, also: list[str] = ()) -> str:
    """:func:`headline_sentences` as a short list (the README's answer beside the forest plot), then ``also``
    (e.g. what the learning curves say of the domains without verdicts,
    :func:`fedlab.reporting.curves.outside_grid_sentences`)."""
    sentences = headline_sentences(verdicts, profile)
    if not sentences and not also:
        return "(no results to answer from yet)"
    head = [sentences[0], ""] if sentences else []
    return "\n".join(head + [f"- {s}" for s in [*sentences[1:], *also]])
