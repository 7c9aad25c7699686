"""Command line: ``fedlab run ...``, ``fedlab zeroshot``, ``fedlab prepare``.

Examples::

    fedlab prepare                                  # convert the embedded model, write split manifests
    fedlab run --dataset fpb --setting zeroshot     # one cell of the grid (cached by config hash)
    fedlab zeroshot                                 # zero-shot floor on all four benchmarks
"""

from __future__ import annotations

import argparse
import json
import sys

from .errors import FedlabError

MAIN_DATASETS = ("fpb", "fiqa_sa", "medqa", "medmcqa")


def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="smollm2-135m", help="registry name, local folder or hub id")
    p.add_argument("--dtype", default="auto", help="auto | bf16 | fp32 | fp16")
    p.add_argument("--source", default="auto", help="auto | local | hub (where the data comes from)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--evaluator", default="loglik", help="loglik | generate")
    p.add_argument("--max-eval", type=int, default=None, help="evaluate on the first N eval rows only")
    p.add_argument("--eval-batch-size", type=int, default=8)
    p.add_argument("--force", action="store_true", help="rerun even if a cached result exists")


def _config_from(args, dataset: str, setting: str):
    from .config import RunConfig

    return RunConfig(
        dataset=dataset, setting=setting, model=args.model, dtype=args.dtype, source=args.source,
        seed=args.seed, evaluator=args.evaluator, max_eval=args.max_eval,
        eval_batch_size=args.eval_batch_size,
    )


def _summary(result: dict) -> str:
    m, c = result["metrics"], result["config"]
    lo, hi = m.get("accuracy_ci", [float("nan")] * 2)
    flag = " (cached)" if result.get("cached") else ""
    return (
        f"{c['setting']:9s} {c['dataset']:8s} {c['model']:14s} n={m['n']:5d} "
        f"acc={m['accuracy']:.3f} [{lo:.3f}, {hi:.3f}] macroF1={m['macro_f1']:.3f}{flag}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fedlab", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p_run = sub.add_parser("run", help="run one cell of the grid")
    p_run.add_argument("--dataset", required=True)
    p_run.add_argument("--setting", default="zeroshot")
    _add_run_args(p_run)

    p_zs = sub.add_parser("zeroshot", help="zero-shot evaluation on several datasets")
    p_zs.add_argument("--datasets", nargs="+", default=list(MAIN_DATASETS))
    _add_run_args(p_zs)

    p_prep = sub.add_parser("prepare", help="convert the embedded model and write the split manifests")
    p_prep.add_argument("--datasets", nargs="+", default=list(MAIN_DATASETS))
    p_prep.add_argument("--source", default="auto")
    p_prep.add_argument("--seed", type=int, default=0)

    p_tab = sub.add_parser("tables", help="print tables made from result files; --readme updates README.md")
    p_tab.add_argument("--readme", action="store_true")

    args = parser.parse_args(argv)
    try:
        from .runner import run

        if args.command == "run":
            print(_summary(run(_config_from(args, args.dataset, args.setting), force=args.force)))
        elif args.command == "zeroshot":
            for name in args.datasets:
                print(_summary(run(_config_from(args, name, "zeroshot"), force=args.force)), flush=True)
        elif args.command == "prepare":
            from .data import load_splits
            from .models import embedded_dir

            print(f"embedded model: {embedded_dir()}")
            for name in args.datasets:
                info = load_splits(name, source=args.source, seed=args.seed).info
                print(json.dumps({k: info[k] for k in ("dataset", "source", "n_train", "n_eval", "split_hash")}))
        elif args.command == "tables":
            from .tables import BLOCKS, update_readme

            if args.readme:
                print("updated README blocks:", ", ".join(update_readme()) or "none")
            else:
                for name, make in BLOCKS.items():
                    print(f"## {name}\n{make()}\n")
    except FedlabError as exc:
        print(f"fedlab: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
