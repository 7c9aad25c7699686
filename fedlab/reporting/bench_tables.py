"""The benchmark tables of the README and docs: markdown made from ``bench/results/*.json`` only."""

from __future__ import annotations

import json
from pathlib import Path

from fedlab import paths

NO_BENCH = "(no benchmark result yet: run `make bench`)"


def _bench(path: Path | None, name: str) -> dict | None:
    """A benchmark's JSON result (``bench/results/NAME`` unless ``path``), or None if it has not run."""
    path = Path(path or paths.bench_dir() / name)
    return json.loads(path.read_text()) if path.is_file() else None


def bench_throughput_table(path: Path | None = None) -> str:
    """bench/bench_throughput.py: seconds per training step and per eval row per backbone, dataset, method."""
    b = _bench(path, "throughput.json")
    if b is None:
        return NO_BENCH
    lines = [
        "| backbone | dataset | method | dtype | s / step (batch 4) | training tokens/s | s / eval row |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in b["rows"]:
        lines.append(
            f"| {r['model']} | {r['dataset']} | {r['method']} | {r['dtype']} | {r['seconds_per_step']:.2f} | "
            f"{r['train_tokens_per_s']:.0f} | {r['seconds_per_eval_row']:.3f} |"
        )
    cpu = (b.get("manifest") or {}).get("hardware", {}).get("cpu") or "this machine's CPU"
    return "\n".join(lines) + f"\n\nMeasured on {cpu}, 2 threads, max_length 384, one process after a warm-up step."


def bench_evaluators_table(path: Path | None = None) -> str:
    b = _bench(path, "evaluators.json")
    if b is None:
        return NO_BENCH
    lines = ["| evaluator | examples/s | accuracy | invalid answers |", "|---|---|---|---|"]
    for name, v in b["results"].items():
        lines.append(f"| {name} | {v['examples_per_s']:.2f} | {v['accuracy']:.3f} | {v['invalid_rate']:.1%} |")
    hw = b["manifest"]["hardware"]
    lines.append(
        f"\nSpeed ratio loglik / generate: **{b['speed_ratio_loglik_over_generate']:.2f}x** "
        f"(goal >= 3x: {'met' if b['goal_met'] else 'NOT met'}); {b['results']['loglik']['examples']} "
        f"questions, {b['model']['name']} in {b['model']['dtype']}, {hw['cpu']}, "
        f"{hw['torch_threads']} threads."
    )
    return "\n".join(lines)


def bench_federated_table(path: Path | None = None) -> str:
    b = _bench(path, "federated.json")
    if b is None:
        return NO_BENCH
    m = b["simulation_memory"]
    hw = b["manifest"]["hardware"]
    lines = ["| measure | value | goal |", "|---|---|---|"]
    for w in (b["wall_time"], b.get("wall_time_200")):
        if not w:
            continue
        t = w.get("federated_server_timings", {})
        shape = f"{w.get('clients', 4)} clients x {w.get('rounds', 2)} rounds x {w.get('local_steps', 5)} steps"
        lines += [
            f"| {w['optimizer_steps']} steps: federated wall time ({shape}, Flower + Ray) | {w['federated_s']:.1f} s | |",
            f"| {w['optimizer_steps']} steps: centralized wall time (same steps, batch and eval) | {w['centralized_s']:.1f} s | |",
            f"| {w['optimizer_steps']} steps: ratio federated / centralized | **{w['ratio']:.2f}** | {w['goal']} ({'met' if w['goal_met'] else 'not met'}) |",
            f"| {w['optimizer_steps']} steps: server set-up / rounds / per-client eval / generation | "
            f"{t.get('setup_s', float('nan')):.1f} / {t.get('rounds_s', float('nan')):.1f} / "
            f"{t.get('client_eval_s', float('nan')):.1f} / {t.get('generation_s', float('nan')):.1f} s | |",
        ]
    if "first_run_in_process_s" in b:
        lines.append(
            f"| first federated run of a process (starts Ray and the client actors; later runs reuse them) | {b['first_run_in_process_s']:.1f} s | |"
        )
    lines += [
        f"| peak memory of the simulation, 2 clients | {m['clients_2']['peak_rss_mb']:.0f} MB | |",
        f"| peak memory of the simulation, 8 clients | {m['clients_8']['peak_rss_mb']:.0f} MB | |",
        f"| ratio 8 / 2 clients | **{m['ratio_8_over_2']:.2f}** | <= 1.2 ({'met' if m['goal_met'] else 'not met'}) |",
        f"\n{b['settings']['model']} on {b['settings']['dataset']} ({b['settings'].get('dtype', b['manifest'].get('dtype'))}), "
        f"{hw['cpu']}, {hw['cpu_cores']} cores.",
    ]
    return "\n".join(lines)


def bench_train_table(path: Path | None = None) -> str:
    b = _bench(path, "train.json")
    if b is None:
        return NO_BENCH
    s, hw = b["settings"], b["manifest"]["hardware"]
    lines = [
        "| loop | tokens/s | padded tokens/s | needed GFLOP/s | MFU | MFU (6N convention) |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in b["results"].items():
        lines.append(
            f"| {name} | {r['tokens_per_s']:.1f} | {r['padded_tokens_per_s']:.1f} | {r['needed_gflop_per_s']:.1f} | "
            f"{r['mfu']:.2f} | {r['mfu_6n_convention']:.2f} |"
        )
    g = b["goals"]
    peaks = ", ".join(f"{k} {v:.0f}" for k, v in b["matmul_peak_gflops"].items())
    lines.append(
        f"\nfedlab / reference tokens/s: **{b['ratio_fedlab_over_reference_tokens_per_s']:.2f}x** (goal >= 1.3: "
        f"{'met' if g['ratio_met'] else 'not met'}); MFU {b['results']['fedlab']['mfu']:.2f} (goal >= 0.6 in fp32: "
        f"{'met' if g['mfu_met'] else 'not met'}). {s['steps']} steps of batch {s['batch_size']}, {s['model']} "
        f"{s['method']} on {s['dataset']} in {s['dtype']} on {s['device']}; matmul peak measured in the same run: "
        f"{peaks} GFLOP/s; {hw['cpu']}, {hw['torch_threads']} threads. torch.compile "
        f"{'kept (faster)' if b.get('compile_kept') else 'not used (not faster here)' if 'fedlab_compiled' in b['results'] else 'not tried'}."
    )
    return "\n".join(lines)


def bench_secagg_table(path: Path | None = None) -> str:
    """bench/bench_secagg.py: SecAgg+ against plain FedAvg on the same round, and its added time as clients grow."""
    b = _bench(path, "secagg.json")
    if b is None:
        return NO_BENCH
    lines = [
        "| model | clients | max abs adapter difference (bound) | round wall time plain -> SecAgg+ | bytes up / down vs plain |",
        "|---|---|---|---|---|",
    ]
    for c in b["same_round"]:
        lines.append(
            f"| {c['model']} | {c['clients']} | {c['max_abs_adapter_difference']:.1e} ({c['quantisation_bound']:.1e}) | "
            f"{c['plain_round']['wall_s']:.1f} -> {c['secagg_round']['wall_s']:.1f} s | "
            f"x{c['bytes_ratio_up']:.2f} / x{c['bytes_ratio_down']:.2f} |"
        )
    growth = ", ".join(f"{g['clients']} clients +{g['added_round_s']:.1f} s" for g in b["clients_growth"])
    if b.get("deployment"):
        d = b["deployment"]
        growth += (
            f"; on the Deployment Engine (loopback, TLS, authenticated SuperNodes, a ClientApp process per message), "
            f"{d['clients']} clients: {d['plain_round']['wall_s']:.1f} -> {d['secagg_round']['wall_s']:.1f} s per round"
        )
    hw = (b.get("manifest") or {}).get("hardware", {})
    return (
        "\n".join(lines)
        + f"\n\nTime SecAgg+ adds to one round (tiny model, one local step), in Flower simulation in one process: "
        f"{growth}. On {hw.get('cpu_signature') or hw.get('cpu') or 'this machine'} ({hw.get('cpu_cores', '?')} cores), "
        f"fp32, one seed; one measurement each."
    )
