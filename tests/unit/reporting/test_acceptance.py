"""reporting.acceptance: the reference study's "done when", cell by cell, on the smoke fixture store."""

from fedlab.experiment.profiles import load_profile
from fedlab.reporting import acceptance, verdicts

SMOKE = load_profile("smoke")


def test_each_criterion_is_checked_per_cell_and_counted(fixture_results):
    v = verdicts.profile_verdicts(SMOKE)
    rows = {r["method"]: r for r in acceptance.acceptance_rows(SMOKE, v)}
    assert set(rows) == {"lora", "qlora", "ia3"}  # smoke's finance dataset is fpb; medqa is healthcare
    assert rows["ia3"]["status"] == "not run yet"
    lora = rows["lora"]
    # centralized is right on 130 of 200 rows, the zero-shot floor on none: it beats the floor
    assert lora["beats_floor"] is True and lora["floor"]["p"] < 0.05
    assert lora["verdict"] == "not equivalent" and lora["collapsed"] == {"centralized": [], "federated": []}
    assert lora["half_width"] == (lora["ci_tost"][1] - lora["ci_tost"][0]) / 2 and lora["margin"] == 0.03
    assert lora["precise"] == (lora["half_width"] <= 0.03)
    # smoke scores 16 rows (max_eval): not the whole held-out set
    assert lora["all_rows"] is False
    table = acceptance.acceptance_markdown(SMOKE, v)
    assert "over the 3 finance cells of profile `smoke` (2 run, 1 not run yet, 0 cut)" in table
    assert "- all held-out rows: 0 of 2;" in table and "| tiny-random | fpb | ia3 | not run yet |" in table


def test_a_cell_with_seeds_in_but_no_verdict_yet_is_running_not_unrun(fixture_results):
    """A cell whose rules pinned more seeds than have landed has no verdict; it is said to be running."""
    v = verdicts.profile_verdicts(SMOKE)
    v = {**v, "comparisons": [c for c in v["comparisons"] if c.get("method") != "lora"]}
    # lora's federated and centralized seeds are in, its verdict is not (as when a rule has pinned another seed)
    rows = {r["method"]: r for r in acceptance.acceptance_rows(SMOKE, v)}
    assert rows["lora"]["status"].startswith("running: 1 of 1 federated and 1 of 1 centralized seeds in;")
    assert rows["ia3"]["status"] == "not run yet"
    table = acceptance.acceptance_markdown(SMOKE, v)
    assert "(1 run, 1 running, 1 not run yet, 0 cut)" in table


def test_a_seed_that_answers_one_class_on_90_percent_of_rows_is_named():
    from types import SimpleNamespace

    def run_(seed, shares):
        return SimpleNamespace(config={"seed": seed}, metrics={"prediction_shares": shares})

    found = acceptance._collapsed_seeds(
        [run_(0, [0.5, 0.1, 0.4]), run_(1, [0.9, 0.05, 0.05]), run_(2, [0.02, 0.97, 0.01])]
    )
    assert found == [1, 2]


def test_a_cell_wider_than_its_margin_shows_what_the_precision_rule_asks():
    from fedlab.reporting.verdicts import precision_rule

    wide = precision_rule((-0.058, 0.046), 0.05, 3, 9, {"seeds_needed": 3})
    assert acceptance._precision_text(wide) == "; precision rule: 4 seeds a side next"
    assert acceptance._precision_text(precision_rule((-0.1, 0.1), 0.05, 9, 9)) == "; precision rule: cap reached"
    assert acceptance._precision_text(precision_rule((-0.02, 0.02), 0.05, 3, 9)) == ""
    assert acceptance._precision_text(None) == ""  # a profile without the rule


def test_a_profile_with_the_precision_rule_records_it_on_each_federated_centralized_verdict(fixture_results):
    import dataclasses

    ruled = dataclasses.replace(SMOKE, analysis=dataclasses.replace(SMOKE.analysis, precision_cap=9))
    fvc = [c for c in verdicts.profile_verdicts(ruled)["comparisons"] if c["family"] == verdicts.FAMILIES[0]]
    assert fvc
    for c in fvc:
        lo, hi = c["ci_tost"]
        p = c["precision"]
        assert p["half_width"] == (hi - lo) / 2 and p["within_margin"] == (p["half_width"] <= c["margin"])
        assert p["n_seeds"] == c["n_seeds"] and p["cap"] == 9
    # the same profile without the rule records none
    assert all(c.get("precision") is None for c in verdicts.profile_verdicts(SMOKE)["comparisons"])
