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
"""

from __future__ import annotations

import argparse
import json
import sys

from fedlab import study
from fedlab.core.models import embedded_dir
from fedlab.data import MAIN_DATASETS, load_splits
from fedlab.errors import ConfigError, FedlabError
from fedlab.experiment.config import SETTINGS, Faults, RunConfig
from fedlab.experiment.generate import generate_from_result
from fedlab.experiment.profiles import load_profile
from fedlab.experiment.store import RunResult, migrate_store
from fedlab.experiment.sweep import DEFAULT_LRS, lr_sweep, sweep_path
from fedlab.fl.deployment.run import deploy_run
from fedlab.reporting.readme import BLOCKS, update_readme

#: command-line flags that override run settings (flag name -> RunConfig field)
OVERRIDES = {
    "model": str, "dtype": str, "source": str, "seed": int, "evaluator": str, "max_eval": int,
    "eval_batch_size": int, "clients": int, "rounds": int, "partition": str, "strategy": str,
    "fraction": float, "min_clients": int, "local_steps": int, "batch_size": int, "grad_accum": int,
    "lr": float, "max_length": int, "energy_country": str,
    "faults": lambda text: Faults(fail_clients=tuple(int(x) for x in text.split(",") if x.strip())),
    "system_prompt": str,  # "default" (or none/null): the chat template's own system turn
    "group_by_length": lambda text: text.lower() in ("1", "true", "yes", "on"),
}
#: flags whose name differs from the config field
FLAG_NAMES = {"faults": "fail-clients"}


def _grid_subset(option: str, chosen: list[str] | None, available: list[str], profile: str) -> list[str]:
    """The values of one grid axis that ``fedlab grid`` runs: all of the profile's, or those chosen (in that order)."""
    if not chosen:
        return list(available)
    unknown = [v for v in chosen if v not in available]
    if unknown:
        raise ConfigError(f"{option} {unknown} are not in profile {profile!r}: choose from {list(available)}.")
    return list(dict.fromkeys(chosen))


def _add_overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="quick", help="smoke | quick | paper | path to a profile YAML")
    for name, typ in OVERRIDES.items():
        p.add_argument("--" + FLAG_NAMES.get(name, name.replace("_", "-")), type=typ, default=None, dest=name)
    p.add_argument("--dp-noise", type=float, default=None, help="differential privacy: Gaussian noise multiplier")
    p.add_argument("--dp-clip", type=float, default=None, help="differential privacy: fixed clipping norm of each update")
    p.add_argument("--dp-side", default=None, help="where updates are clipped: server (default) | client")
    p.add_argument("--dp-delta", type=float, default=None, help="delta at which epsilon is reported (default 1e-5)")
    p.add_argument("--force", action="store_true", help="rerun even if a finished result exists")


def _overrides(args) -> dict:
    out = {k: getattr(args, k) for k in OVERRIDES if getattr(args, k) is not None}
    if str(out.get("system_prompt", "")).lower() in ("none", "null", "default"):
        out["system_prompt"] = None
    dp = {k: getattr(args, f"dp_{k}", None) for k in ("noise", "clip", "side", "delta")}
    if any(v is not None for v in dp.values()):
        out["dp"] = {k: v for k, v in dp.items() if v is not None}
    return out


def summary_line(result: RunResult) -> str:
    m, c = result.metrics, result.config
    ci = m.get("accuracy_ci")
    ci_text = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
    flag = " (cached)" if result.cached else ""
    return (f"{c['setting']:11s} {c['dataset']:8s} {c.get('method', '-'):5s} {c['model']:14s} n={m['n']:5d} "
            f"acc={m['accuracy']:.3f}{ci_text} macroF1={m['macro_f1']:.3f}{flag}")


def _curves(args, run) -> None:
    from fedlab.experiment.curves import budget_from_curve
    from fedlab.experiment.store import ResultStore

    prof = load_profile(args.profile)
    if prof.curves is None:
        raise ConfigError(f"Profile {prof.name!r} has no curves: block. Fix: --profile reference (or add one).")
    cfgs = prof.curve_configs()
    for option, attr in (("--only-models", "model"), ("--only-datasets", "dataset"), ("--only-methods", "method")):
        chosen = getattr(args, option[2:].replace("-", "_"))
        if chosen:
            keep = _grid_subset(option, chosen, list(dict.fromkeys(getattr(c, attr) for c in cfgs)), prof.name)
            cfgs = sorted((c for c in cfgs if getattr(c, attr) in keep), key=lambda c: keep.index(getattr(c, attr)))
    store = ResultStore()
    for i, cfg in enumerate(cfgs, 1):
        label = f"[{i}/{len(cfgs)}] curve {cfg.model} {cfg.dataset} {cfg.method}"
        result = store.lookup(cfg.resolved()) if args.status else None
        if args.status and result is None:
            print(f"{label}: not run yet", flush=True)
            continue
        if result is None:
            print(label, flush=True)
            result = run(cfg, force=args.force, resources=prof.resources)
        b = budget_from_curve(result, prof.curves.tolerance)
        print(f"{label}: budget {b['steps']} steps (validation {b['metric']} {b['score']:.3f}; best {b['best_score']:.3f} "
              f"at {b['best_step']} of {b['cap']}); held-out {b['metric']} at the best checkpoint "
              f"{result.metrics[b['metric']]:.3f} (n={result.metrics['n']})", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fedlab", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p_run = sub.add_parser("run", help="run one cell of the grid, on a built-in dataset or on your own file (--data)")
    p_run.add_argument("--dataset", default=None, help="a built-in dataset (fpb, fiqa_sa, medqa, medmcqa, pubmedqa)")
    data = p_run.add_argument_group("your own data (instead of --dataset)")
    data.add_argument("--data", default=None, help="a CSV, JSONL or Parquet file")
    data.add_argument("--text-col", default=None, help="classification: the input text column")
    data.add_argument("--label-col", default=None, help="classification: the label column (label set read from the data)")
    data.add_argument("--question-col", default=None, help="multiple choice: the question column")
    data.add_argument("--option-cols", nargs="+", default=(), help="multiple choice: one column per option, in order")
    data.add_argument("--options-col", default=None, help="multiple choice: one column holding the list of options")
    data.add_argument("--answer-col", default=None, help="multiple choice: the answer (letter, 0-based index or option text)")
    data.add_argument("--client-col", default=None, help="each distinct value is one client (a natural partition)")
    data.add_argument("--domain", default="custom", help="finance | healthcare | custom (default)")
    p_run.add_argument("--setting", default="federated", help=" | ".join(SETTINGS))
    p_run.add_argument("--method", default="lora", help="lora | qlora | ia3")
    _add_overrides(p_run)

    p_grid = sub.add_parser("grid", help="every cell of a profile's grid, zero-shot included")
    p_grid.add_argument("--only-models", nargs="+", default=None, help="run the cells of these backbones only")
    p_grid.add_argument("--only-datasets", nargs="+", default=None,
                        help="run the cells of these datasets only, in the order given")
    p_grid.add_argument("--only-methods", nargs="+", default=None, help="run the cells of these PEFT methods only")
    _add_overrides(p_grid)

    p_cur = sub.add_parser("curves", help="the learning curves that set a profile's budgets (cached), and the budgets")
    p_cur.add_argument("--profile", default="reference", help="a profile with a curves: block (default reference)")
    p_cur.add_argument("--only-models", nargs="+", default=None, help="these backbones of the curves only")
    p_cur.add_argument("--only-datasets", nargs="+", default=None, help="these datasets of the curves only")
    p_cur.add_argument("--only-methods", nargs="+", default=None, help="these methods of the curves only")
    p_cur.add_argument("--status", action="store_true", help="print the budgets of finished curves; train nothing")
    p_cur.add_argument("--force", action="store_true", help="rerun a curve even if its result exists")
    p_dep = sub.add_parser("deploy", help="run one federated cell on Flower's Deployment Engine (local SuperLink + SuperNodes)")
    p_dep.add_argument("--dataset", required=True)
    p_dep.add_argument("--method", default="lora")
    p_dep.add_argument("--tls", action="store_true", help="self-signed TLS between SuperNodes, CLI and SuperLink")
    p_dep.add_argument("--timeout", type=float, default=3600.0, help="seconds before the run is stopped")
    _add_overrides(p_dep)

    p_zs = sub.add_parser("zeroshot", help="zero-shot evaluation on several datasets")
    p_zs.add_argument("--datasets", nargs="+", default=None)
    _add_overrides(p_zs)
    p_zs.set_defaults(profile=None)  # default: library defaults and the full eval sets

    p_prep = sub.add_parser("prepare", help="convert the embedded model and write the split manifests")
    p_prep.add_argument("--datasets", nargs="+", default=list(MAIN_DATASETS))
    p_prep.add_argument("--source", default="auto")
    p_prep.add_argument("--seed", type=int, default=0)

    p_gen = sub.add_parser("generate", help="answer held-out prompts with a finished run's adapter")
    p_gen.add_argument("result", help="path of a result JSON of a federated or centralized run")
    p_gen.add_argument("--n", type=int, default=3)

    p_rep = sub.add_parser("reproduce", help="execute every notebook with papermill, render HTML reports")
    p_rep.add_argument("--profile", default="quick")
    p_rep.add_argument("--force", action="store_true")
    p_rep.add_argument("--only", nargs="*", help="report stems or notebook names to run (default: all)")

    p_plan = sub.add_parser("plan", help="what `reproduce` would reuse and train for a profile, and how long it takes")
    p_plan.add_argument("--profile", default="quick")
    p_plan.add_argument("--force", action="store_true", help="plan to retrain every run")

    p_fig = sub.add_parser("figures", help="remake summary figures and README tables from existing results")
    p_fig.add_argument("--profile", default="quick")

    p_tab = sub.add_parser("tables", help="print tables made from result files; --readme updates README.md")
    p_tab.add_argument("--readme", action="store_true")
    p_tab.add_argument("--blocks", nargs="*", default=None, help=f"README blocks to update (default all): {', '.join(BLOCKS)}")

    p_sw = sub.add_parser("sweep-lr", help="choose a learning rate on the validation split (centralized runs, recorded)")
    p_sw.add_argument("--profile", default="quick")
    p_sw.add_argument("--dataset", required=True)
    p_sw.add_argument("--method", required=True)
    p_sw.add_argument("--model", default=None, help="backbone (default: the profile's first)")
    p_sw.add_argument("--lrs", nargs="+", type=float, default=list(DEFAULT_LRS))
    p_sw.add_argument("--force", action="store_true")

    p_mig = sub.add_parser("migrate-results", help="rewrite result files of an older schema (same runs, new config names)")
    p_mig.add_argument("--root", default=None, help="results folder (default: $FEDLAB_RESULTS_DIR or results/)")

    args = parser.parse_args(argv)
    run = study.run
    try:
        if args.command == "run":
            prof = load_profile(args.profile)
            overrides = _overrides(args)
            if args.data:
                dataset, extra = study.your_data(args.data, text_col=args.text_col, label_col=args.label_col,
                                                 question_col=args.question_col, option_cols=args.option_cols,
                                                 options_col=args.options_col, answer_col=args.answer_col,
                                                 client_col=args.client_col, domain=args.domain)
                print(f"your data: {args.data} -> dataset {dataset} ({extra.pop('summary')})")
                overrides = {**extra, **overrides}
            elif args.dataset:
                dataset = args.dataset
            else:
                raise ConfigError("Give --dataset NAME (a built-in dataset) or --data PATH (your own file).")
            cfg = prof.config(dataset, args.setting, args.method, **overrides)
            print(summary_line(run(cfg, force=args.force, resources=prof.resources)))
        elif args.command == "deploy":
            prof = load_profile(args.profile)
            cfg = prof.config(args.dataset, "federated", args.method, **_overrides(args))
            result = deploy_run(cfg, tls=args.tls, timeout=args.timeout, force=args.force)
            print(summary_line(result))
            print(f"deployment: {result.deployment or 'cached'}  result: {result.path}")
        elif args.command == "grid":
            prof = load_profile(args.profile)
            models = _grid_subset("--only-models", args.only_models, prof.models, prof.name)
            datasets = _grid_subset("--only-datasets", args.only_datasets, prof.grid["datasets"], prof.name)
            methods = _grid_subset("--only-methods", args.only_methods, prof.grid["methods"], prof.name)
            cells = [prof.zeroshot(c.dataset, **{"model": c.model, **_overrides(args)}) for c in prof.zeroshots()
                     if c.model in models and c.dataset in datasets]
            cells += [prof.config(c.dataset, c.setting, c.method, **{"seed": c.seed, "model": c.model, **_overrides(args)})
                      for c in prof.cells() if c.model in models and c.dataset in datasets and c.method in methods]
            cells.sort(key=lambda c: (c.setting != "zeroshot", models.index(c.model), datasets.index(c.dataset)))
            for i, cfg in enumerate(cells, 1):
                print(f"[{i}/{len(cells)}] {cfg.model} {cfg.setting} {cfg.dataset} {cfg.method} seed {cfg.seed}", flush=True)
                print(summary_line(run(cfg, force=args.force, resources=prof.resources)), flush=True)
        elif args.command == "curves":
            _curves(args, run)
        elif args.command == "zeroshot":
            prof = load_profile(args.profile) if args.profile else None
            names = args.datasets or (prof.grid["datasets"] if prof else MAIN_DATASETS)
            if prof:
                models = [args.model] if args.model else prof.models
                cfgs = [prof.zeroshot(n, **{**_overrides(args), "model": m}) for m in models for n in names]
            else:
                cfgs = [RunConfig(dataset=n, setting="zeroshot", **_overrides(args)) for n in names]
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
            print(f"reports: {study.reproduce(args.profile, force=args.force, only=args.only)}")
        elif args.command == "plan":
            print(study.plan(args.profile, force=args.force).describe())
        elif args.command == "figures":
            for path in study.make_figures(args.profile):
                print(path)
        elif args.command == "sweep-lr":
            prof = load_profile(args.profile)
            record = lr_sweep(prof, args.dataset, args.method, args.lrs, force=args.force, model=args.model)
            for c in record["candidates"]:
                print(f"lr {c['lr']:g}: validation {record['metric']} {c['score']:.3f} (n={c['n_validation']})")
            print(f"chosen lr {record['chosen_lr']:g}: {sweep_path(prof, args.dataset, args.method, record['model'])}\n"
                  f"pin it in the profile: grid.method_overrides.{args.method}.lr: {record['chosen_lr']:g} "
                  f"(or, for this backbone only, grid.method_overrides.{record['model']}/{args.method}.lr)")
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
