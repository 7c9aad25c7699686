"""Benchmark: federated vs centralized wall time at equal optimizer steps, and simulation memory.

In one process on the embedded model (fp32): a short federated run that starts Ray and its client
actors (timed on its own: later runs of a process reuse them, as a grid or a notebook does); a
federated run (4 clients x 2 rounds x 5 local steps = 40 steps, Flower simulation on Ray) and a
centralized run of 40 steps on the pooled data, same batch, same eval set; the same at 200 steps
(4 clients x 5 rounds x 10 steps); then the peak memory (driver + Ray workers, sampled) of a
simulation with 2 and with 8 clients. Writes bench/results/federated.json. Goals:
federated/centralized wall time <= 1.15 at 40 steps and <= 1.05 at 200; peak memory 8 / 2 clients <= 1.2.

    .venv/bin/python bench/bench_federated.py [--dataset fpb] [--max-eval 50]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")

from fedlab.core.memory import PeakRSS  # noqa: E402
from fedlab.experiment.config import RunConfig  # noqa: E402
from fedlab.experiment.provenance import run_manifest  # noqa: E402
from fedlab.io import write_json  # noqa: E402
from fedlab.paths import bench_dir  # noqa: E402
from fedlab.study import run  # noqa: E402

OUT = bench_dir() / "federated.json"


def timed(cfg: RunConfig) -> tuple[float, dict, int]:
    with PeakRSS(0.25, descendants=True) as mem:
        t0 = time.perf_counter()
        result = run(cfg, force=True, progress=False)
        seconds = time.perf_counter() - t0
    return seconds, result, mem.peak_mb


def pair(common: dict, clients: int, rounds: int, local_steps: int) -> dict:
    """A federated run and the centralized run with the same optimizer steps, timed in this process."""
    cfg = dict(common, clients=clients, rounds=rounds, local_steps=local_steps)
    fed_s, fed, fed_mem = timed(RunConfig(setting="federated", **cfg))
    cen_s, cen, cen_mem = timed(RunConfig(setting="centralized", **cfg))
    steps = clients * rounds * local_steps
    assert fed.budget.optimizer_steps == cen.budget.optimizer_steps == steps
    return {
        "optimizer_steps": steps,
        "clients": clients,
        "rounds": rounds,
        "local_steps": local_steps,
        "federated_s": round(fed_s, 1),
        "centralized_s": round(cen_s, 1),
        "ratio": round(fed_s / cen_s, 3),
        "federated_train_s": round(sum(c["train_seconds"] for h in fed.rounds for c in h["clients"]), 1),
        "centralized_train_s": cen.train["seconds"],
        "federated_peak_rss_mb": round(fed_mem, 1),
        "centralized_peak_rss_mb": round(cen_mem, 1),
        "federated_server_timings": fed.timings.to_dict(),
        "simulation_overhead_s": round(fed_s - fed.timings.wall_s, 1),
        "client_torch_threads": sorted({c["torch_threads"] for h in fed.rounds for c in h["clients"]}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fpb")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--dtype", default="fp32")
    parser.add_argument("--max-eval", type=int, default=50)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    os.environ["FEDLAB_RESULTS_DIR"] = tempfile.mkdtemp(prefix="fedlab-bench-")

    common = dict(
        dataset=args.dataset,
        model=args.model,
        dtype=args.dtype,
        method="lora",
        batch_size=4,
        partition="iid",
        max_eval=args.max_eval,
        n_boot=0,
        max_client_eval=8,
        max_length=256,
    )
    # the first federated run of a process starts Ray and its client actors (imports, backbone);
    # later runs of the process (a grid, a notebook) reuse them: time that start on its own
    cold_s, _, _ = timed(RunConfig(setting="federated", **dict(common, clients=4, rounds=1, local_steps=1)))
    at40 = pair(common, clients=4, rounds=2, local_steps=5)
    at200 = pair(common, clients=4, rounds=5, local_steps=10)

    memory = {}
    for n in (2, 8):
        cfg = RunConfig(setting="federated", clients=n, **dict(common, rounds=1, local_steps=1))
        seconds, _, peak = timed(cfg)
        memory[n] = {"peak_rss_mb": round(peak, 1), "seconds": round(seconds, 1)}
    mem_ratio = memory[8]["peak_rss_mb"] / memory[2]["peak_rss_mb"]
    result = {
        "benchmark": "federated",
        "settings": dict(common, out=str(args.out)),
        "first_run_in_process_s": round(cold_s, 1),
        "wall_time": dict(at40, goal="<= 1.15", goal_met=at40["ratio"] <= 1.15),
        "wall_time_200": dict(at200, goal="<= 1.05", goal_met=at200["ratio"] <= 1.05),
        "simulation_memory": {
            "clients_2": memory[2],
            "clients_8": memory[8],
            "ratio_8_over_2": round(mem_ratio, 3),
            "goal": "<= 1.2",
            "goal_met": mem_ratio <= 1.2,
        },
        "manifest": run_manifest(args.dtype),
    }
    write_json(args.out, result)
    for w in (result["wall_time"], result["wall_time_200"]):
        print(
            f"{w['optimizer_steps']} steps: federated {w['federated_s']} s vs centralized {w['centralized_s']} s: "
            f"ratio {w['ratio']} (goal {w['goal']})"
        )
    print(f"first federated run of the process (Ray start): {cold_s:.1f} s")
    print(
        f"peak memory 2 clients {memory[2]['peak_rss_mb']} MB, 8 clients {memory[8]['peak_rss_mb']} MB: "
        f"ratio {mem_ratio:.3f} (goal <= 1.2)"
    )


if __name__ == "__main__":
    main()
