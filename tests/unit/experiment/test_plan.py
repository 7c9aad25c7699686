"""experiment.plan: the deadline of `fedlab grid/curves/aggregation --deadline` (when a run would end, and where the
command stops)."""

from datetime import datetime, timedelta

import pytest

from fedlab.errors import ConfigError
from fedlab.experiment.config import RunConfig
from fedlab.experiment.plan import Plan, parse_deadline

NOW = datetime(2026, 12, 6, 5, 0, 0)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("07:40", datetime(2026, 12, 6, 7, 40)),
        ("4:30", datetime(2026, 12, 7, 4, 30)),  # already past today: its next occurrence, tomorrow
        ("90m", NOW + timedelta(minutes=90)),
        ("2.5h", NOW + timedelta(hours=2.5)),
        (" 45 min ", NOW + timedelta(minutes=45)),
    ],
)
def test_a_deadline_is_a_time_of_day_or_a_duration(text, expected):
    assert parse_deadline(text, now=NOW) == expected


@pytest.mark.parametrize("text", ["soon", "25:00", "7:61", "90", "-1h"])
def test_an_unreadable_deadline_names_the_forms_it_takes(text):
    with pytest.raises(ConfigError, match="Fix: e.g. --deadline 07:40 or --deadline 90m"):
        parse_deadline(text, now=NOW)


def test_a_run_fits_only_if_its_estimate_ends_by_the_deadline():
    known, unknown, reused = (RunConfig(dataset="fpb", model="tiny-random", seed=s).resolved() for s in (0, 1, 2))
    plan = Plan(reuse=[reused], train=[known, unknown])
    plan.seconds = {known.hash(): 1500.0, unknown.hash(): None}
    plan.source = {known.hash(): "measured", unknown.hash(): "flops"}
    assert plan.ends_after(known, NOW + timedelta(minutes=25), now=NOW) is None  # ends exactly then
    why = plan.ends_after(known, NOW + timedelta(minutes=24), now=NOW)
    assert why == "its estimated 25 min (measured) would end at 05:25, after the deadline 2026-12-06 05:24"
    assert "cannot be estimated" in plan.ends_after(unknown, NOW + timedelta(days=1), now=NOW)
    assert plan.ends_after(reused, NOW, now=NOW) is None  # a reused run costs nothing


def test_the_grid_stops_before_the_first_run_that_would_end_after_the_deadline(
    runs_take_40_minutes, monkeypatch, capsys
):
    import fedlab.cli
    import fedlab.study
    from fedlab.cli import main

    ran = []
    monkeypatch.setattr(fedlab.study, "run", lambda cfg, **kw: ran.append(cfg))
    monkeypatch.setattr(fedlab.cli, "summary_line", lambda result: "")
    argv = ["grid", "--profile", "quick", "--only-models", "smollm2-135m", "--only-datasets", "fpb"]
    argv += ["--only-methods", "ia3", "--only-settings", "federated"]
    assert main([*argv, "--deadline", "30m"]) == 0
    out = capsys.readouterr().out
    assert ran == [] and "stopped before [1/3] smollm2-135m federated fpb ia3 seed 0: its estimated 40 min" in out
    assert "3 run(s) not started; the same command goes on from here" in out
    assert main([*argv, "--deadline", "45m"]) == 0
    assert len(ran) == 3  # run() is replaced and takes no time, so each of the three still fits when it starts
    assert main([*argv, "--deadline", "whenever"]) != 0
    assert "Fix: e.g. --deadline 07:40" in capsys.readouterr().err


def test_curves_stop_before_a_curve_that_would_end_after_the_deadline(
    results, runs_take_40_minutes, monkeypatch, capsys
):
    """``fedlab curves --deadline`` (a long curve queued behind a grid in one session) starts no curve that
    would end after it, and says how many are left."""
    import fedlab.study
    from fedlab.cli import main

    ran = []
    monkeypatch.setattr(fedlab.study, "run", lambda cfg, **kw: ran.append(cfg))
    argv = ["curves", "--profile", "reference", "--only-models", "smollm2-135m", "--only-datasets", "fpb"]
    assert main([*argv, "--only-methods", "lora", "--deadline", "30m"]) == 0
    out = capsys.readouterr().out
    assert ran == [], "nothing is trained past the deadline"
    assert "stopped before [1/1] curve smollm2-135m fpb lora: its estimated 40 min (measured)" in out
    assert "1 run(s) not started; the same command goes on from here" in out
    assert main([*argv, "--only-methods", "lora", "--deadline", "soon"]) == 2
    assert "Fix: e.g. --deadline 07:40" in capsys.readouterr().err


def test_the_estimates_are_made_again_after_each_trained_run(monkeypatch, capsys):
    """The first run of a shape is estimated from other shapes (here 20 min); once it has finished, its measured
    time (here 40 min) times the next: a deadline that the stale estimate would let a second run start under
    stops the grid instead (2026-12-06: an isolated run estimated at the grid's start overran the deadline)."""
    import fedlab.cli
    import fedlab.study
    from fedlab.cli import main

    ran, plans = [], []

    def plan_grid(configs, **_):  # 20 minutes a run until one has run, then 40
        plan = Plan(train=[c.resolved() for c in configs])
        plan.seconds = {c.hash(): 1200.0 if not ran else 2400.0 for c in plan.train}
        plan.source = {c.hash(): "calibrated" if not ran else "measured" for c in plan.train}
        plans.append(plan)
        return plan

    monkeypatch.setattr(fedlab.cli, "plan_grid", plan_grid)
    monkeypatch.setattr(fedlab.study, "run", lambda cfg, **kw: ran.append(cfg))
    monkeypatch.setattr(fedlab.cli, "summary_line", lambda result: "")
    argv = ["grid", "--profile", "quick", "--only-models", "smollm2-135m", "--only-datasets", "fpb"]
    argv += ["--only-methods", "ia3", "--only-settings", "federated", "--deadline", "30m"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert len(ran) == 1 and len(plans) == 2, "one run, then the estimates again"
    assert "stopped before [2/3] smollm2-135m federated fpb ia3 seed 1: its estimated 40 min (measured)" in out
    assert "2 run(s) not started" in out
