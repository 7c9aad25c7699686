"""What a profile's grid will do before it does it: which runs are reused, which are trained, how long.

The estimate is arithmetic, not a promise: training needs about ``4 N`` FLOPs per token (forward
and activation gradients of the frozen body, ``N`` its parameters), evaluation ``2 N`` per scored
token, at the fraction :data:`ASSUMED_MFU` of this machine's measured matmul peak in the run's
dtype (a CPU without native bf16 runs bf16 roughly 100x slower, and the estimate says so).

Where runs of the grid have already finished on this CPU (same :func:`cpu_signature`, not flagged as
sharing the CPU), their measured wall times replace the arithmetic: a run to be trained takes the
median wall time of finished runs of the same backbone, dataset, setting and method; any other run
the FLOP estimate scaled by the median measured/estimated ratio of the finished runs of the same
dataset and setting (else of the same setting, else of all). Where no run of the dataset and setting has
finished on this CPU but some have on another, that CPU's measured/estimated ratio for them is used instead,
scaled by how the two CPUs compare on the datasets and settings both have run ("transferred"): the FLOP
arithmetic misses what a dataset's prompts cost beyond their mean length (2026-12-07: a PubMedQA curve, the first
on a new CPU, was estimated from MedQA's and MedMCQA's at under an hour and would have taken ~100 min, where
PubMedQA on the first CPU had taken twice MedQA's time). Each estimate says which of the four it is.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from fedlab.core.flops import body_parameters, matmul_peak_gflops
from fedlab.core.models import cpu_supports_bf16, resolve, resolve_device
from fedlab.core.prompts import user_text
from fedlab.errors import ConfigError

from .config import PERSONALISED_STRATEGIES, RunConfig
from .curves import CurvePending
from .profiles import Profile
from .provenance import cpu_signature, measured_on_shared_cpu
from .resources import placement
from .rundata import RunData
from .store import ResultStore, RunResult

#: the share of the matmul peak a training or evaluation step reaches (bench/results/train.json)
ASSUMED_MFU = 0.5
#: tokens of chat template, instruction and answer around each input text
TEMPLATE_TOKENS = 40
#: characters per token of English text with these tokenizers (rough)
CHARS_PER_TOKEN = 4.0
#: whose measured/estimated ratio a "calibrated" estimate takes, first found first (Plan.calibrated_by)
CALIBRATION_LEVELS = ("dataset and setting", "setting", "all")
#: how much slower bf16 runs than fp32 on a CPU without native bf16 instructions (measured here)
BF16_EMULATION_SLOWDOWN = 100.0


@dataclass
class Plan:
    reuse: list[RunConfig] = field(default_factory=list)
    train: list[RunConfig] = field(default_factory=list)
    seconds: dict[str, float | None] = field(default_factory=dict)  # config hash -> estimate
    #: config hash -> "measured" / "calibrated" / "transferred" / "flops"
    source: dict[str, str] = field(default_factory=dict)
    #: config hash of a "calibrated" estimate -> whose ratio it took: the finished runs of the same "dataset and
    #: setting", else of the same "setting", else "all" finished runs
    calibrated_by: dict[str, str] = field(default_factory=dict)
    peak_gflops: dict[str, float] = field(default_factory=dict)
    #: median measured/estimated wall time of the runs finished on this CPU, and how many there were
    calibration: tuple[float, int] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def total_seconds(self) -> float | None:
        values = [self.seconds.get(c.hash()) for c in self.train]
        return None if any(v is None for v in values) else float(sum(values))

    def ends_after(self, cfg: RunConfig, deadline: datetime, now: datetime | None = None) -> str | None:
        """Why ``cfg``, started now, is not expected to finish by ``deadline``; None when it is (a reused run
        always is). A run without an estimate does not fit: nobody can say when it would end."""
        key = cfg.resolved().hash()
        if key not in self.seconds:
            return None
        now = now or datetime.now()
        seconds = self.seconds[key]
        if seconds is None:
            return f"its time cannot be estimated on this machine, so it may not end by {deadline:%Y-%m-%d %H:%M}"
        end = now + timedelta(seconds=seconds)
        if end <= deadline:
            return None
        return (
            f"its estimated {seconds / 60:.0f} min ({self.source[key]}) would end at {end:%H:%M}, after the "
            f"deadline {deadline:%Y-%m-%d %H:%M}"
        )

    def describe(self) -> str:
        lines = [f"{len(self.reuse)} finished runs are reused (same config hash), {len(self.train)} will be trained."]
        total = self.total_seconds
        if self.train:
            when = (
                f"about {total / 60:.0f} min"
                if total is not None
                else "unknown (a backbone that is not on this machine)"
            )
            lines.append(
                f"Estimated training and evaluation time on this machine: {when} "
                f"(matmul peak {', '.join(f'{k} {v:.0f}' for k, v in self.peak_gflops.items())} GFLOP/s, "
                f"assumed MFU {ASSUMED_MFU})."
            )
            counts = {
                k: sum(self.source.get(c.hash()) == k for c in self.train)
                for k in ("measured", "calibrated", "transferred", "flops")
            }
            parts = []
            if counts["measured"]:
                parts.append(
                    f"{counts['measured']} from the median wall time of finished runs of the same backbone, "
                    "dataset, setting and method on this CPU"
                )
            if counts["calibrated"]:
                ratio, n = self.calibration
                by = Counter(self.calibrated_by[c.hash()] for c in self.train if c.hash() in self.calibrated_by)
                levels = ", ".join(
                    f"{by[level]} by " + ("all" if level == "all" else f"the runs of the same {level}")
                    for level in CALIBRATION_LEVELS
                    if by[level]
                )
                parts.append(
                    f"{counts['calibrated']} from the FLOP estimate x the median measured/estimated ratio of runs "
                    f"finished on this CPU ({levels}; the median over all {n} is {ratio:.2f})"
                )
            if counts["transferred"]:
                parts.append(
                    f"{counts['transferred']} from the FLOP estimate x the measured/estimated ratio of its dataset and "
                    "setting on another CPU, scaled by how this CPU compares with it on what both have run"
                )
            if counts["flops"]:
                parts.append(
                    f"{counts['flops']} from the FLOP estimate alone (no run of the grid has finished on this CPU)"
                )
            lines.append("Estimates: " + "; ".join(parts) + ".")
            for cfg in self.train:
                s = self.seconds.get(cfg.hash())
                lines.append(
                    f"  train {cfg.setting:11s} {cfg.dataset:8s} {cfg.method if cfg.setting != 'zeroshot' else '-':5s} "
                    f"{cfg.model} seed {cfg.seed}: ~{s / 60:.1f} min ({self.source[cfg.hash()]})"
                    if s is not None
                    else f"  train {cfg.setting} {cfg.dataset} {cfg.method}: time unknown"
                )
        lines += self.notes
        return "\n".join(lines)


@functools.cache
def _body_parameters(model: str) -> int | None:
    """Parameters of the backbone's transformer body (:func:`fedlab.core.flops.body_parameters`), counted on
    the model built from its config on the meta device: no weights are loaded or allocated."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(resolve(model).path)
    except (OSError, ValueError):
        return None
    with torch.device("meta"):
        return body_parameters(AutoModelForCausalLM.from_config(config))


def _tokens_per_example(data: RunData, rows: int = 200) -> float:
    sample = data.splits.train[:rows] or data.eval_rows[:rows]
    chars = sum(len(user_text(r)) for r in sample) / max(1, len(sample))
    return min(chars / CHARS_PER_TOKEN + TEMPLATE_TOKENS, data.cfg.max_length)


def estimate_seconds(cfg: RunConfig, peak_gflops: float) -> float | None:
    """Rough wall time of one run on this machine (see the module docstring)."""
    n_body = _body_parameters(cfg.model)
    if n_body is None:
        return None
    data = RunData(cfg)
    tokens = _tokens_per_example(data)
    rate = ASSUMED_MFU * peak_gflops * 1e9
    options = len(data.eval_rows[0].options) if data.eval_rows else 4

    def eval_flops(rows: int) -> float:  # one forward pass per row scores all its options
        return rows * (tokens + options) * 2 * n_body

    if cfg.setting == "zeroshot":
        return eval_flops(len(data.eval_rows)) / rate + 5
    train_tokens = cfg.federated_steps * cfg.examples_per_step * tokens
    # select=validation or last scores the validation rows every eval_every steps (centralized) or rounds
    # (federated) and the held-out set once; otherwise a federated or centralized run scores the held-out set
    # every round. A personalised run (FedSA-LoRA) scores it at the end only, once with each client's model.
    personalised = _personalised(cfg)
    held_out = len(data.eval_rows) * (cfg.clients if personalised else 1)
    if cfg.validates and cfg.setting == "centralized":
        evals = held_out + -(-cfg.centralized_steps // (cfg.eval_every or 1)) * len(data.validation_rows)
    elif cfg.validates and cfg.setting == "federated":
        checks = -(-cfg.rounds // (cfg.eval_every or 1))
        own = sum(len(data.client_validation_rows(p)) for p in range(cfg.clients))
        evals = held_out + checks * own
    else:
        evals = held_out if personalised else cfg.rounds * held_out
    if cfg.setting == "isolated":
        evals = cfg.clients * (len(data.eval_rows) + cfg.max_client_eval)
    elif cfg.setting == "federated":
        evals += cfg.clients * cfg.max_client_eval
    return (train_tokens * 4 * n_body + eval_flops(evals)) / rate + 15


def _personalised(cfg: RunConfig) -> bool:
    """Whether a federated run ends with one model per client (FedSA-LoRA), each scoring the held-out set."""
    return cfg.setting == "federated" and cfg.strategy in PERSONALISED_STRATEGIES


def measured_wall_seconds(result: RunResult) -> float | None:
    """A finished run's wall time: training runs record ``wall_s``, zero-shot runs loading and scoring."""
    t = result.timings
    if t.wall_s is not None:
        return float(t.wall_s)
    if t.eval_s is not None:
        return float(t.eval_s) + float(t.model_load_s or 0.0)
    return None


def _shape(cfg: RunConfig) -> tuple:
    """What a finished run must share with a planned one for its wall time to stand for it: the cell and
    the budget (a 480-step curve does not time a 48-step centralized run of the same cell)."""
    if cfg.setting == "zeroshot":
        return cfg.model, cfg.dataset, cfg.setting, None, cfg.dtype, cfg.max_eval
    return (
        cfg.model,
        cfg.dataset,
        cfg.setting,
        cfg.method,
        cfg.dtype,
        cfg.max_eval,
        cfg.centralized_steps,
        cfg.rounds,
        cfg.local_steps,
        cfg.clients,
        cfg.eval_every,
        cfg.validates,  # select=last does select=validation's work (it keeps another checkpoint)
        _personalised(cfg),  # FedSA-LoRA scores the held-out set once per client
    )


def plan_grid(
    configs: list[RunConfig],
    *,
    force: bool = False,
    store: ResultStore | None = None,
    signature: str | None = None,
    timed_by: list[RunConfig] = (),
) -> Plan:
    """Which of ``configs`` are reused and which trained, and how long the training will take
    (``signature``: this machine's :func:`cpu_signature`, whose finished runs calibrate the estimate;
    ``timed_by``: more runs, e.g. the whole profile's when a command runs part of it, whose finished ones time
    and calibrate the estimate too but are not planned)."""
    store = store or ResultStore()
    signature = signature or cpu_signature()
    out = Plan()
    finished: list[tuple[RunConfig, float]] = []  # runs of this grid measured on this CPU, alone on it
    elsewhere: list[tuple[str, RunConfig, float]] = []  # (CPU, run, wall) measured alone on another CPU

    def measure(cfg: RunConfig, found: RunResult | None) -> None:
        if found is None or not signature or not found.ok:
            return
        wall, cpu = measured_wall_seconds(found), found.manifest.cpu_signature
        if wall is None or not cpu or measured_on_shared_cpu(found.timings) is not False:
            return
        if cpu == signature:
            finished.append((cfg, wall))
        else:
            elsewhere.append((cpu, cfg, wall))

    unreadable = []
    for cfg in configs:
        cfg = cfg.resolved()
        found = store.lookup(cfg)
        if found is None and (why := store.unreadable(cfg)) is not None:
            unreadable.append(f"{store.path(cfg)} ({why})")
        (out.train if force or found is None else out.reuse).append(cfg)
        measure(cfg, found)
    planned = {c.hash() for c in out.train + out.reuse}
    for cfg in (c.resolved() for c in timed_by):
        if cfg.hash() not in planned:
            measure(cfg, store.lookup(cfg))
    if unreadable:
        out.notes.append(
            f"{len(unreadable)} result file(s) exist but cannot be read; they count as not run, and the "
            f"run that replaces each moves it aside first (*.unreadable-N): " + "; ".join(unreadable)
        )
    if not out.train:
        return out
    device = resolve_device()
    dtypes = sorted({c.dtype for c in out.train})
    for dtype in dtypes:
        if dtype == "bf16" and device == "cpu" and not cpu_supports_bf16():
            out.peak_gflops["bf16 (emulated)"] = (
                matmul_peak_gflops("fp32", seconds=1.0, device=device) / BF16_EMULATION_SLOWDOWN
            )
            out.notes.append(
                "Warning: these runs are bf16 but this CPU has no native bf16 instructions, so they run "
                f"about {BF16_EMULATION_SLOWDOWN:.0f}x slower than fp32 would; consider --dtype fp32 "
                "(a different config, kept apart by its hash)."
            )
        else:
            out.peak_gflops[dtype] = matmul_peak_gflops(dtype, seconds=1.0, device=device)
    estimates: dict[str, float | None] = {}  # the arithmetic does not depend on the seed: once per shape

    def flops_estimate(cfg: RunConfig) -> float | None:
        key = dataclasses.replace(cfg, seed=0).hash()
        if key not in estimates:
            peak = out.peak_gflops.get(cfg.dtype) or out.peak_gflops.get(f"{cfg.dtype} (emulated)")
            estimates[key] = estimate_seconds(cfg, peak)
        return estimates[key]

    by_shape: dict[tuple, list[float]] = {}
    ratios: dict[tuple, list[float]] = {}  # measured/estimated, by (dataset, setting), (setting,) and ()
    for cfg, wall in finished:
        by_shape.setdefault(_shape(cfg), []).append(wall)
        if cfg.dtype in out.peak_gflops and (est := flops_estimate(cfg)):
            for key in ((cfg.dataset, cfg.setting), (cfg.setting,), ()):
                ratios.setdefault(key, []).append(wall / est)
    if () in ratios:
        out.calibration = (float(statistics.median(ratios[()])), len(ratios[()]))

    @functools.cache
    def other_cpus() -> dict[str, dict[tuple, list[float]]]:  # CPU -> (dataset, setting) -> measured/estimated
        found: dict[str, dict[tuple, list[float]]] = {}
        for cpu, cfg, wall in elsewhere:
            if cfg.dtype in out.peak_gflops and (est := flops_estimate(cfg)):
                found.setdefault(cpu, {}).setdefault((cfg.dataset, cfg.setting), []).append(wall / est)
        return found

    def transferred(cfg: RunConfig) -> float | None:
        """The measured/estimated ratio of ``cfg``'s dataset and setting on other CPUs, each scaled by the median
        ratio of this CPU's to that CPU's over the datasets and settings both have run (median over such CPUs)."""
        here = {k: statistics.median(v) for k, v in ratios.items() if len(k) == 2}
        found = []
        for theirs in other_cpus().values():
            shared = [k for k in theirs if k in here]
            if (cfg.dataset, cfg.setting) in theirs and shared:
                speed = statistics.median(here[k] / statistics.median(theirs[k]) for k in shared)
                found.append(statistics.median(theirs[(cfg.dataset, cfg.setting)]) * speed)
        return float(statistics.median(found)) if found else None

    for cfg in out.train:
        key = cfg.hash()
        if walls := by_shape.get(_shape(cfg)):
            out.seconds[key], out.source[key] = float(statistics.median(walls)), "measured"
            continue
        est = flops_estimate(cfg)
        if est is not None and (cfg.dataset, cfg.setting) not in ratios and (ratio := transferred(cfg)):
            out.seconds[key], out.source[key] = est * ratio, "transferred"
            continue
        levels = zip(((cfg.dataset, cfg.setting), (cfg.setting,), ()), CALIBRATION_LEVELS, strict=True)
        nearest = next(((ratios[k], level) for k, level in levels if k in ratios), None)
        if est is not None and nearest:
            out.seconds[key], out.source[key] = est * float(statistics.median(nearest[0])), "calibrated"
            out.calibrated_by[key] = nearest[1]
        else:
            out.seconds[key], out.source[key] = est, "flops"
    return out


def parse_deadline(text: str, now: datetime | None = None) -> datetime:
    """When ``fedlab grid --deadline`` must be done: ``HH:MM`` (its next occurrence, local time) or a duration
    from now (``90m``, ``2.5h``)."""
    now = now or datetime.now()
    value = text.strip().lower()
    if clock := re.fullmatch(r"(\d{1,2}):(\d{2})", value):
        hour, minute = int(clock[1]), int(clock[2])
        if hour < 24 and minute < 60:
            at = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
            return at if at > now else at + timedelta(days=1)
    elif span := re.fullmatch(r"(\d+(?:\.\d+)?)\s*(m|min|h)", value):
        return now + timedelta(minutes=float(span[1]) * (60 if span[2] == "h" else 1))
    raise ConfigError(
        f"--deadline {text!r} is neither a time of day (HH:MM, 24 h) nor a duration from now (minutes or hours). "
        "Fix: e.g. --deadline 07:40 or --deadline 90m or --deadline 2.5h."
    )


def profile_configs(profile: Profile) -> list[RunConfig]:
    """Every run of a profile's grid: the zero-shot floors (the curves' datasets' too), the learning curves
    (profiles with a ``curves:`` block), the training cells whose budget is known, then notebook 07's study (``grid.
    aggregation``), each run once."""
    configs = profile.zeroshots() + profile.curve_zeroshots() + profile.curve_configs() + list(profile.cells())
    try:
        configs += profile.study_configs()
    except CurvePending:
        pass  # its cell's budget waits for the curve: pending_note names that cell
    return list({c.hash(): c for c in configs}.values())


def placement_note(profile: Profile, configs: list[RunConfig]) -> str | None:
    """How the federated runs of a plan use this machine: how many clients train at once, and why."""
    import torch

    clients = sorted({c.clients for c in configs if c.setting == "federated"})
    if not clients:
        return None
    where = placement(profile.resources, max(clients), os.cpu_count() or 1, torch.cuda.device_count())
    return "Federated runs: " + where.describe(max(clients)) + "."


def pending_note(profile: Profile) -> str | None:
    """What a plan cannot count yet: the cells whose budget waits for a learning curve, and those whose grid
    waits for its learning-rate sweep at that budget (``curves.sweep``)."""
    pending, unswept = profile.pending_cells(), profile.unswept_cells()

    def runs(keys) -> int:
        return sum(len(profile.seeds_for(*k, s)) for k in keys for s in profile.grid["settings"])

    parts = []
    if pending:
        parts.append(
            f"{len(pending)} (backbone, dataset, method) cells ({runs(pending)} runs) wait for their learning "
            f"curve, which sets their budget; they are not counted above: " + ", ".join("/".join(k) for k in pending)
        )
    if unswept:
        parts.append(
            f"{len(unswept)} (backbone, dataset, method) cells ({runs([k for k, _ in unswept])} runs) wait for their "
            f"learning-rate sweep at their budget (`fedlab sweep-lr --profile {profile.name} --pending`, 3 or more "
            "centralized runs each, not counted above), then for its winner's pin: "
            + ", ".join(f"{'/'.join(k)} ({step})" for k, step in unswept)
        )
    return "; ".join(parts) or None
