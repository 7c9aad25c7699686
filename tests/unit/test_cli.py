"""The command line explains itself: every option says what it does and its default, ``--set`` reaches any
config field (and refuses unknown ones with a suggestion), ``--print-config`` shows what would run.
Nothing here trains."""

import argparse
import json
import re

import pytest

from fedlab.cli import build_parser, main
from fedlab.experiment.profiles import load_profile
from fedlab.experiment.store import ResultStore

RUN = ["run", "--profile", "smoke", "--dataset", "fpb", "--setting", "centralized"]


def subcommands(parser):
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action, action.choices


def printed(capsys) -> tuple[dict, dict]:
    """The config JSON and the ``key: value`` lines after it that ``--print-config`` wrote."""
    out = capsys.readouterr().out
    body, _, tail = out.partition("\n}\n")
    lines = dict(line.split(": ", 1) for line in tail.strip().splitlines())
    return json.loads(body[body.index("{") :] + "\n}"), lines


def test_every_option_of_every_subcommand_has_help_that_states_its_default():
    parser = build_parser()
    action, commands = subcommands(parser)
    assert {c.dest for c in action._choices_actions} == set(commands)
    assert all(c.help for c in action._choices_actions), "a subcommand without help in `fedlab -h`"
    assert {"run", "grid", "curves", "deploy", "zeroshot", "sweep-lr"} <= set(commands)
    for name, sub in commands.items():
        formatter = sub._get_formatter()
        for opt in sub._actions:
            if isinstance(opt, argparse._HelpAction):
                continue
            where = f"fedlab {name} {'/'.join(opt.option_strings) or opt.dest}"
            assert opt.help and opt.help.strip(), f"{where} has no help"
            text = formatter._expand_help(opt)  # what -h prints (the formatter appends "(default: ...)")
            if opt.option_strings:
                assert "default" in text or "(required)" in text, f"{where}: help does not state its default: {text!r}"
        sub.format_help()  # every help string formats (no stray %)
    run = commands["run"]
    helps = {o.dest: run._get_formatter()._expand_help(o) for o in run._actions}
    assert "default: from the profile, else 0.001" in helps["lr"] and "(default: federated)" in helps["setting"]
    assert "--set" in run.format_help() and "--print-config" in run.format_help() and "--delimiter" in run.format_help()
    assert all("--set" in commands[c].format_help() for c in ("grid", "deploy", "zeroshot"))


def test_print_config_shows_the_resolved_config_its_hash_and_result_path_and_runs_nothing(results, capsys):
    assert main(RUN + ["--print-config"]) == 0
    config, lines = printed(capsys)
    expected = load_profile("smoke").config("fpb", "centralized", "lora").resolved()
    assert config == json.loads(json.dumps(expected.to_dict(), default=str))
    assert lines["hash"] == expected.hash() and lines["result"] == str(ResultStore().path(expected))
    assert lines["finished"] == "no" and not list(results.rglob("*.json"))  # nothing ran


def test_set_reaches_the_config_after_the_named_flags(results, capsys):
    assert main(RUN + ["--lr", "0.5", "--set", "lr=0.01", "--set", "schedule=linear", "--print-config"]) == 0
    config, lines = printed(capsys)
    assert config["lr"] == 0.01 and config["schedule"] == "linear"
    expected = load_profile("smoke").config("fpb", "centralized", "lora", lr=0.01, schedule="linear").resolved()
    assert lines["hash"] == expected.hash()
    # YAML values with the field's type: 1e-3 is a number, null is None, a mapping is a dict, text stays text
    assert (
        main(
            RUN
            + [
                "--set",
                "lr=1e-3",
                "--set",
                "max_eval=null",
                "--set",
                "method_params={r: 4}",
                "--set",
                "energy_country=NO",
                "--set",
                "system_prompt=null",
                "--print-config",
            ]
        )
        == 0
    )
    config, _ = printed(capsys)
    assert config["lr"] == 0.001 and "max_eval" in config and config["max_eval"] is None
    assert config["method_params"] == {"r": 4} and config["energy_country"] == "NO" and config["system_prompt"] is None


def test_client_ranks_from_the_flag_or_set_and_refused_with_the_fix(results, capsys):
    fed = ["run", "--profile", "smoke", "--dataset", "fpb", "--setting", "federated", "--clients", "4"]
    assert main(fed + ["--strategy", "hetlora", "--client-ranks", "4,8,16,16", "--print-config"]) == 0
    config, lines = printed(capsys)
    assert config["client_ranks"] == [4, 8, 16, 16] and config["strategy"] == "hetlora"
    expected = load_profile("smoke").config(
        "fpb", "federated", "lora", clients=4, strategy="hetlora", client_ranks=(4, 8, 16, 16)
    )
    assert lines["hash"] == expected.resolved().hash()
    assert main(fed + ["--strategy", "flexlora", "--set", "client_ranks=[4, 8, 16, 16]", "--print-config"]) == 0
    assert printed(capsys)[0]["client_ranks"] == [4, 8, 16, 16]
    assert main(fed + ["--client-ranks", "4,8,16,16", "--print-config"]) == 2
    assert "Fix: --strategy hetlora or flexlora" in capsys.readouterr().err
    assert main(fed + ["--strategy", "hetlora", "--set", "client_ranks=[4, x]", "--print-config"]) == 2
    assert "client_ranks takes a list of integers" in capsys.readouterr().err


@pytest.mark.parametrize(
    "setting, message",
    [
        ("nonsense=1", r"'nonsense' is not a run-config field\. Valid names: .*lr.*Fix:"),
        ("shedule=linear", r"Did you mean 'schedule'\?.*Fix:"),
        ("dataset=medqa", r"chosen by --dataset NAME \(or --data PATH.*Fix: use that flag"),
        ("clients=many", r"clients takes an integer, got 'many'\. Fix: e\.g\. --set clients=4"),
        ("lr", r"is not KEY=VALUE"),
    ],
)
def test_set_refuses_what_is_not_a_config_field_with_a_suggestion(results, capsys, setting, message):
    assert main(RUN + ["--set", setting, "--print-config"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fedlab: error: --set")
    assert re.search(message, err), err


def test_own_data_flags_reach_the_loader_and_the_summary_names_the_delimiter(results, tmp_path, capsys):
    path = tmp_path / "export.csv"
    rows = "".join(f"{k} request {i};{k}\n" for i, k in enumerate(["billing", "clinical"] * 20))
    path.write_bytes(("\ufeffnote;kind\n" + rows).encode("utf-8"))
    own = [
        "run",
        "--profile",
        "smoke",
        "--data",
        str(path),
        "--text-col",
        "note",
        "--label-col",
        "kind",
        "--setting",
        "centralized",
        "--print-config",
    ]
    assert main(own) == 0
    captured = capsys.readouterr()
    assert "delimited by ';' (detected), utf-8 with BOM" in captured.err  # stdout keeps the config alone
    assert json.loads(captured.out.partition("\n}\n")[0] + "\n}")["data"]["text_col"] == "note"
    assert main(own + ["--delimiter", ","]) == 2  # told the wrong delimiter: the columns are not found
    assert "has no column(s) ['note', 'kind']" in capsys.readouterr().err
    assert main(RUN + ["--delimiter", ";"]) == 2 and "with --data PATH" in capsys.readouterr().err


def test_aggregation_runs_notebook_07s_study_each_run_once_and_status_reads_the_cache(
    results, runs_take_40_minutes, capsys, monkeypatch
):
    """``fedlab aggregation`` trains what notebook 07 would (the reference profile's study in the background,
    before the notebook reads it from the cache); ``--status`` trains nothing."""
    import shutil

    import fedlab.cli
    import fedlab.study
    from fedlab import paths

    # the study's budget comes from the committed FPB LoRA curve and its rate from the committed sweep at that
    # budget (curves.sweep): only they are copied to the private results folder
    from fedlab.experiment.sweeps import sweep_path

    monkeypatch.delenv("FEDLAB_RESULTS_DIR")
    reference = load_profile("reference")
    curve = ResultStore().lookup(reference.curve_config("smollm2-135m", "fpb", "lora").resolved())
    assert curve is not None, "the committed SmolLM2 FPB LoRA curve"
    swept = sweep_path("reference", "smollm2-135m", "fpb", "lora")
    monkeypatch.setenv("FEDLAB_RESULTS_DIR", str(results))
    (results / curve.path.parent.name).mkdir(parents=True)
    shutil.copy(curve.path, results / curve.path.parent.name / curve.path.name)
    sweep_path("reference", "smollm2-135m", "fpb", "lora").parent.mkdir(parents=True)
    shutil.copy(swept, sweep_path("reference", "smollm2-135m", "fpb", "lora"))
    assert paths.results_dir() == results
    expected = reference.study_configs()
    assert len(expected) == 7  # 4 strategies + FedAvg at 3 DP noises; reference has no mixed ranks or SecAgg+
    assert main(["aggregation", "--profile", "reference", "--status"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 7 and all(line.endswith("not run yet") for line in out)
    assert [line.split(" seed ")[0].split(" ", 1)[1] for line in out] == [
        f"smollm2-135m fpb lora {s}" for s in ("fedavg", "ffa-lora", "fedsa-lora", "fedex-lora")
    ] + [f"smollm2-135m fpb lora fedavg dp noise {z}" for z in (0.3, 1.0, 3.0)]

    ran = []
    monkeypatch.setattr(fedlab.study, "run", lambda cfg, **kw: ran.append(cfg))
    monkeypatch.setattr(fedlab.cli, "summary_line", lambda result: "")
    # --deadline: the study queued behind a grid starts no run that would end after it (each planned at 40 min)
    assert main(["aggregation", "--profile", "reference", "--deadline", "30m"]) == 0
    out = capsys.readouterr().out
    assert ran == [] and "stopped before [1/7] smollm2-135m fpb lora fedavg seed 0: its estimated 40 min" in out
    assert "7 run(s) not started" in out
    assert main(["aggregation", "--profile", "reference", "--deadline", "2h"]) == 0
    assert len(ran) == 7, "run() is replaced and takes no time, so each run still fits when it starts"
    ran.clear()
    assert main(["aggregation", "--profile", "reference"]) == 0
    assert [c.hash() for c in ran] == [c.hash() for c in expected]
    assert {c.setting for c in ran} == {"federated"} and {c.select for c in ran} == {"last"}

    no_study = results.parent / "nostudy.yaml"
    no_study.write_text("description: no study\ndefaults: {model: tiny-random}\ngrid: {datasets: [fpb]}\n")
    assert main(["aggregation", "--profile", str(no_study)]) != 0
    assert "has no grid.aggregation cell" in capsys.readouterr().err
