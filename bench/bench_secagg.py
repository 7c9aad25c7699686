"""Benchmark: what SecAgg+ (Flower's SecAggPlusWorkflow + secaggplus_mod, fedlab.fl.secagg) costs.

(b) On FPB with the tiny and the embedded model (4 clients, one round of 2 local steps, Flower simulation,
    fp32): plain FedAvg against SecAgg+ with the same seed, so both rounds train the same: the largest
    difference between the two global adapters (against the quantisation bound), the round's wall time and
    the bytes sent up and down in it, and SecAgg+'s time per stage.
(c) On the tiny model: the wall time SecAgg+ adds to one round as the clients grow (4, 8, 16; one local step
    each), in simulation in one process (Ray actors on this machine's cores), and with 4 clients on the
    Deployment Engine on loopback (TLS, authenticated SuperNodes), where every stage message starts a
    ClientApp process.

Every run is forced (none is served from a cache) into a temporary results folder; the simulated pairs
follow an untimed warm-up run of the same config (the clients load the model on their first message). Writes
bench/results/secagg.json.

    .venv/bin/python bench/bench_secagg.py [--max-eval 50]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")

import numpy as np  # noqa: E402

from fedlab.experiment.config import SECAGG_DEFAULTS, RunConfig  # noqa: E402
from fedlab.experiment.provenance import run_manifest  # noqa: E402
from fedlab.io import write_json  # noqa: E402
from fedlab.paths import bench_dir  # noqa: E402
from fedlab.study import run  # noqa: E402

OUT = bench_dir() / "secagg.json"


def adapter(result) -> dict:
    from safetensors.numpy import load_file

    return load_file(str(Path(result.path).parent / result.adapter_dir / "adapter_model.safetensors"))


def round_of(result) -> dict:
    (h,) = result.rounds
    return {
        "wall_s": h["wall_s"],
        "bytes_up": h["bytes_up"],
        "bytes_down": h["bytes_down"],
        "stages": [{k: s[k] for k in ("stage", "wall_s", "bytes_up", "bytes_down")} for s in h["secagg"]["stages"]]
        if "secagg" in h
        else None,
    }


def compare(common: dict) -> dict:
    """Plain FedAvg and SecAgg+ on one config: their adapters, round times and bytes. A first plain run warms
    the clients up (each worker loads the model on its first message, inside the round) and is not timed."""
    run(RunConfig(**common).resolved(), force=True, progress=False)
    plain = run(RunConfig(**common).resolved(), force=True, progress=False)
    secure = run(RunConfig(**common, secagg={}).resolved(), force=True, progress=False)
    a, b = adapter(plain), adapter(secure)
    diff = max(float(np.max(np.abs(a[k] - b[k]))) for k in a)
    peak = max(float(np.max(np.abs(a[k]))) for k in a)
    s = SECAGG_DEFAULTS
    sizes = [c["num_examples"] for c in plain.rounds[0]["clients"]]
    q = [round(n / max(sizes) * s["quantization_range"]) for n in sizes]
    bound = len(sizes) * (2 * s["clipping_range"] + peak) / sum(q)
    p, r = round_of(plain), round_of(secure)
    return {
        "model": common["model"],
        "clients": common["clients"],
        "max_abs_adapter_difference": diff,
        "quantisation_bound": bound,
        "within_bound": diff < bound,
        "relative_difference": float(
            np.sqrt(sum(np.sum((a[k] - b[k]) ** 2) for k in a)) / np.sqrt(sum(np.sum(a[k] ** 2) for k in a))
        ),
        "metric_plain": plain.metrics["macro_f1"],
        "metric_secagg": secure.metrics["macro_f1"],
        "plain_round": p,
        "secagg_round": r,
        "added_round_s": round(r["wall_s"] - p["wall_s"], 2),
        "bytes_ratio_up": round(r["bytes_up"] / p["bytes_up"], 3),
        "bytes_ratio_down": round(r["bytes_down"] / p["bytes_down"], 3),
    }


def deployed(common: dict) -> dict:
    """One round without and with SecAgg+ on the Deployment Engine on loopback (a SuperLink and one SuperNode
    per client, TLS and SuperNode authentication; every message runs in a fresh ClientApp process there)."""
    from fedlab.fl.deployment.federation import LocalFederation
    from fedlab.fl.deployment.run import deploy_run

    with tempfile.TemporaryDirectory() as work:
        fed = LocalFederation(common["clients"], tls=True, auth=True, workdir=work, env={"FEDLAB_CLIENT_THREADS": "1"})
        with fed:  # every message starts a ClientApp process there: nothing to warm up, timed as it runs
            plain = deploy_run(RunConfig(**common), tls=True, auth=True, force=True, federation=fed)
            secure = deploy_run(RunConfig(**common, secagg={}), tls=True, auth=True, force=True, federation=fed)
    p, r = round_of(plain), round_of(secure)
    return {
        "clients": common["clients"],
        "plain_round": p,
        "secagg_round": r,
        "added_round_s": round(r["wall_s"] - p["wall_s"], 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-eval", type=int, default=50)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["FEDLAB_RESULTS_DIR"] = tmp
        base = dict(
            dataset="fpb",
            setting="federated",
            dtype="fp32",
            partition="iid",
            rounds=1,
            batch_size=4,
            max_eval=args.max_eval,
            max_client_eval=8,
            n_boot=0,
            max_length=256,
        )
        same = [
            compare(dict(base, model=m, clients=4, local_steps=2, lr=lr))
            for m, lr in (("tiny-random", 5e-3), ("smollm2-135m", 1e-3))
        ]
        growth = []
        for n in (4, 8, 16):
            c = compare(dict(base, model="tiny-random", clients=n, local_steps=1, lr=5e-3, max_eval=8))
            growth.append({k: c[k] for k in ("clients", "added_round_s", "plain_round", "secagg_round")})
        deployment = deployed(dict(base, model="tiny-random", clients=4, local_steps=1, lr=5e-3, max_eval=8))
    out = {
        "what": "SecAgg+ vs plain FedAvg: the same round (seeded), its adapter, wall time and bytes; the time "
        "SecAgg+ adds per round as clients grow (Flower simulation, one process)",
        "settings": SECAGG_DEFAULTS,
        "same_round": same,
        "clients_growth": growth,
        "deployment": deployment,
        "manifest": run_manifest("fp32"),
    }
    write_json(OUT, out)
    print(f"wrote {OUT}")
    for c in same:
        print(
            f"{c['model']}: max |secagg - fedavg| {c['max_abs_adapter_difference']:.2e} (bound "
            f"{c['quantisation_bound']:.2e}), round {c['plain_round']['wall_s']:.1f} s -> "
            f"{c['secagg_round']['wall_s']:.1f} s, bytes up x{c['bytes_ratio_up']}, down x{c['bytes_ratio_down']}"
        )
    for g in growth:
        print(f"{g['clients']} clients: SecAgg+ adds {g['added_round_s']:.1f} s per round")
    print(
        f"Deployment Engine, {deployment['clients']} SuperNodes: SecAgg+ adds {deployment['added_round_s']:.1f} s per round"
    )


if __name__ == "__main__":
    main()
