"""Benchmark: federated vs centralized wall time at equal optimizer steps, and simulation memory.

In one process on the embedded model: a federated run (4 clients x 2 rounds x 5 local steps = 40
steps, Flower simulation on Ray) and a centralized run of 40 steps on the pooled data, same batch,
same eval set; then the peak memory (driver + Ray workers, sampled) of a simulation with 2 and with
8 clients. Writes bench/results/federated.json. Goals: federated/centralized wall time <= 1.15;
peak memory 8 clients / 2 clients <= 1.2.

    .venv/bin/python bench/bench_federated.py [--dataset fpb] [--max-eval 50]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")

import psutil  # noqa: E402

from fedlab.experiment.config import RunConfig  # noqa: E402
from fedlab.experiment.provenance import run_manifest  # noqa: E402
from fedlab.io import write_json  # noqa: E402
from fedlab.paths import bench_dir  # noqa: E402
from fedlab.study import run  # noqa: E402

OUT = bench_dir() / "federated.json"


class PeakRSS:
    """Samples the resident memory of this process and all its descendants (Ray workers)."""

    def __init__(self, every: float = 0.25):
        self.every, self.peak, self._stop = every, 0, threading.Event()

    def _total(self) -> int:
        me = psutil.Process()
        total = me.memory_info().rss
        for child in me.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _loop(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._total())
            time.sleep(self.every)

    def __enter__(self):
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def timed(cfg: RunConfig) -> tuple[float, dict, int]:
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        result = run(cfg, force=True, progress=False)
        seconds = time.perf_counter() - t0
    return seconds, result, mem.peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fpb")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--max-eval", type=int, default=50)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    os.environ["FEDLAB_RESULTS_DIR"] = tempfile.mkdtemp(prefix="fedlab-bench-")

    common = dict(dataset=args.dataset, model=args.model, method="lora", rounds=2, local_steps=5, batch_size=4,
                  partition="iid", max_eval=args.max_eval, n_boot=0, max_client_eval=8, max_length=256)
    fed_cfg = RunConfig(setting="federated", clients=4, **common)
    cen_cfg = RunConfig(setting="centralized", clients=4, **common)
    fed_s, fed, fed_mem = timed(fed_cfg)
    cen_s, cen, cen_mem = timed(cen_cfg)
    assert fed.budget["optimizer_steps"] == cen.budget["optimizer_steps"] == 40

    memory = {}
    for n in (2, 8):
        cfg = RunConfig(setting="federated", clients=n, **dict(common, rounds=1, local_steps=1))
        seconds, _, peak = timed(cfg)
        memory[n] = {"peak_rss_mb": round(peak / 2**20, 1), "seconds": round(seconds, 1)}

    time_ratio = fed_s / cen_s
    mem_ratio = memory[8]["peak_rss_mb"] / memory[2]["peak_rss_mb"]
    result = {
        "benchmark": "federated",
        "settings": dict(common, clients=4, out=str(args.out)),
        "wall_time": {
            "federated_s": round(fed_s, 1), "centralized_s": round(cen_s, 1), "ratio": round(time_ratio, 3),
            "goal": "<= 1.15", "goal_met": time_ratio <= 1.15, "optimizer_steps": 40,
            "federated_train_s": round(sum(c["train_seconds"] for h in fed.rounds for c in h["clients"]), 1),
            "centralized_train_s": cen.train["seconds"],
            "federated_peak_rss_mb": round(fed_mem / 2**20, 1), "centralized_peak_rss_mb": round(cen_mem / 2**20, 1),
            "federated_server_timings": fed.timings,
            "simulation_overhead_s": round(fed_s - fed.timings["wall_s"], 1),
            "client_torch_threads": sorted({c["torch_threads"] for h in fed.rounds for c in h["clients"]}),
        },
        "simulation_memory": {
            "clients_2": memory[2], "clients_8": memory[8], "ratio_8_over_2": round(mem_ratio, 3),
            "goal": "<= 1.2", "goal_met": mem_ratio <= 1.2,
        },
        "manifest": run_manifest(fed.model["dtype"]),
    }
    write_json(args.out, result)
    w, m = result["wall_time"], result["simulation_memory"]
    print(f"federated {w['federated_s']} s vs centralized {w['centralized_s']} s: ratio {w['ratio']} (goal <= 1.15)")
    print(f"peak memory 2 clients {memory[2]['peak_rss_mb']} MB, 8 clients {memory[8]['peak_rss_mb']} MB: ratio {m['ratio_8_over_2']} (goal <= 1.2)")


if __name__ == "__main__":
    main()
