"""reporting.claims: the answer per domain and the headline, counted from the verdicts."""

from pathlib import Path

from fedlab.experiment.profiles import load_profile
from fedlab.reporting import claims, verdicts

SMOKE = load_profile("smoke")
REPO = Path(__file__).resolve().parents[3]


def test_the_answer_per_domain_counts_the_verdicts_in_their_own_words(fixture_results):
    v = verdicts.profile_verdicts(SMOKE)
    text = claims.answer_markdown(v)
    lora = next(c for c in v["comparisons"] if c["method"] == "lora" and c["family"] == verdicts.FAMILIES[0])
    assert text.startswith("**finance** (fpb; tiny-random;")
    # the significant difference is named with its effect, though the two marginal CIs overlap
    assert (
        "Federated vs centralized (TOST at ±0.03): 2 cells: *equivalent* 1 (tiny-random fpb qlora " in text
    ) and f"*not equivalent* 1 (tiny-random fpb lora {lora['effect']:+.3f} [" in text
    assert "*inconclusive*" not in text.split("Federated vs isolated")[0]  # a verdict no cell got is not listed
    assert "Federated vs isolated (mean of the clients, one-sided): 2 cells: *better* 2 (" in text
    assert "qlora vs LoRA, federated (non-inferiority at -0.03): 1 cell: *non-inferior* 1 (" in text
    # the fixture's results were saved without the runner: their memory was not measured, and is not compared
    assert "costs vs LoRA: bytes equal 1; energy_kwh undecided 1; peak_memory_mb not measured 1." in text
    assert claims.answer_markdown({"comparisons": []}) == "(no results to answer from yet)"


def _comparison(family, dataset, method, verdict, effect=0.0, collapsed=False, model="m"):
    return {
        "family": family,
        "dataset": dataset,
        "method": method,
        "model": model,
        "verdict": verdict,
        "effect": effect,
        "ci": [effect - 0.1, effect + 0.1],
        "ci_tost": [effect - 0.08, effect + 0.08],
        "margin": 0.03 if dataset == "fpb" else 0.05,
        "federated_collapsed": collapsed,
        "n_seeds": 3,
    }


def test_headline_counts_the_verdicts_in_at_most_ten_sentences():
    F = verdicts.FAMILIES
    rows = [
        _comparison(F[0], "fpb", "lora", "not equivalent", -0.2, collapsed=True),
        _comparison(F[0], "fpb", "ia3", "equivalent"),
        _comparison(F[0], "fiqa_sa", "lora", "not equivalent", +0.1),
        _comparison(F[0], "medqa", "lora", "inconclusive"),
        _comparison(F[1], "fpb", "lora", "better"),
        _comparison(F[1], "fiqa_sa", "lora", "not better"),
        _comparison(F[3], "fpb", "ia3", "inferior"),
        _comparison(F[3], "fiqa_sa", "ia3", "non-inferior"),
        _comparison(F[3], "fpb", "qlora", "inconclusive"),
    ]
    sentences = claims.headline_sentences({"comparisons": rows}, profile="p")
    assert len(sentences) <= 10
    finance = next(s for s in sentences if s.startswith("**Finance**"))
    assert "(3 cells)" in finance and (
        "in 1, not equivalent in 2 (federated lower in 1 of them; the whole 90 % CI beyond the margin in 1)" in finance
    )
    assert "fiqa_sa ±0.05, fpb ±0.03" in finance
    assert any("1 of 3 of these" in s or "in 1 of these 3 cells" in s for s in sentences)
    assert any(s.startswith("Federated beat") and "in 1 of 2 finance cells" in s for s in sentences)
    cheap = next(s for s in sentences if "non-inferior to LoRA" in s and "IA3" in s)
    assert cheap.startswith("Federated, at minus its dataset's margin (fiqa_sa 0.05, fpb 0.03): ")
    assert "IA3 was non-inferior to LoRA in 1 of 2 cells, inferior in 1" in cheap and "QLoRA" in cheap
    assert any(s.startswith("**Healthcare** (1 cells)") and "inconclusive in 1" in s for s in sentences)
    committed = json_load(REPO / "results" / "verdicts" / "quick.json")
    assert 0 < len(claims.headline_sentences(committed, "quick")) <= 10


def json_load(path):
    import json

    return json.loads(Path(path).read_text())
