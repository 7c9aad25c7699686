"""The ``fedlab`` command line: run, grid, deploy, zero-shot, prepare, generate, reproduce, figures, tables, sweep-lr.

    fedlab prepare                                   # convert the embedded model, write split manifests
    fedlab run --dataset fpb --method qlora --setting federated --clients 4 --rounds 3 \\
               --partition dirichlet:0.5 --profile smoke
    fedlab grid --profile quick                      # every cell of a profile's grid (cached)
    fedlab deploy --profile smoke --dataset fpb      # the same run on Flower's Deployment Engine
    fedlab zeroshot --profile quick                  # the zero-shot floor on the profile's datasets
    fedlab generate results/federated/<run>.json     # answers of a run's final adapter
    fedlab reproduce --profile quick                 # execute all notebooks, render reports/
    fedlab figures --profile quick                   # remake figures + README tables from results
    fedlab tables [--readme]                         # tables from result files only
    fedlab sweep-lr --dataset fpb --method lora      # choose the learning rate on the validation split
    fedlab land ../grid --watch 60                   # commit each result a grid in a worktree finishes
    fedlab run --profile smoke --dataset fpb --setting centralized --set schedule=linear --print-config
                                                     # any config field (--set KEY=VALUE); show, run nothing

`fedlab COMMAND -h` lists a command's options with their defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import typing

import yaml

from fedlab import paths, pipeline, study
from fedlab.core.evaluate import EVALUATORS
from fedlab.core.models import embedded_dir, registry_names
from fedlab.core.peft_methods import METHODS
from fedlab.data import BUILTIN_DATASETS, MAIN_DATASETS, load_splits
from fedlab.data.registry import SOURCES
from fedlab.data.user import DELIMITERS
from fedlab.errors import ConfigError, FedlabError, did_you_mean
from fedlab.experiment.config import DP_DEFAULTS, SECAGG_DEFAULTS, SETTINGS, STRATEGIES, Faults, RunConfig
from fedlab.experiment.curves import budget_from_curve
from fedlab.experiment.generate import generate_from_result
from fedlab.experiment.landing import land
from fedlab.experiment.migrate import migrate_store
from fedlab.experiment.plan import parse_deadline, pending_note, plan_grid, profile_configs
from fedlab.experiment.profiles import Profile, load_profile, profile_names
from fedlab.experiment.store import ResultStore, RunResult
from fedlab.experiment.sweeps import sweep_gap, sweep_path
from fedlab.fl.deployment.run import deploy_run
from fedlab.reporting.curves import gate_state
from fedlab.reporting.readme import BLOCKS, update_readme
from fedlab.runs.sweep import DEFAULT_LRS, lr_sweep, pending_sweeps

#: command-line flags that override run settings (flag name -> RunConfig field)
OVERRIDES = {
    "model": str,
    "dtype": str,
    "source": str,
    "seed": int,
    "evaluator": str,
    "max_eval": int,
    "eval_batch_size": int,
    "clients": int,
    "rounds": int,
    "partition": str,
    "strategy": str,
    "fraction": float,
    "min_clients": int,
    "local_steps": int,
    "batch_size": int,
    "grad_accum": int,
    "lr": float,
    "max_length": int,
    "energy_country": str,
    "faults": lambda text: Faults(fail_clients=tuple(int(x) for x in text.split(",") if x.strip())),
    "system_prompt": str,  # "default" (or none/null): the chat template's own system turn
    "group_by_length": lambda text: text.lower() in ("1", "true", "yes", "on"),
    "client_ranks": lambda text: _ranks(text),
}
#: flags whose name differs from the config field
FLAG_NAMES = {"faults": "fail-clients"}
#: what each OVERRIDES flag sets (the RunConfig field's meaning); its default is the profile's, else RunConfig's
OVERRIDE_HELP = {
    "model": f"backbone: a registered name ({', '.join(registry_names())}), a local save_pretrained() folder or a Hugging Face id (org/name)",
    "dtype": "weights' dtype: auto (bf16 where the hardware has it natively, else fp32) | bf16 | fp16 | fp32",
    "source": f"where the datasets are read from: {' | '.join(SOURCES)} (auto: local when the data folder exists, else hub)",
    "seed": "seed of the partition draw, adapter initialisation, data order, client sampling and bootstrap",
    "evaluator": f"how answers are scored: {' | '.join(EVALUATORS)} (loglik: the most likely option; generate: "
    f"parse generated text)",
    "max_eval": "evaluate on the first N rows of the fixed eval split (unset/null: all of it)",
    "eval_batch_size": "prompts per evaluation batch",
    "clients": "number of federated clients (partitions); --data with --client-col sets it to the number of sites",
    "rounds": "federated rounds",
    "partition": "how rows are split over clients: iid | dirichlet:ALPHA (smaller = more label skew) | "
    "quantity[:linear|square|exponential] | natural",
    "strategy": f"Flower aggregation strategy: {' | '.join(STRATEGIES)}",
    "fraction": "share of clients sampled per round, in (0, 1]",
    "min_clients": "a round needs at least this many successful client replies",
    "local_steps": "optimizer steps each sampled client makes per round",
    "batch_size": "examples per optimizer micro-batch",
    "grad_accum": "micro-batches accumulated per optimizer step",
    "lr": "peak learning rate (e.g. 0.001 or 1e-3)",
    "max_length": "tokens per prompt; longer inputs are shortened (see the truncation field)",
    "energy_country": "ISO 3166 alpha-3 country code whose grid carbon intensity codecarbon uses (e.g. USA, DEU, FRA)",
    "faults": "comma-separated client (partition) ids whose training fails in every round, e.g. 0,2 "
    "(fault injection; part of the config)",
    "system_prompt": "the chat template's system turn, the same in training and evaluation: a text; '' = an empty "
    "turn; none/null/default = the template's own",
    "group_by_length": "batch examples of similar length together (less padding): true | false",
    "client_ranks": "each client's LoRA rank, comma-separated, one per client, e.g. 4,8,16,16 (needs --strategy "
    "hetlora or flexlora; lora_alpha scales with the rank); unset: every client at the method's r",
}
#: the RunConfig fields chosen by a command's own flags, not by --set: command -> field -> (how it is chosen, the fix)
OWN_FLAGS = {
    "run": {
        "dataset": ("by --dataset NAME (or --data PATH for your own file)", "use that flag"),
        "setting": ("by --setting", "use that flag"),
        "method": ("by --method", "use that flag"),
    },
    "grid": {
        "dataset": ("by the profile's grid.datasets (a subset: --only-datasets)", "use --only-datasets"),
        "setting": ("by the profile's grid.settings", "choose a profile (or use fedlab run --setting)"),
        "method": ("by the profile's grid.methods (a subset: --only-methods)", "use --only-methods"),
    },
    "deploy": {
        "dataset": ("by --dataset", "use that flag"),
        "setting": ("already: a deployment is federated", "leave it out"),
        "method": ("by --method", "use that flag"),
    },
    "zeroshot": {
        "dataset": ("by --datasets", "use that flag"),
        "setting": ("already: these runs are zero-shot", "leave it out"),
        "method": ("by nothing: a zero-shot run trains no adapter", "leave it out"),
    },
}


def _ranks(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ConfigError(
            f"--client-ranks {text}: not comma-separated integers. Fix: e.g. --client-ranks 4,8,16,16."
        ) from None


#: what a --set value may be written as to mean None
NULL_WORDS = ("null", "Null", "NULL", "~", "none", "None")
FROM_PROFILE = "default: from the profile"


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written (the examples above) and every option's default in its help: ``(default:
    X)`` is appended unless the help already says its default (an option whose value comes from the
    profile says so); a required option says ``(required)``, a flag ``(default: off)``."""

    def _get_help_string(self, action):
        text = action.help or ""
        if (
            text is argparse.SUPPRESS
            or not action.option_strings
            or action.default is argparse.SUPPRESS
            or "default" in text.lower()
        ):
            return text
        if action.required:
            return f"{text} (required)"
        if isinstance(action, argparse._StoreTrueAction):
            return f"{text} (default: off)"
        default = action.default
        if default is None:
            return text  # a None default is described in the help itself (checked by the tests)
        shown = (" ".join(map(str, default)) or "none") if isinstance(default, (list, tuple)) else str(default)
        return f"{text} (default: {shown.replace('%', '%%')})"


def _grid_subset(option: str, chosen: list[str] | None, available: list[str], profile: str) -> list[str]:
    """The values of one grid axis that ``fedlab grid`` runs: all of the profile's, or those chosen (in that order)."""
    if not chosen:
        return list(available)
    unknown = [v for v in chosen if v not in available]
    if unknown:
        raise ConfigError(f"{option} {unknown} are not in profile {profile!r}: choose from {list(available)}.")
    return list(dict.fromkeys(chosen))


def _field_default(name: str) -> str:
    f = next(f for f in dataclasses.fields(RunConfig) if f.name == name)
    value = f.default_factory() if f.default is dataclasses.MISSING else f.default
    if isinstance(value, Faults):
        return ",".join(map(str, value.fail_clients)) or "none"
    return {None: "null", "": "''"}.get(value, str(value).lower() if isinstance(value, bool) else str(value))


def _add_overrides(p: argparse.ArgumentParser, profile: str | None = "quick") -> None:
    if profile is None:
        p.add_argument(
            "--profile",
            default=None,
            help=f"{' | '.join(profile_names())} | path to a profile YAML "
            f"(default: none: the library defaults and the full eval sets)",
        )
    else:
        p.add_argument("--profile", default=profile, help=f"{' | '.join(profile_names())} | path to a profile YAML")
    for name, typ in OVERRIDES.items():
        p.add_argument(
            "--" + FLAG_NAMES.get(name, name.replace("_", "-")),
            type=typ,
            default=None,
            dest=name,
            metavar=name.upper() if name != "faults" else "IDS",
            help=f"{OVERRIDE_HELP[name]} ({FROM_PROFILE}, else {_field_default(name)})",
        )
    dp_default = ", ".join(f"{k} {v}" for k, v in DP_DEFAULTS.items())
    p.add_argument(
        "--dp-noise",
        type=float,
        default=None,
        help=f"differential privacy: Gaussian noise multiplier ({FROM_PROFILE}, else DP off; any --dp-* "
        f"flag turns it on, the others then default to {dp_default})",
    )
    p.add_argument(
        "--dp-clip",
        type=float,
        default=None,
        help=f"differential privacy: fixed clipping norm of each update ({FROM_PROFILE}; with DP on "
        f"{DP_DEFAULTS['clip']})",
    )
    p.add_argument(
        "--dp-side",
        default=None,
        help=f"differential privacy: where updates are clipped: server | client ({FROM_PROFILE}; with DP "
        f"on {DP_DEFAULTS['side']})",
    )
    p.add_argument(
        "--dp-delta",
        type=float,
        default=None,
        help=f"differential privacy: delta at which epsilon is reported ({FROM_PROFILE}; with DP on "
        f"{DP_DEFAULTS['delta']})",
    )
    p.add_argument(
        "--secagg",
        action="store_true",
        default=None,
        help=f"secure aggregation with Flower's SecAgg+ (FedAvg): the server sees only the clients' weighted mean "
        f"({FROM_PROFILE}, else off; any --secagg-* flag turns it on too; defaults {SECAGG_DEFAULTS})",
    )
    p.add_argument(
        "--secagg-threshold",
        type=int,
        default=None,
        help=f"SecAgg+: shares needed to reconstruct a client's secrets (a round survives while every client keeps "
        f"that many neighbours) ({FROM_PROFILE}; with SecAgg+ on {SECAGG_DEFAULTS['reconstruction_threshold']})",
    )
    p.add_argument(
        "--secagg-clipping-range",
        type=float,
        default=None,
        help=f"SecAgg+: weighted adapter values are quantised over [-R, R]; a larger one is refused, not clipped "
        f"({FROM_PROFILE}; with SecAgg+ on {SECAGG_DEFAULTS['clipping_range']})",
    )
    p.add_argument(
        "--secagg-quantization-range",
        type=int,
        default=None,
        help=f"SecAgg+: quantisation levels over the clipping range (step 2R / levels) ({FROM_PROFILE}; with "
        f"SecAgg+ on {SECAGG_DEFAULTS['quantization_range']})",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="set",
        help="set any run-config field, e.g. --set schedule=linear --set warmup_steps=10; repeatable; "
        "VALUE is YAML (0.01, 1e-3, true, null, [0, 2], {r: 16}); applied after the named flags "
        "(--print-config shows the result). Fields: "
        + ", ".join(
            sorted(f.name for f in dataclasses.fields(RunConfig) if f.name not in ("dataset", "setting", "method"))
        )
        + " (default: none)",
    )
    p.add_argument("--force", action="store_true", help="rerun even if a finished result exists")


def _overrides(args) -> dict:
    out = {k: getattr(args, k) for k in OVERRIDES if getattr(args, k) is not None}
    if str(out.get("system_prompt", "")).lower() in ("none", "null", "default"):
        out["system_prompt"] = None
    dp = {k: getattr(args, f"dp_{k}", None) for k in ("noise", "clip", "side", "delta")}
    if any(v is not None for v in dp.values()):
        out["dp"] = {k: v for k, v in dp.items() if v is not None}
    secagg = {
        "reconstruction_threshold": getattr(args, "secagg_threshold", None),
        "clipping_range": getattr(args, "secagg_clipping_range", None),
        "quantization_range": getattr(args, "secagg_quantization_range", None),
    }
    if getattr(args, "secagg", None) or any(v is not None for v in secagg.values()):
        out["secagg"] = {k: v for k, v in secagg.items() if v is not None}
    return out


def _set_value(key: str, raw: str):
    """One ``--set`` value, read as YAML and checked against the field's type (a ConfigError naming the fix)."""
    hint = typing.get_type_hints(RunConfig)[key]
    kinds = typing.get_args(hint) or (hint,)
    nullable = type(None) in kinds
    base = next((k for k in kinds if k is not type(None)), hint)
    if nullable and (raw.strip() in NULL_WORDS or (key == "system_prompt" and raw.strip() == "default")):
        return None  # as --system-prompt none/null/default
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"--set {key}={raw}: not a YAML value ({exc.__class__.__name__}). Fix: quote it, "
            f"e.g. --set \"{key}='...'\"."
        ) from None

    def wrong(what: str, example: str):
        return ConfigError(f"--set {key}={raw}: {key} takes {what}, got {value!r}. Fix: e.g. --set {key}={example}.")

    if base is str:
        return value if isinstance(value, str) else raw  # e.g. energy_country=NO stays the text, not YAML's False
    if value is None:
        raise ConfigError(
            f"--set {key}={raw}: {key} cannot be null (it is a {getattr(base, '__name__', base)}). "
            f"Fix: give a value, e.g. --set {key}={_field_default(key)}."
        )
    if base is bool:
        if not isinstance(value, bool):
            raise wrong("true or false", "true")
        return value
    if base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong("an integer", _field_default(key) if _field_default(key) != "null" else "3")
        return value
    if base is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as text
            try:
                return float(value)
            except ValueError:
                raise wrong("a number", _field_default(key)) from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong("a number", _field_default(key))
        return float(value)
    if base is dict:
        if not isinstance(value, dict):
            raise wrong("a mapping", "'{key: value}'")
        return value
    if typing.get_origin(base) is tuple:  # client_ranks: a YAML list or "4,8,16"
        if isinstance(value, str):
            return _ranks(value)
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, list) or any(isinstance(v, bool) or not isinstance(v, int) for v in value):
            raise wrong("a list of integers", "'[4, 8, 16, 16]'")
        return tuple(value)
    if base is Faults:
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value]
        if isinstance(value, list):
            value = {"fail_clients": value}
        if not isinstance(value, dict):
            raise wrong("client ids", "'[0, 2]'")
        try:
            return Faults.from_dict(value)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise wrong("client ids", "'[0, 2]'") from None
    return value


def _set_overrides(args) -> dict:
    """The ``--set KEY=VALUE`` settings (later ones win), checked: known RunConfig fields only, and not the
    fields a command's own flags choose."""
    fields = [f.name for f in dataclasses.fields(RunConfig)]
    out: dict = {}
    for item in getattr(args, "set", None) or []:
        key, eq, raw = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ConfigError(f"--set {item!r} is not KEY=VALUE. Fix: e.g. --set lr=0.01 (one field per --set).")
        if key not in fields:
            raise ConfigError(
                f"--set {key}: {key!r} is not a run-config field. {did_you_mean(key, fields)} "
                f"Fix: use one of these names (fedlab {args.command} -h lists them)."
            )
        if key in ("dataset", "setting", "method"):
            how, fix = OWN_FLAGS.get(args.command, {}).get(key, ("by the command's own flags", "use them"))
            raise ConfigError(f"--set {key}: {key} is not set with --set; it is chosen {how}. Fix: {fix}.")
        out[key] = _set_value(key, raw)
    return out


def _configure(make, named: dict, sets: dict) -> RunConfig:
    """``make(**overrides)`` with the named flags' overrides, then the --set values on top (None included:
    a profile ignores a None override, --set KEY=null means it)."""
    cfg = make(**{**named, **sets})
    nulls = {k: v for k, v in sets.items() if v is None and getattr(cfg, k) is not None}
    if nulls:
        data = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(RunConfig)}
        cfg = RunConfig.from_dict({**data, **nulls}).validate()
    return cfg


def print_config(cfg: RunConfig) -> None:
    """The fully resolved config (JSON, sorted keys), its hash and the result file it has (or would have)."""
    resolved = cfg.resolved()
    path = ResultStore().path(resolved)
    print(json.dumps(resolved.to_dict(), indent=2, sort_keys=True, default=str))
    print(f"hash: {resolved.hash()}")
    print(f"result: {path}")
    print(f"finished: {'yes' if path.is_file() else 'no'}")


def summary_line(result: RunResult) -> str:
    m, c = result.metrics, result.config
    ci = m.get("accuracy_ci")
    ci_text = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
    flag = " (cached)" if result.cached else ""
    return (
        f"{c['setting']:11s} {c['dataset']:8s} {c.get('method', '-'):5s} {c['model']:14s} n={m['n']:5d} "
        f"acc={m['accuracy']:.3f}{ci_text} macroF1={m['macro_f1']:.3f}{flag}"
    )


def _add_deadline(p: argparse.ArgumentParser, command: str) -> None:
    p.add_argument(
        "--deadline",
        default=None,
        help="start no run that is not expected to end by then: HH:MM (its next occurrence) or a duration "
        "(90m, 2.5h); each run's time is `fedlab plan`'s estimate (the median of finished runs of its shape on "
        f"this CPU where there are some). `fedlab {command}` stops before the first run that would end later and "
        "says so; the same command goes on from there (default: no deadline)",
    )


def _deadline_check(args, cfgs: list[RunConfig], prof: Profile):
    """``--deadline``'s check before each of a command's runs ``cfgs`` (in the order it runs them): a function of
    (position from 1, config, name) that returns True, having said why and how many runs are left, where the
    command must stop before that run; it never stops a command without ``--deadline``. The estimates are made
    again after each run the command trains, so a run measured since the start times the next of its shape (the
    first run of a shape is estimated from the other shapes; once one has finished, its wall time is used). Every
    finished run of the profile ``prof`` times and calibrates them, not only those among ``cfgs``."""
    if not getattr(args, "deadline", None):
        return lambda i, cfg, name: False
    deadline = parse_deadline(args.deadline)
    everything = profile_configs(prof)
    timing, stale = plan_grid(cfgs, force=args.force, timed_by=everything), False

    def stops(i: int, cfg: RunConfig, name: str) -> bool:
        nonlocal timing, stale
        if stale:  # a run has been trained since the last estimate
            timing, stale = plan_grid(cfgs, force=args.force, timed_by=everything), False
        trained = {c.hash() for c in timing.train}
        why = timing.ends_after(cfg, deadline)
        if why is None:
            stale = cfg.resolved().hash() in trained
            return False
        left = sum(c.resolved().hash() in trained for c in cfgs[i - 1 :])
        print(
            f"[fedlab] stopped before [{i}/{len(cfgs)}] {name}: {why}. {left} run(s) not started; "
            "the same command goes on from here (finished runs are reused).",
            flush=True,
        )
        return True

    return stops


def _curves(args, run) -> None:
    prof = load_profile(args.profile)
    if prof.curves is None:
        raise ConfigError(f"Profile {prof.name!r} has no curves: block. Fix: --profile reference (or add one).")
    cfgs = prof.curve_configs()
    for option, attr in (("--only-models", "model"), ("--only-datasets", "dataset"), ("--only-methods", "method")):
        chosen = getattr(args, option[2:].replace("-", "_"))
        if chosen:
            keep = _grid_subset(option, chosen, list(dict.fromkeys(getattr(c, attr) for c in cfgs)), prof.name)
            cfgs = sorted((c for c in cfgs if getattr(c, attr) in keep), key=lambda c: keep.index(getattr(c, attr)))
    # a curve that curves.gate screens runs after its gate's curve (stable otherwise), and only once that beat its floors
    cfgs = sorted(cfgs, key=lambda c: prof.curve_gate(c) is not None)
    store, floors = ResultStore(), {}
    stops = _deadline_check(args, cfgs, prof) if not args.status else None
    for i, cfg in enumerate(cfgs, 1):
        label = f"[{i}/{len(cfgs)}] curve {cfg.model} {cfg.dataset} {cfg.method}"
        result = store.find(cfg) if args.status or not args.force else None
        if result is None:
            gate = gate_state(prof, cfg, store, floors)
            if gate.get("floor") is not None and not args.status:  # the gate's curve ran; its floor is minutes
                print(f"{label}: its gate needs a floor: zero-shot {gate['floor'].model} {gate['floor'].dataset}")
                run(gate["floor"], resources=prof.resources)
                floors.pop(gate["gate"].hash(), None)
                gate = gate_state(prof, cfg, store, floors)
            if gate["state"] != "open":
                verb = "not run, by curves.gate" if gate["state"] == "closed" else "waits (curves.gate)"
                print(f"{label}: {verb}: {gate['why']}", flush=True)
                continue
        if args.status and result is None:
            print(f"{label}: not run yet", flush=True)
            continue
        if result is None:
            if stops(i, cfg, f"curve {cfg.model} {cfg.dataset} {cfg.method}"):
                return
            print(label, flush=True)
            result = run(cfg, force=args.force, resources=prof.resources)
        b = budget_from_curve(result, prof.curves.tolerance)
        print(
            f"{label}: budget {b['steps']} steps (validation {b['metric']} {b['score']:.3f}; best {b['best_score']:.3f} "
            f"at {b['best_step']} of {b['cap']}); held-out {b['metric']} at the best checkpoint "
            f"{result.metrics[b['metric']]:.3f} (n={result.metrics['n']})",
            flush=True,
        )


def _sweep_lr(args) -> None:
    """``fedlab sweep-lr``: one sweep (--dataset, --method), or every sweep the profile's rule asks for (--pending)."""
    prof = load_profile(args.profile)
    if args.pending:
        if prof.curves is None or not prof.curves.sweep:
            raise ConfigError(
                f"--pending runs the sweeps a profile's rule asks for, and profile {prof.name!r} has none "
                "(curves.sweep). Fix: --profile reference, or --dataset D --method M for one sweep."
            )
        todo = pending_sweeps(prof)
        for option, at in (("--only-models", 0), ("--only-datasets", 1), ("--only-methods", 2)):
            chosen = getattr(args, option[2:].replace("-", "_"))
            keep = _grid_subset(option, chosen, list(dict.fromkeys(k[at] for k in prof.cell_keys())), prof.name)
            todo = [(k, lrs) for k, lrs in todo if k[at] in keep]
        for key, step in prof.unswept_cells():
            if step.startswith("pin "):
                print(f"sweep {'/'.join(key)}: {sweep_gap(prof.name, *key, prof.curve_config(*key).lr)}", flush=True)
        if not todo:
            print(f"[fedlab] no sweep of profile {prof.name!r} to run now (a cell is swept once its curve has run).")
        sweeps = [(*key, lrs, True) for key, lrs in todo]
    elif args.dataset and args.method:
        sweeps = [(args.model or prof.models[0], args.dataset, args.method, args.lrs, args.extend)]
    else:
        raise ConfigError("fedlab sweep-lr needs --dataset and --method (one sweep) or --pending (the profile's).")
    deadline = parse_deadline(args.deadline) if args.deadline else None

    def before(cfg: RunConfig) -> bool:  # a deadline: is this run expected to end in time?
        if deadline is None:
            return False
        why = plan_grid([cfg], force=args.force, timed_by=profile_configs(prof)).ends_after(cfg, deadline)
        if why is not None:
            print(
                f"[fedlab] stopped before sweep {cfg.model} {cfg.dataset} {cfg.method} lr {cfg.lr:g}: {why}. The same "
                "command goes on from here (finished runs are reused).",
                flush=True,
            )
        return why is not None

    for i, (model, dataset, method, lrs, extend) in enumerate(sweeps, 1):
        print(f"[{i}/{len(sweeps)}] sweep {model} {dataset} {method}: lr {' '.join(f'{x:g}' for x in lrs)}", flush=True)
        record = lr_sweep(prof, dataset, method, lrs, force=args.force, model=model, extend=extend, before=before)
        if record is None:
            return
        for c in record["candidates"]:
            print(f"lr {c['lr']:g}: validation {record['metric']} {c['score']:.3f} (n={c['n_validation']})")
        print(
            f"chosen lr {record['chosen_lr']:g}: {sweep_path(prof.name, model, dataset, method)}\n"
            f"pin it in the profile: grid.method_overrides.{method}.lr: {record['chosen_lr']:g} "
            f"(or, for this backbone only, grid.method_overrides.{model}/{method}.lr; for it on "
            f"this dataset only, grid.method_overrides.{model}/{dataset}/{method}.lr)",
            flush=True,
        )


def _land(args) -> None:
    """``fedlab land``: a worktree's finished results into this checkout, one commit each; held-back runs named once."""
    said: set[str] = set()
    while True:
        for landing in land(args.worktree, paths.home(), label=args.label, dry_run=args.dry_run):
            if landing.reason is not None:
                if landing.path not in said:
                    print(f"held back: {landing.path}: {landing.reason}", flush=True)
                said.add(landing.path)
            else:
                print(
                    f"{'would land' if args.dry_run else 'landed ' + str(landing.commit)}: {landing.message}",
                    flush=True,
                )
        if args.watch is None or args.dry_run:
            return
        time.sleep(args.watch)


def _aggregation(args, run) -> None:
    """``fedlab aggregation``: notebook 07's runs ahead of the notebook (which then reads them from the cache)."""
    prof = load_profile(args.profile)
    cfgs = prof.study_configs()
    if not cfgs:
        raise ConfigError(
            f"Profile {prof.name!r} has no grid.aggregation cell. Fix: add one "
            "(grid.aggregation: {dataset: fpb, method: lora}) or choose --profile quick."
        )
    store = ResultStore()
    stops = _deadline_check(args, cfgs, prof) if not args.status else None
    for i, cfg in enumerate(cfgs, 1):
        dp = f" dp noise {cfg.dp.get('noise')}" if cfg.dp else ""
        ranks = f" ranks {','.join(map(str, cfg.client_ranks))}" if cfg.client_ranks else ""
        params = "".join(f" {k}={v}" for k, v in (cfg.method_params or {}).items())
        name = (
            f"{cfg.model} {cfg.dataset} {cfg.method}{params} {cfg.strategy}{dp}{ranks}"
            f"{' secagg' if cfg.secagg is not None else ''} seed {cfg.seed}"
        )
        label = f"[{i}/{len(cfgs)}] {name}"
        if args.status:
            found = store.find(cfg)
            print(f"{label}: {summary_line(found) if found else 'not run yet'}", flush=True)
            continue
        if stops(i, cfg, name):
            return
        print(label, flush=True)
        print(summary_line(run(cfg, force=args.force, resources=prof.resources)), flush=True)


def build_parser() -> argparse.ArgumentParser:
    """The ``fedlab`` argument parser (every option's help states its default)."""
    parser = argparse.ArgumentParser(prog="fedlab", description=__doc__, formatter_class=HelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, description=text, formatter_class=HelpFormatter)

    methods = " | ".join(METHODS)
    p_run = command("run", "run one cell of the grid, on a built-in dataset or on your own file (--data)")
    p_run.add_argument(
        "--dataset",
        default=None,
        help=f"a built-in dataset ({', '.join(BUILTIN_DATASETS)}) (default: none: give it or --data)",
    )
    data = p_run.add_argument_group("your own data (instead of --dataset)")
    data.add_argument(
        "--data", default=None, help="a CSV, TSV, JSONL, Parquet or Excel (.xlsx, first sheet) file (default: none)"
    )
    data.add_argument("--text-col", default=None, help="classification: the input text column (default: none)")
    data.add_argument(
        "--label-col",
        default=None,
        help="classification: the label column (label set read from the data) (default: none)",
    )
    data.add_argument("--question-col", default=None, help="multiple choice: the question column (default: none)")
    data.add_argument("--option-cols", nargs="+", default=(), help="multiple choice: one column per option, in order")
    data.add_argument(
        "--options-col", default=None, help="multiple choice: one column holding the list of options (default: none)"
    )
    data.add_argument(
        "--answer-col",
        default=None,
        help="multiple choice: the answer (letter, 0-based index or option text) (default: none)",
    )
    data.add_argument(
        "--client-col",
        default=None,
        help="each distinct value is one client (a natural partition) (default: none: the profile's partition)",
    )
    data.add_argument("--domain", default="custom", help="finance | healthcare | custom")
    data.add_argument(
        "--delimiter",
        default=None,
        help="CSV/TSV field delimiter, e.g. ';' or tab (default: a .tsv's tab, else detected among "
        + " ".join("tab" if d == "\t" else d for d in DELIMITERS)
        + ")",
    )
    data.add_argument(
        "--encoding",
        default=None,
        help="text encoding of a CSV/TSV/JSONL file, e.g. cp1252 or latin-1 (default: UTF-8, a "
        "byte-order mark stripped)",
    )
    p_run.add_argument("--setting", default="federated", help=" | ".join(SETTINGS))
    p_run.add_argument("--method", default="lora", help=f"PEFT method: {methods}")
    p_run.add_argument(
        "--print-config",
        action="store_true",
        help="print the fully resolved config (JSON), its hash and its result path; run nothing",
    )
    _add_overrides(p_run)

    p_grid = command("grid", "every cell of a profile's grid, zero-shot included")
    p_grid.add_argument(
        "--only-models",
        nargs="+",
        default=None,
        help="run the cells of these backbones only (default: all of the profile's)",
    )
    p_grid.add_argument(
        "--only-datasets",
        nargs="+",
        default=None,
        help="run the cells of these datasets only, in the order given (default: all of the profile's)",
    )
    p_grid.add_argument(
        "--only-methods",
        nargs="+",
        default=None,
        help="run the cells of these PEFT methods only (default: all of the profile's)",
    )
    p_grid.add_argument(
        "--only-settings",
        nargs="+",
        default=None,
        help="run these settings only (of the profile's grid.settings); with it or --only-seeds the zero-shot "
        "floors are left out (fedlab zeroshot --profile P runs them) (default: all of the profile's)",
    )
    p_grid.add_argument(
        "--only-seeds",
        nargs="+",
        type=int,
        default=None,
        help="run these seeds only, e.g. to split a grid across machines or sessions (default: every seed the "
        "profile asks for, its extra_seeds included)",
    )
    _add_deadline(p_grid, "grid")
    _add_overrides(p_grid)

    p_cur = command("curves", "the learning curves that set a profile's budgets (cached), and the budgets")
    p_cur.add_argument("--profile", default="reference", help="a profile with a curves: block (default reference)")
    p_cur.add_argument(
        "--only-models",
        nargs="+",
        default=None,
        help="these backbones of the curves only (default: all of the profile's)",
    )
    p_cur.add_argument(
        "--only-datasets",
        nargs="+",
        default=None,
        help="these datasets of the curves only (default: all of the profile's)",
    )
    p_cur.add_argument(
        "--only-methods",
        nargs="+",
        default=None,
        help="these methods of the curves only (default: all of the profile's)",
    )
    p_cur.add_argument("--status", action="store_true", help="print the budgets of finished curves; train nothing")
    p_cur.add_argument("--force", action="store_true", help="rerun a curve even if its result exists")
    _add_deadline(p_cur, "curves")

    p_land = command(
        "land", "commit each result a grid in its own git worktree has finished into this checkout, one commit each"
    )
    p_land.add_argument("worktree", help="the grid's worktree (made with: git worktree add ../grid HEAD)")
    p_land.add_argument("--label", default="", help="a word the commit messages start with, e.g. the profile")
    p_land.add_argument(
        "--watch", type=float, default=None, help="look again every this many seconds until interrupted (default: once)"
    )
    p_land.add_argument(
        "--dry-run", action="store_true", help="say what would land and what is held back; commit nothing"
    )

    p_dep = command("deploy", "run one federated cell on Flower's Deployment Engine (local SuperLink + SuperNodes)")
    p_dep.add_argument("--dataset", required=True, help=f"a built-in dataset ({', '.join(BUILTIN_DATASETS)})")
    p_dep.add_argument("--method", default="lora", help=f"PEFT method: {methods}")
    p_dep.add_argument("--tls", action="store_true", help="self-signed TLS between SuperNodes, CLI and SuperLink")
    p_dep.add_argument(
        "--auth",
        action="store_true",
        help="SuperNode authentication (needs --tls): a key pair per SuperNode, each public key registered "
        "with the SuperLink (flwr supernode register); a node with an unregistered key is refused",
    )
    p_dep.add_argument("--timeout", type=float, default=3600.0, help="seconds before the run is stopped")
    _add_overrides(p_dep)

    p_zs = command("zeroshot", "zero-shot evaluation on several datasets")
    p_zs.add_argument(
        "--datasets",
        nargs="+",
        default=None,
        help="datasets to evaluate (default: the profile's grid datasets, without a profile the "
        f"study's: {' '.join(MAIN_DATASETS)})",
    )
    _add_overrides(p_zs, profile=None)  # default: library defaults and the full eval sets

    p_prep = command("prepare", "convert the embedded model and write the split manifests")
    p_prep.add_argument("--datasets", nargs="+", default=list(MAIN_DATASETS), help="datasets to write manifests for")
    p_prep.add_argument("--source", default="auto", help=f"where the datasets are read from: {' | '.join(SOURCES)}")
    p_prep.add_argument("--seed", type=int, default=0, help="split seed of the manifests")

    p_gen = command("generate", "answer held-out prompts with a finished run's adapter")
    p_gen.add_argument("result", help="path of a result JSON of a federated or centralized run")
    p_gen.add_argument("--n", type=int, default=3, help="number of held-out prompts to answer")

    p_rep = command("reproduce", "execute every notebook with papermill, render HTML reports")
    p_rep.add_argument("--profile", default="quick", help=f"{' | '.join(profile_names())} | path to a profile YAML")
    p_rep.add_argument("--force", action="store_true", help="rerun every run even if a finished result exists")
    p_rep.add_argument("--only", nargs="*", help="report stems or notebook names to run (default: all)")
    p_rep.add_argument(
        "--results-only",
        action="store_true",
        help="train nothing: render the reports from the finished result files, each naming the runs it lacks",
    )

    p_plan = command("plan", "what `reproduce` would reuse and train for a profile, and how long it takes")
    p_plan.add_argument("--profile", default="quick", help=f"{' | '.join(profile_names())} | path to a profile YAML")
    p_plan.add_argument("--force", action="store_true", help="plan to retrain every run")

    p_fig = command(
        "figures",
        "remake the summary figures, each (domain, method)'s curves, per-client and energy figures, and the "
        "README tables, from existing results (no training)",
    )
    p_fig.add_argument("--profile", default="quick", help=f"{' | '.join(profile_names())} | path to a profile YAML")

    p_tab = command("tables", "print tables made from result files; --readme updates README.md")
    p_tab.add_argument("--readme", action="store_true", help="update README.md's tables instead of printing them")
    p_tab.add_argument(
        "--blocks", nargs="*", default=None, help=f"README blocks to update (default all): {', '.join(BLOCKS)}"
    )

    p_sw = command("sweep-lr", "choose a learning rate on the validation split (centralized runs, recorded)")
    p_sw.add_argument("--profile", default="quick", help=f"{' | '.join(profile_names())} | path to a profile YAML")
    p_sw.add_argument(
        "--dataset", default=None, help="the dataset to sweep on (default: none; required without --pending)"
    )
    p_sw.add_argument(
        "--method", default=None, help=f"PEFT method: {methods} (default: none; required without --pending)"
    )
    p_sw.add_argument("--model", default=None, help="backbone (default: the profile's first)")
    p_sw.add_argument("--lrs", nargs="+", type=float, default=list(DEFAULT_LRS), help="candidate learning rates")
    p_sw.add_argument(
        "--extend",
        action="store_true",
        help="while the winner is the largest or smallest candidate, also train the next rate past it (1, 3, 10 ...)",
    )
    p_sw.add_argument(
        "--pending",
        action="store_true",
        help="every sweep the profile's rule (curves.sweep) asks for now: each grid cell whose curve has set its "
        "budget and whose rate is not swept, at the pinned rate and its neighbours, extended at a winning end",
    )
    for axis in ("models", "datasets", "methods"):
        p_sw.add_argument(
            f"--only-{axis}", nargs="+", default=None, help=f"with --pending: these {axis} only (default: all)"
        )
    p_sw.add_argument("--force", action="store_true", help="rerun the sweep's runs even if finished results exist")
    _add_deadline(p_sw, "sweep-lr")

    p_agg = command(
        "aggregation",
        "every run of notebook 07's study (strategies, DP, mixed ranks, SecAgg+: grid.aggregation), cached",
    )
    p_agg.add_argument("--profile", default="quick", help=f"{' | '.join(profile_names())} | path to a profile YAML")
    p_agg.add_argument("--status", action="store_true", help="list the study's runs and which have finished")
    p_agg.add_argument("--force", action="store_true", help="rerun the study's runs even if finished results exist")
    _add_deadline(p_agg, "aggregation")

    p_mig = command("migrate-results", "rewrite result files of an older schema (same runs, new config names)")
    p_mig.add_argument("--root", default=None, help="results folder (default: $FEDLAB_RESULTS_DIR or results/)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run = study.run
    try:
        sets = _set_overrides(args) if hasattr(args, "set") else {}
        if args.command == "run":
            prof = load_profile(args.profile)
            overrides = _overrides(args)
            if args.data:
                dataset, extra = study.your_data(
                    args.data,
                    text_col=args.text_col,
                    label_col=args.label_col,
                    question_col=args.question_col,
                    option_cols=args.option_cols,
                    options_col=args.options_col,
                    answer_col=args.answer_col,
                    client_col=args.client_col,
                    domain=args.domain,
                    delimiter=args.delimiter,
                    encoding=args.encoding,
                )
                print(
                    f"your data: {args.data} -> dataset {dataset} ({extra.pop('summary')})",
                    file=sys.stderr if args.print_config else sys.stdout,
                )
                overrides = {**extra, **overrides}
            elif args.dataset:
                if args.delimiter or args.encoding:
                    raise ConfigError(
                        "--delimiter and --encoding say how to read your own file. Fix: use them "
                        "with --data PATH, or leave them out."
                    )
                dataset = args.dataset
            else:
                raise ConfigError("Give --dataset NAME (a built-in dataset) or --data PATH (your own file).")
            cfg = _configure(lambda **o: prof.config(dataset, args.setting, args.method, **o), overrides, sets)
            if args.print_config:
                print_config(cfg)
                return 0
            print(summary_line(run(cfg, force=args.force, resources=prof.resources)))
        elif args.command == "deploy":
            prof = load_profile(args.profile)
            cfg = _configure(
                lambda **o: prof.config(args.dataset, "federated", args.method, **o), _overrides(args), sets
            )
            result = deploy_run(cfg, tls=args.tls, auth=args.auth, timeout=args.timeout, force=args.force)
            print(summary_line(result))
            print(f"deployment: {result.deployment or 'cached'}  result: {result.path}")
        elif args.command == "grid":
            prof = load_profile(args.profile)
            study.check_profile_hub(prof)
            models = _grid_subset("--only-models", args.only_models, prof.models, prof.name)
            datasets = _grid_subset("--only-datasets", args.only_datasets, prof.grid["datasets"], prof.name)
            methods = _grid_subset("--only-methods", args.only_methods, prof.grid["methods"], prof.name)
            settings = _grid_subset("--only-settings", args.only_settings, prof.grid["settings"], prof.name)
            seeds = _grid_subset("--only-seeds", args.only_seeds, sorted({c.seed for c in prof.cells()}), prof.name)
            cells = [
                _configure(lambda c=c, **o: prof.zeroshot(c.dataset, **o), {"model": c.model, **_overrides(args)}, sets)
                for c in prof.zeroshots()
                if c.model in models and c.dataset in datasets and not (args.only_settings or args.only_seeds)
            ]
            cells += [
                _configure(
                    lambda c=c, **o: prof.config(c.dataset, c.setting, c.method, **o),
                    {"seed": c.seed, "model": c.model, **_overrides(args)},
                    sets,
                )
                for c in prof.cells()
                if c.model in models
                and c.dataset in datasets
                and c.method in methods
                and c.setting in settings
                and c.seed in seeds
            ]
            cells.sort(key=lambda c: (c.setting != "zeroshot", models.index(c.model), datasets.index(c.dataset)))
            if note := pending_note(prof):  # the cells the grid cannot run yet, named rather than skipped unseen
                print(f"[fedlab] not in this grid yet: {note}", flush=True)
            stops = _deadline_check(args, cells, prof)
            for i, cfg in enumerate(cells, 1):
                name = f"{cfg.model} {cfg.setting} {cfg.dataset} {cfg.method} seed {cfg.seed}"
                if stops(i, cfg, name):
                    break
                print(f"[{i}/{len(cells)}] {name}", flush=True)
                print(summary_line(run(cfg, force=args.force, resources=prof.resources)), flush=True)
        elif args.command == "curves":
            _curves(args, run)
        elif args.command == "zeroshot":
            prof = load_profile(args.profile) if args.profile else None
            names = args.datasets or (prof.grid["datasets"] if prof else MAIN_DATASETS)
            if prof:
                models = [sets.get("model") or args.model] if sets.get("model") or args.model else prof.models
                cfgs = [
                    _configure(lambda n=n, **o: prof.zeroshot(n, **o), {**_overrides(args), "model": m}, sets)
                    for m in models
                    for n in names
                ]
            else:
                cfgs = [
                    _configure(lambda n=n, **o: RunConfig(dataset=n, setting="zeroshot", **o), _overrides(args), sets)
                    for n in names
                ]
            for cfg in cfgs:
                print(summary_line(run(cfg, force=args.force)), flush=True)
        elif args.command == "prepare":
            print(f"embedded model: {embedded_dir()}")
            for name in args.datasets:
                info = load_splits(name, source=args.source, seed=args.seed).info
                print(json.dumps({k: info[k] for k in ("dataset", "source", "n_train", "n_eval", "split_hash")}))
        elif args.command == "generate":
            for g in generate_from_result(args.result, n=args.n):
                print(f"--- {g['id']} (gold: {g['gold']})\n{g['output']}\n")
        elif args.command == "reproduce":
            print(
                f"reports: {pipeline.reproduce(args.profile, force=args.force, only=args.only, results_only=args.results_only)}"
            )
        elif args.command == "plan":
            print(study.plan(args.profile, force=args.force).describe())
        elif args.command == "figures":
            for path in pipeline.make_figures(args.profile):
                print(path)
        elif args.command == "sweep-lr":
            _sweep_lr(args)
        elif args.command == "aggregation":
            _aggregation(args, run)
        elif args.command == "land":
            _land(args)
        elif args.command == "migrate-results":
            for old, new in migrate_store(args.root):
                print(f"{old} -> {new.name}")
        elif args.command == "tables":
            if args.readme:
                print("updated README blocks:", ", ".join(update_readme(names=args.blocks)) or "none")
            else:
                for name, make in BLOCKS.items():
                    print(f"## {name}\n{make()}\n")
    except FedlabError as exc:
        print(f"fedlab: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
