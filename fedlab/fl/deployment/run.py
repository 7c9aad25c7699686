"""One federated run on a fresh local federation (one SuperNode per client), cached like any run."""

from __future__ import annotations

import contextlib
import os

from fedlab.experiment.config import RunConfig
from fedlab.experiment.hooks import NO_HOOKS, RunHooks
from fedlab.experiment.store import ResultStore, RunResult

from ..checkpoint import Checkpoint
from ..federation import DEFAULT_ROUND_TIMEOUT
from .federation import APP_DIR, FederationError, LocalFederation


def _node_killer(ckpt: Checkpoint, node: int, after_round: int):
    """An ``on_poll`` callback that SIGKILLs SuperNode ``node`` once round ``after_round`` is checkpointed."""
    done = []

    def on_poll(fed: LocalFederation, run_id: int) -> None:
        if not done and ckpt.last_round() >= after_round:
            fed.kill_node(node)
            done.append(node)

    return on_poll


def deploy_run(
    cfg: RunConfig,
    *,
    tls: bool = False,
    auth: bool = False,
    timeout: float = 3600.0,
    workdir=None,
    round_timeout: float = DEFAULT_ROUND_TIMEOUT,
    node_threads: int | None = None,
    force: bool = False,
    hooks: RunHooks = NO_HOOKS,
    federation: LocalFederation | None = None,
) -> RunResult:
    """Run one federated config on Flower's Deployment Engine on this machine; return its result.

    A finished result with the same config hash is returned as is unless ``force``; an interrupted
    one resumes from its checkpoint. ``hooks.kill_node_after_round=(node, round)`` SIGKILLs that
    SuperNode once the round's checkpoint exists (fault injection for tests and demonstrations).
    ``federation``: a started :class:`LocalFederation` with one SuperNode per client to run on (left
    running); by default a fresh one is started and stopped around the run.
    """
    cfg = cfg.resolved()
    store = ResultStore.deployment()
    if not force and (hit := store.lookup(cfg)) is not None:
        return hit
    if force:
        store.clear_checkpoint(cfg)
    ckpt_dir = store.checkpoint_dir(cfg)
    on_poll, poll = None, 2.0
    if hooks.kill_node_after_round is not None:
        node, rnd = hooks.kill_node_after_round
        on_poll, poll = _node_killer(Checkpoint(ckpt_dir, cfg.hash()), node, rnd), 0.5
    if federation is not None:
        if federation.n != cfg.clients or federation.tls != tls or federation.auth != auth:
            raise FederationError(
                f"the federation given has {federation.n} SuperNodes (tls={federation.tls}, auth="
                f"{federation.auth}); this run needs {cfg.clients} (tls={tls}, auth={auth}). Fix: start one "
                f"SuperNode per client with those settings, or pass none."
            )
        running = contextlib.nullcontext(federation)  # the caller's: left running
    else:
        threads = node_threads or max(1, (os.cpu_count() or 1) // cfg.clients)
        running = LocalFederation(
            cfg.clients, tls=tls, auth=auth, workdir=workdir, env={"FEDLAB_CLIENT_THREADS": str(threads)}
        )
    with running as fed:
        out = fed.run(
            APP_DIR,
            cfg.to_dict(),
            timeout=timeout,
            checkpoint_dir=ckpt_dir,
            poll=poll,
            extra={"round-timeout": str(round_timeout)},
            on_poll=on_poll,
        )
    if out["status"] != "finished:completed":
        raise FederationError(f"run {out['run_id']} ended {out['status']}: {out.get('details')}\n{out['log'][-3000:]}")
    result = store.lookup(cfg)
    if result is None:
        raise FederationError(
            f"run {out['run_id']} completed but wrote no result at {store.path(cfg)}.\n{out['log'][-3000:]}"
        )
    result.cached = False
    result.deployment = {
        "run_id": out["run_id"],
        "status": out["status"],
        "wall_s": out["wall_s"],
        "federation_timings": fed.timings,
        "federation_tag": fed.tag,
        "tls": fed.tls,
        # SuperNode authentication: only these registered node ids could join
        "supernode_auth": {"registered_node_ids": fed.registered} if fed.auth else None,
    }
    return store.save(cfg, result)  # the result file records how the federation was run
