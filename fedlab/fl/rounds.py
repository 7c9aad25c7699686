"""The server's round loop: a fedlab strategy's aggregation of the client adapters each round, with
per-round validation or evaluation, byte counts, failure records, checkpoints and resume.

:func:`run_server` is the loop; :class:`ServerRun` holds what it keeps between rounds (the global
adapter, the strategy, the history, the best round) and builds the result. Both talk to the strategy
through the hooks of :class:`~fedlab.fl.strategies.FedlabStrategy` and to the adapter through
:class:`~fedlab.fl.adapter.GlobalAdapter`, so neither names an aggregation variant. The same loop
serves the simulation (:mod:`.simulation`) and the Deployment Engine (:mod:`.server_app`).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from flwr.serverapp import Grid

from fedlab.core.energy import AGGREGATION, EVALUATION, EnergyMeter, merge
from fedlab.core.metrics import compute_metrics
from fedlab.core.peft_methods import load_for_method
from fedlab.data import DATASETS
from fedlab.errors import FedlabError
from fedlab.experiment.config import RunConfig
from fedlab.experiment.hooks import NO_HOOKS, RunHooks
from fedlab.experiment.rundata import RunData
from fedlab.experiment.steps import eval_summary, evaluate_held_out, sample_generations
from fedlab.experiment.store import RunResult, RunStatus

from .adapter import GlobalAdapter
from .checkpoint import Checkpoint
from .federation import DEFAULT_ROUND_TIMEOUT, Federation
from .strategies import make_strategy

#: what a round keeps in the run's history
ROUND_KEYS = (
    "round",
    "sampled",
    "eval",
    "train_loss",
    "clients",
    "failures",
    "bytes_up",
    "bytes_down",
    "wall_s",
    "adapter_hash",
    "aggregation_error",
    "privacy",
)


def run_server(
    grid: Grid,
    cfg: RunConfig,
    *,
    ckpt_dir: Path | None = None,
    hooks: RunHooks = NO_HOOKS,
    progress: bool = True,
    round_timeout: float = DEFAULT_ROUND_TIMEOUT,
) -> RunResult:
    """All rounds of a federated run; returns its result (the store adds the provenance)."""
    run = ServerRun(grid, cfg, ckpt_dir, round_timeout)
    for rnd in range(run.start_round, cfg.rounds + 1):
        replies, record = run.federation.train_round(rnd, run.strategy, run.adapter, hooks)
        with run.meter.phase(AGGREGATION):
            record.update(run.strategy.aggregate(rnd, replies, run.adapter))
        run.score(rnd, record, hooks)
        run.close(rnd, record, progress)
        if hooks.stop_after is not None and hooks.stop_after <= rnd < cfg.rounds:
            return RunResult.of(cfg, status=RunStatus.PARTIAL, rounds=run.history, resumed_from=run.resumed_from)
    return run.result(hooks)


class ServerRun:
    """A federated run as the server holds it: data, the global adapter on the server's model, the
    strategy, the history of rounds, the best validated round; resumed from a checkpoint when there is one."""

    def __init__(self, grid: Grid, cfg: RunConfig, ckpt_dir: Path | None, round_timeout: float):
        self.t_start, self.cfg = time.perf_counter(), cfg
        self.data = RunData(cfg)
        _ = self.data.partition_info  # an impossible partition is a ConfigError here, before any client is asked
        # the server's adapter is at the largest client rank (the run's rank without client_ranks)
        model, self.tokenizer, self.model_info = load_for_method(
            cfg.model, cfg.method, cfg.dtype, cfg.client_method_params(), seed=cfg.seed
        )
        self.adapter = GlobalAdapter(model)
        self.meter = EnergyMeter(cfg.energy_country).start()
        self.strategy = make_strategy(cfg)
        self.metric = DATASETS[cfg.dataset].primary_metric
        # select=validation or last: federated evaluation on the clients' validation rows every `every` rounds
        # and at the last; the best (validation) or the last (last) global adapter is the run's, and only it
        # is scored on the held-out set
        self.validates, self.every = cfg.validates, cfg.eval_every or 1
        self.history: list[dict] = []
        self.start_round, self.resumed_from, self.best, self.last_eval = 1, None, None, None
        self.ckpt = Checkpoint(ckpt_dir, cfg.hash()) if ckpt_dir else None
        if self.ckpt is not None and (saved := self.ckpt.load()) is not None:
            done, arrays, self.history, state = saved
            self.adapter.update(arrays)
            self.strategy.restore(state, self.adapter)
            self.start_round, self.resumed_from, self.best = done + 1, done, self.ckpt.load_best()
        self.federation = Federation(grid, cfg, round_timeout, client_sizes=[len(c) for c in self.data.clients])
        self.federation.resume(self.history)
        self.t_rounds = time.perf_counter()

    def score(self, rnd: int, record: dict, hooks: RunHooks) -> None:
        """The round's score: federated validation (select=validation or last, every ``eval_every`` rounds and
        at the last; a personalised run's clients each score their own model), else the held-out set (none for
        a personalised run: it has no one global model)."""
        record["eval"] = None
        if not self.validates:
            if self.strategy.personalised:
                return
            with self.meter.phase(EVALUATION):
                self.last_eval = evaluate_held_out(self.adapter.model, self.tokenizer, self.cfg, self.data.eval_rows)
            record["eval"] = eval_summary(self.last_eval.metrics)
        elif rnd % self.every == 0 or rnd == self.cfg.rounds:
            record["validation"] = self.federation.validate(self.strategy, self.adapter, hooks)
            if not self.cfg.keeps_best:
                return
            if self.best is None or record["validation"][self.metric] > self.best["score"]:
                self.best = {"round": rnd, "score": record["validation"][self.metric], "arrays": self.adapter.copy()}

    def close(self, rnd: int, record: dict, progress: bool) -> None:
        """Record the round in the history, say how it went, checkpoint."""
        record.update(wall_s=round(time.perf_counter() - record.pop("t0"), 2), adapter_hash=self.adapter.hash())
        self.history.append(
            {**{k: record[k] for k in ROUND_KEYS}, **{k: record[k] for k in ("validation", "secagg") if k in record}}
        )
        if progress:
            shown = (
                f"validation {self.metric} {record['validation'][self.metric]:.3f}"
                if record.get("validation")
                else f"eval acc {record['eval']['accuracy']:.3f}"
                if record["eval"]
                else "not scored this round"
            )
            print(
                f"[fedlab] round {rnd}/{self.cfg.rounds}: {shown}, train loss {record['train_loss']:.3f}, "
                f"{len(record['failures'])} failed, {record['wall_s']:.0f} s",
                flush=True,
            )
        if self.ckpt is not None:
            self.ckpt.save(rnd, self.adapter.arrays, self.history, self.strategy, best=self.best)

    def _last_validation(self) -> dict:
        """The last round's federated validation score (select=last), from the history (a resumed run too)."""
        h = next(h for h in reversed(self.history) if h.get("validation"))
        return {"round": h["round"], "score": h["validation"][self.metric]}

    def result(self, hooks: RunHooks) -> RunResult:
        """The final evaluation (the kept round's adapter on the held-out set and on every client's own rows)
        and a sample of generations; the run's result."""
        cfg, data, t_final = self.cfg, self.data, time.perf_counter()
        selection = {}
        if self.validates:
            kept = self.best if cfg.keeps_best else self._last_validation()
            if cfg.keeps_best:
                self.adapter.update(self.best["arrays"])  # scored below (no held-out score was taken per round)
            selection = {
                "rule": f"best federated validation {self.metric}" if cfg.keeps_best else "last round",
                "round": kept["round"],
                "score": kept["score"],
                "on": "clients' own validation rows (pooled gold x predicted counts)",
                "n_validation": sum(len(data.client_validation_rows(p)) for p in range(cfg.clients)),
            }
        per_client = self.federation.evaluate_clients(self.strategy, self.adapter, hooks)
        accs = [c["accuracy"] for c in per_client if "accuracy" in c]
        if self.strategy.personalised:
            metrics, predictions = personalised_metrics(per_client, data.eval_rows, cfg)
        else:
            final = self.last_eval or evaluate_held_out(self.adapter.model, self.tokenizer, cfg, data.eval_rows)
            metrics, predictions = final.metrics, final.predictions
        t_gen = time.perf_counter()
        # a personalised run has no one global model to generate with
        generations = (
            []
            if self.strategy.personalised
            else sample_generations(self.adapter.model, self.tokenizer, cfg, data.eval_rows)
        )
        t_end = time.perf_counter()
        server_energy = self.meter.stop()
        clients_energy = self.federation.clients_energy()
        rounds = self.history
        return RunResult.of(
            cfg,
            resumed_from=self.resumed_from,
            data=data.data_info,
            partition=data.partition_info,
            model=self.model_info,
            rounds=rounds,
            metrics=metrics,
            predictions=predictions,
            per_client=per_client,
            per_client_summary={"mean": float(np.mean(accs)), "worst": float(np.min(accs)), "best": float(np.max(accs))}
            if accs
            else {},
            communication=_communication(rounds, self.adapter, self.model_info["n_parameters"]),
            energy=merge(
                server_energy, dict(clients_energy, country_iso_code=cfg.energy_country, mode=server_energy.get("mode"))
            ),
            energy_by_side={"server": server_energy, "clients": clients_energy},
            budget={
                "optimizer_steps": sum(c["steps"] for h in rounds for c in h["clients"]),
                "examples": sum(c["examples_trained"] for h in rounds for c in h["clients"]),
                "tokens": sum(c.get("tokens_trained", 0) for h in rounds for c in h["clients"]),
            },
            timings={
                "wall_s": round(t_end - self.t_start, 2),
                "setup_s": round(self.t_rounds - self.t_start, 2),
                "rounds_s": round(t_final - self.t_rounds, 2),
                "client_eval_s": round(t_gen - t_final, 2),
                "generation_s": round(t_end - t_gen, 2),
            },
            adapter_hash=self.adapter.hash(),
            selection=selection,
            generations=generations,
            adapter=self.adapter.snapshot(),
            engine="simulation",
        )


def personalised_metrics(per_client: list[dict], eval_rows: list, cfg: RunConfig) -> tuple[dict, list[dict]]:
    """A personalised run's held-out metrics (FedSA-LoRA): each client's model on the shared eval set, averaged
    over clients (like the isolated baseline); predictions carry their client."""
    scored = [c for c in per_client if "shared_eval" in c]
    if not scored:
        raise FedlabError(
            f"no client returned its evaluation on the shared eval set ({cfg.strategy}); see per_client errors"
        )
    options = eval_rows[0].options
    per = [compute_metrics([r.label for r in eval_rows], c["shared_eval"]["preds"], options, n_boot=0) for c in scored]
    accs, f1s = [m["accuracy"] for m in per], [m["macro_f1"] for m in per]
    predictions = [
        {"id": r.id, "group": r.group, "gold": r.label, "pred": p, "correct": p == r.label, "client": c["client"]}
        for c in scored
        for r, p in zip(eval_rows, c["shared_eval"]["preds"])
    ]
    metrics = {
        "n": len(eval_rows),
        "accuracy": float(np.mean(accs)),
        "macro_f1": float(np.mean(f1s)),
        "accuracy_worst": float(np.min(accs)),
        "accuracy_best": float(np.max(accs)),
        "aggregate": "mean over the clients' personalised models (global A, own B) on the shared eval set",
    }
    return metrics, predictions


def _communication(history: list, adapter: GlobalAdapter, n_parameters: int) -> dict:
    model_bytes = int(n_parameters) * 4
    up, down = sum(h["bytes_up"] for h in history), sum(h["bytes_down"] for h in history)
    last = history[-1]["clients"] if history else []
    return {
        "bytes_up": up,
        "bytes_down": down,
        "bytes_total": up + down,
        "per_round_up": [h["bytes_up"] for h in history],
        "per_round_down": [h["bytes_down"] for h in history],
        "adapter_bytes_raw": adapter.nbytes(),
        "full_model_bytes_fp32": model_bytes,
        "ratio_per_message_to_full_model": last[0]["bytes_up"] / model_bytes if last else None,
    }
