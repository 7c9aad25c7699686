"""The pieces that make training faster keep its meaning: loss, batches, prompts, plan and resources."""

import dataclasses
import functools
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from fedlab.core.flops import body_parameters, matmul_peak_gflops, training_flops
from fedlab.core.peft_methods import load_for_method
from fedlab.core.prompts import encode, prompt_text, training_ids
from fedlab.core.train import answer_loss, collate, data_order, length_grouped
from fedlab.data import load_splits
from fedlab.errors import ConfigError
from fedlab.experiment.plan import _shape as shape
from fedlab.experiment.plan import estimate_seconds, plan_grid, profile_configs
from fedlab.experiment.profiles import load_profile
from fedlab.experiment.resources import Resources
from fedlab.experiment.rundata import RunData
from fedlab.experiment.store import ResultStore, RunResult
from fedlab.fl.simulation import backend_config


@pytest.fixture(scope="module")
def rows(fedlab_data_dir):
    return (
        load_splits("fpb", data_dir=fedlab_data_dir).train[:12]
        + load_splits("medqa", data_dir=fedlab_data_dir).train[:4]
    )


@pytest.mark.parametrize("method", ["lora", "ia3"])
def test_answer_only_logits_give_the_models_own_loss(method, rows):
    model, tok, _ = load_for_method("tiny-random", method, dtype="fp32")
    ids, mask, labels = collate([training_ids(encode(r, tok, 256, ""), tok) for r in rows], tok.pad_token_id)
    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        new = answer_loss(model, ids, mask, labels)
    assert torch.allclose(ref, new, rtol=1e-5, atol=1e-6), (float(ref), float(new))


def test_length_grouping_keeps_the_draws_and_cuts_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(20, 200, size=50).tolist()
    order = data_order(50, 40 * 4, seed=3)
    grouped = length_grouped(order, lengths, 4, seed=5)
    assert Counter(grouped) == Counter(order)  # every example drawn exactly as often
    for lo in range(0, len(order), 48):  # windows of 12 batches (<= 50 examples), aligned with the batches
        assert Counter(grouped[lo : lo + 48]) == Counter(order[lo : lo + 48])
    small = length_grouped(data_order(8, 12 * 8, seed=0), lengths[:8], 8, seed=0)
    assert all(len(set(small[k : k + 8])) == 8 for k in range(0, len(small), 8))  # tiny data: no repeats in a batch

    def padded(seq):
        return sum(4 * max(lengths[i] for i in seq[k : k + 4]) for k in range(0, len(seq), 4))

    assert padded(grouped) < 0.75 * padded(order)
    assert length_grouped(order, lengths, 4, seed=5) == grouped != length_grouped(order, lengths, 4, seed=6)


def test_system_prompt_is_explicit_and_shared(rows, tiny):
    _, tok, _ = tiny
    default, empty = prompt_text(rows[0], tok), prompt_text(rows[0], tok, system_prompt="")
    assert "SmolLM" in default and "SmolLM" not in empty and "<|im_start|>system" in empty
    assert len(encode(rows[0], tok, 512, "").prompt_ids) < len(encode(rows[0], tok, 512).prompt_ids) - 10
    short = prompt_text(rows[0], tok, system_prompt="You are a financial analyst.")
    assert "You are a financial analyst." in short


def test_flops_accounting(tiny):
    model, _, _ = tiny
    n = body_parameters(model)
    assert 0 < n < sum(p.numel() for p in model.parameters())
    f = training_flops(model, tokens=1000, loss_tokens=20, seq_len=100)
    assert f["needed_flops"] > 4 * n * 1000 and f["six_n_flops"] == 6 * n * 1000
    assert matmul_peak_gflops("fp32", n=256, seconds=0.2) > 0.1


def test_resources_are_checked_and_reach_ray():
    assert Resources.from_dict({"client_gpus": 0.5}).client_gpus == 0.5
    with pytest.raises(ConfigError, match="client_gpus must be in"):
        Resources.from_dict({"client_gpus": 2})
    with pytest.raises(ConfigError, match="Unknown resource"):
        Resources.from_dict({"gpus": 1})
    conf = backend_config(Resources(client_cpus=1))
    assert conf["client_resources"]["num_cpus"] == 1 and conf["init_args"]["include_dashboard"] is False
    assert conf["client_resources"]["num_gpus"] == (1.0 if torch.cuda.is_available() else 0.0)


def test_the_plan_says_what_is_reused_and_trained(tmp_path, monkeypatch, fedlab_data_dir):
    monkeypatch.setenv("FEDLAB_DATA_DIR", str(fedlab_data_dir))
    monkeypatch.setenv("FEDLAB_RESULTS_DIR", str(tmp_path))
    smoke = load_profile("smoke")
    configs = profile_configs(smoke)
    plan = plan_grid(configs)
    assert len(plan.train) == len(configs) and not plan.reuse
    assert all(s is not None and 0 < s < 3600 for s in plan.seconds.values())
    text = plan.describe()
    assert f"0 finished runs are reused (same config hash), {len(configs)} will be trained" in text
    committed = ResultStore(Path(__file__).resolve().parents[3] / "results")
    for name in ("quick",):
        quick = plan_grid(profile_configs(load_profile(name)), store=committed)
        assert not quick.train, f"the committed {name} results are found on any CPU (dtype pinned in the profile)"


def _finished(store, cfg, wall, signature, shared=False):
    """A finished run of ``cfg`` in ``store``: its wall time, the CPU it ran on, whether others shared the CPU."""
    result = RunResult.of(
        cfg,
        timings={"wall_s": wall, "contention": {"shared": shared}},
        manifest={"hardware": {"cpu_signature": signature}},
    )
    store.path(cfg).parent.mkdir(parents=True, exist_ok=True)
    store.path(cfg).write_text(json.dumps(result.to_json()))


def _timing_case(tmp_path):
    """A store, smoke's FPB LoRA federated and centralized runs, the federated one at another seed, and a function
    that records a finished run in the store (:func:`_finished`)."""
    store = ResultStore(tmp_path)
    cells = [c.resolved() for c in load_profile("smoke").cells() if c.dataset == "fpb" and c.method == "lora"]
    fed = next(c for c in cells if c.setting == "federated")
    cen = next(c for c in cells if c.setting == "centralized")
    return store, fed, cen, dataclasses.replace(fed, seed=fed.seed + 1), functools.partial(_finished, store)


def test_the_plan_estimates_from_runs_finished_on_this_cpu(tmp_path, monkeypatch, fedlab_data_dir):
    monkeypatch.setenv("FEDLAB_DATA_DIR", str(fedlab_data_dir))
    store, fed, cen, other_seed, finish = _timing_case(tmp_path)
    finish(fed, 100.0, "CPU-A")
    plan = plan_grid([fed, other_seed, cen], store=store, signature="CPU-A")
    assert plan.reuse == [fed] and plan.train == [other_seed, cen]
    assert plan.source[other_seed.hash()] == "measured" and plan.seconds[other_seed.hash()] == 100.0
    assert plan.source[cen.hash()] == "calibrated"
    raw = plan_grid([fed, other_seed, cen], store=store, signature="CPU-B")  # finished on another CPU: arithmetic
    assert {raw.source[c.hash()] for c in raw.train} == {"flops"} and raw.calibration is None
    ratio, n = plan.calibration
    assert n == 1 and ratio == pytest.approx(100.0 / estimate_seconds(fed, plan.peak_gflops["fp32"]))
    assert plan.seconds[cen.hash()] == pytest.approx(ratio * estimate_seconds(cen, plan.peak_gflops["fp32"]))
    assert "1 from the median wall time of finished runs" in plan.describe()
    # the centralized run is timed by the federated one's ratio: no centralized run has finished, and the plan says so
    assert plan.calibrated_by == {cen.hash(): "all"}
    assert "ratio of runs finished on this CPU (1 by all; the median over all 1 is" in plan.describe()
    # a command that runs part of a profile (fedlab aggregation, curves): the rest of it times the part
    alone = plan_grid([other_seed, cen], store=store, signature="CPU-A")
    assert {alone.source[c.hash()] for c in alone.train} == {"flops"}
    part = plan_grid([other_seed, cen], store=store, signature="CPU-A", timed_by=[fed, other_seed, cen])
    assert part.reuse == [] and part.train == [other_seed, cen], "the runs that only time it are not planned"
    assert part.source == plan.source and part.seconds[other_seed.hash()] == 100.0  # as if all were planned
    assert part.calibration[1] == 1
    finish(fed, 100.0, "CPU-A", shared=True)  # measured while something else used the CPU: not evidence
    shared = plan_grid([fed, other_seed, cen], store=store, signature="CPU-A")
    assert {shared.source[c.hash()] for c in shared.train} == {"flops"}


def test_a_dataset_first_run_on_this_cpu_is_timed_by_another_cpu(tmp_path, monkeypatch, fedlab_data_dir):
    """2026-12-07: the first PubMedQA curve on a new CPU was estimated from that CPU's MedQA and MedMCQA curves
    at under an hour and would have taken ~100 min; the first CPU had measured what PubMedQA costs."""
    monkeypatch.setenv("FEDLAB_DATA_DIR", str(fedlab_data_dir))
    store, fed, cen, fed_other_seed, finish = _timing_case(tmp_path)
    finish(fed, 100.0, "CPU-A")
    finish(cen, 40.0, "CPU-A")
    finish(fed_other_seed, 200.0, "CPU-B")  # the same federated work takes twice as long on CPU-B
    plan = plan_grid([cen], store=store, signature="CPU-B", force=True, timed_by=[fed, fed_other_seed])
    assert plan.source[cen.hash()] == "transferred"
    assert plan.seconds[cen.hash()] == pytest.approx(80.0)  # CPU-A's 40 s, at CPU-B's speed
    assert "1 from the FLOP estimate x the measured/estimated ratio of its dataset and setting on another CPU" in (
        plan.describe()
    )
    finish(cen, 40.0, "CPU-A", shared=True)  # measured while something else used the CPU: not evidence
    shared = plan_grid([cen], store=store, signature="CPU-B", force=True, timed_by=[fed, fed_other_seed])
    assert shared.source[cen.hash()] == "calibrated"
    finish(cen, 40.0, "CPU-A")
    cen_here = dataclasses.replace(cen, seed=cen.seed + 1)
    finish(cen_here, 90.0, "CPU-B")  # this CPU has run the dataset and setting: its own time, not CPU-A's
    again = plan_grid([cen], store=store, signature="CPU-B", force=True, timed_by=[fed, fed_other_seed, cen_here])
    assert again.source[cen.hash()] == "measured" and again.seconds[cen.hash()] == 90.0
    cen_longer = dataclasses.replace(
        cen, steps=cen.centralized_steps * 2
    ).validate()  # same dataset and setting, another shape
    longer = plan_grid([cen_longer], store=store, signature="CPU-B", timed_by=[fed, fed_other_seed, cen_here])
    assert longer.source[cen_longer.hash()] == "calibrated"
    assert longer.calibrated_by[cen_longer.hash()] == "dataset and setting"
    assert "(1 by the runs of the same dataset and setting; the median over all 2 is" in longer.describe()


def test_the_estimate_counts_the_rows_a_run_scores_as_it_goes(monkeypatch, fedlab_data_dir):
    """select=validation scores the clients' validation rows every eval_every rounds and the held-out set once;
    without it a federated run scores the held-out set every round (2026-12-06: notebook 07's last-round runs
    took ~190 s a round for it, and were estimated as if they scored it once)."""
    monkeypatch.setenv("FEDLAB_DATA_DIR", str(fedlab_data_dir))
    fed = next(c for c in load_profile("smoke").cells() if c.dataset == "fpb" and c.setting == "federated")
    fed = dataclasses.replace(fed, rounds=8, max_eval=None, client_val_fraction=0.15, select=None).validate()
    chosen = dataclasses.replace(fed, select="validation", eval_every=4).validate()
    data = RunData(chosen)
    own = sum(len(data.client_validation_rows(p)) for p in range(chosen.clients))
    every_round, checked = estimate_seconds(fed, 100.0), estimate_seconds(chosen, 100.0)
    twice_as_often = estimate_seconds(dataclasses.replace(chosen, eval_every=2).validate(), 100.0)
    assert every_round > twice_as_often > checked
    # each scored row costs the same: 8 held-out passes instead of 1 and 2 checks of the own rows, against 2 more checks
    rows = len(data.eval_rows)
    assert (every_round - checked) / (twice_as_often - checked) == pytest.approx((7 * rows - 2 * own) / (2 * own))
    centralized = dataclasses.replace(chosen, setting="centralized", steps=48, eval_every=16).validate()
    assert estimate_seconds(centralized, 100.0) < estimate_seconds(dataclasses.replace(centralized, select=None), 100.0)
    last = dataclasses.replace(chosen, select="last").validate()  # the same scoring, another checkpoint kept
    assert estimate_seconds(last, 100.0) == checked and shape(last) == shape(chosen) != shape(fed)
    # FedSA-LoRA (personalised): no held-out score per round, but each client's own model scores it at the end
    personal = dataclasses.replace(last, strategy="fedsa-lora").validate()
    extra = (fed.clients - 1) * rows
    assert (estimate_seconds(personal, 100.0) - checked) / (twice_as_often - checked) == pytest.approx(
        extra / (2 * own)
    )
    assert shape(personal) != shape(last)
    at_the_end = dataclasses.replace(fed, strategy="fedsa-lora").validate()  # select null
    assert (every_round - estimate_seconds(at_the_end, 100.0)) / (twice_as_often - checked) == pytest.approx(
        (fed.rounds - fed.clients) * rows / (2 * own)
    )
