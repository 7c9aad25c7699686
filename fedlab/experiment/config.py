"""Run configuration: one frozen dataclass per run, validated, hashed, and named from its content.

The names a config may use are declared here once: the settings of the study, the Flower
strategies with their default parameters, and (imported from where they live) datasets, PEFT
methods, evaluators, partitions and learning-rate schedules.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field

from fedlab.core.evaluate import EVALUATORS
from fedlab.core.models import check_name, resolve_device, resolve_device_kind, resolve_dtype
from fedlab.core.peft_methods import get_method, method_params
from fedlab.core.precision import AUTOCASTS, check_autocast
from fedlab.core.prompts import TRUNCATIONS
from fedlab.core.train import SCHEDULES
from fedlab.data import DATASETS, register_user_data, resolve_source
from fedlab.data.partition import parse_partition
from fedlab.errors import ConfigError, did_you_mean

#: the settings of the study: the zero-shot floor and the three ways to train
SETTINGS = ("zeroshot", "federated", "centralized", "isolated")
TRAINING_SETTINGS = SETTINGS[1:]

#: Flower strategies fedlab runs (``fedlab.fl.strategies`` maps each to its class) and their defaults
STRATEGY_DEFAULTS = {
    "fedavg": {},
    "fedprox": {"proximal_mu": 0.01},
    "fedadam": {"eta": 1e-2, "eta_l": 1e-2, "beta_1": 0.9, "beta_2": 0.99, "tau": 1e-3},
    "fedyogi": {"eta": 1e-2, "eta_l": 1e-2, "beta_1": 0.9, "beta_2": 0.99, "tau": 1e-3},
    "fedavgm": {"server_learning_rate": 1.0, "server_momentum": 0.9},
    # LoRA-aware aggregation (fedlab.core.lora_aggregation's maths), each on Flower's FedAvg
    "ffa-lora": {},
    "fedsa-lora": {},
    "fedex-lora": {},
    # mixed LoRA ranks (fedlab.core.hetero_lora's maths): each client trains and receives its own rank
    "hetlora": {},
    "flexlora": {},
}
STRATEGIES = tuple(STRATEGY_DEFAULTS)
#: the strategies that split a LoRA adapter into its A and B factors, and the one that folds a residual into
#: the base weights (fedlab.fl.strategies holds what each does)
FACTOR_STRATEGIES = ("ffa-lora", "fedsa-lora")
BASE_WEIGHT_STRATEGIES = ("fedex-lora",)
#: the strategies that aggregate LoRA adapters of different ranks (``RunConfig.client_ranks``)
MIXED_RANK_STRATEGIES = ("hetlora", "flexlora")
#: the strategies whose clients end with a model each (no one global model): each scores the held-out set
PERSONALISED_STRATEGIES = ("fedsa-lora",)


def check_strategy(strategy: str, method: str, peft_type: str, quantization: str | None) -> None:
    """Refuse strategy x method combinations that cannot work, with the fix."""
    if strategy in MIXED_RANK_STRATEGIES and peft_type != "LORA":
        raise ConfigError(
            f"--strategy {strategy} aggregates LoRA adapters of different ranks; {method} has no rank. "
            f"Fix: use --method lora or qlora, or --strategy fedavg for {method}."
        )
    if strategy in FACTOR_STRATEGIES and peft_type != "LORA":
        raise ConfigError(
            f"--strategy {strategy} splits a LoRA adapter into A and B; {method} has no such factors. "
            f"Fix: use --method lora or qlora, or --strategy fedavg for {method}."
        )
    if strategy in BASE_WEIGHT_STRATEGIES and quantization is not None:
        raise ConfigError(
            f"--strategy {strategy} folds a residual into the base weights, which {method}'s "
            f"{quantization} base cannot hold exactly. Fix: use --method lora or ia3 with {strategy}, or "
            f"--strategy ffa-lora for {method}."
        )


#: what a run can be evaluated on
EVAL_ON = ("eval", "validation")
#: differential privacy (Flower's fixed-clipping wrappers): the keys of ``RunConfig.dp`` and their defaults
DP_DEFAULTS = {"noise": 1.0, "clip": 1.0, "side": "server", "delta": 1e-5}
DP_SIDES = ("server", "client")
#: secure aggregation (Flower's SecAgg+): the keys of ``RunConfig.secagg`` and their defaults. num_shares: the
#: share of the sampled clients each client's secrets are shared with (a float in (0, 1]) or their number (an
#: int > 2); reconstruction_threshold: the shares needed to reconstruct a secret (an int >= 2, or a float
#: share of num_shares), so a round survives as long as every client keeps that many neighbours; the clients
#: quantise their weighted adapters to quantization_range levels over [-clipping_range, clipping_range];
#: max_weight: the example count of weight 1 (None: the largest client's)
SECAGG_DEFAULTS = {
    "num_shares": 1.0,
    "reconstruction_threshold": 2,
    "clipping_range": 8.0,
    "quantization_range": 2**22,
    "modulus_range": 2**32,
    "max_weight": None,
}
#: why a strategy cannot run under SecAgg+ (the server sees only the clients' weighted mean)
SECAGG_REFUSED = {
    "fedex-lora": "its residual is computed from every client's own A and B",
    "fedsa-lora": "it keeps each client's B and scores per-client models the server must tell apart",
    "ffa-lora": "use fedavg: SecAgg+ already averages what FFA-LoRA sends",
    "hetlora": "it sends each client an adapter of its own rank, and SecAgg+ sums vectors of one shape",
    "flexlora": "it sends each client an adapter of its own rank, and SecAgg+ sums vectors of one shape",
    "fedprox": "use fedavg",
    "fedadam": "its server optimizer would need the mean only and is not wired to it",
    "fedyogi": "its server optimizer would need the mean only and is not wired to it",
    "fedavgm": "its server momentum would need the mean only and is not wired to it",
}

#: the fields a zero-shot result depends on (training fields do not change it)
ZEROSHOT_FIELDS = (
    "dataset",
    "setting",
    "model",
    "dtype",
    "source",
    "seed",
    "eval_fraction",
    "max_eval",
    "evaluator",
    "max_length",
    "eval_batch_size",
    "n_boot",
    "system_prompt",
    "split_seed",
    "truncation",
    "val_size",
    "eval_on",
    "data",
    "autocast",
    "device_kind",
)
#: optional fields left out of a config's dict (and hash) while they hold their default, so that
#: results made before a field existed keep their hash
OPTIONAL_DEFAULTS = {
    "data": None,
    "dp": None,
    "autocast": None,
    "steps": None,
    "eval_every": None,
    "select": None,
    "client_val_fraction": 0.0,
    "device_kind": "cpu",
    "client_ranks": None,
    "secagg": None,
}
#: how a trained setting picks the checkpoint it is compared at: None = its last one, with the held-out set
#: scored at every checkpoint; "validation" = the best on its own validation data (centralized: the pooled
#: validation split; federated: federated evaluation on the clients' validation rows; isolated: each
#: client's own validation rows), after which the held-out set is scored once; "last" = its last one, with
#: the same validation learning curve as "validation" and the held-out set scored once (for strategies
#: that cannot go back to a best round: FedSA-LoRA, FedEx-LoRA)
SELECTS = (None, "validation", "last")
#: the selects that score the run's own validation data at each checkpoint (not the held-out set)
VALIDATING_SELECTS = ("validation", "last")


def aggregation_label(config: dict) -> str:
    """How a federated run aggregates, from its config dict: the strategy, with server-side DP's noise, the
    clients' LoRA ranks and SecAgg+ where set (notebook 07's runs apart)."""
    label = config.get("strategy", "fedavg")
    if config.get("dp"):
        label += f" + DP noise {config['dp']['noise']:g}"
    if config.get("client_ranks"):
        label += f" (ranks {', '.join(map(str, config['client_ranks']))})"
    if config.get("secagg") is not None:
        label += " + SecAgg+"
    return label


def config_hash(config: dict) -> str:
    """Stable hash of a config dict (sorted keys, no whitespace)."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def strategy_params(name: str, overrides: dict | None = None) -> dict:
    """A strategy's default parameters updated with ``overrides`` (unknown keys are an error)."""
    if name not in STRATEGY_DEFAULTS:
        raise ConfigError(f"Unknown strategy {name!r}. {did_you_mean(name, STRATEGIES)}")
    params = dict(STRATEGY_DEFAULTS[name])
    unknown = sorted(set(overrides or {}) - set(params))
    if unknown:
        raise ConfigError(f"{unknown} are not parameters of {name}. Valid: {sorted(params)}.")
    params.update(overrides or {})
    return params


@dataclass(frozen=True)
class Faults:
    """Fault injection, for reliability tests and demonstrations. Part of the config (and its hash),
    because a run with failing clients has a different result."""

    fail_clients: tuple = ()  # partition ids whose training raises in every round

    @classmethod
    def from_dict(cls, data: dict | None) -> Faults:
        data = dict(data or {})
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(f"Unknown fault setting(s) {unknown}; the only one is fail_clients.")
        return cls(fail_clients=tuple(int(c) for c in data.get("fail_clients", ())))

    def to_dict(self) -> dict:
        return {"fail_clients": list(self.fail_clients)}


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run's result (and nothing that does not).

    ``dtype`` and ``source`` may be given as ``auto``; :meth:`resolved` pins them to what this
    machine will actually use, and the hash is taken over the resolved config, so a bf16 result is
    never served to an fp32 request.
    """

    dataset: str
    setting: str = "zeroshot"
    #: a user's own file (``fedlab.data.user.UserData`` as a dict: path, SHA-256, columns); then
    #: ``dataset`` is its ``user-<hash>`` name. The path is not part of the hash, the content is.
    data: dict | None = None
    model: str = "smollm2-135m"
    dtype: str = "auto"
    #: mixed precision: ``bf16`` runs forward and backward under torch.autocast with the weights in
    #: ``dtype`` (fp32 master weights); None = off. Refused on a CPU without native bf16 (see core.precision)
    autocast: str | None = None
    #: what the run trains on, set from the machine by :meth:`resolved`: ``cpu`` or ``gpu-<name>`` (e.g.
    #: ``gpu-nvidia-h200``). Part of the hash on a GPU only, so CPU and GPU results of one setting live
    #: side by side (different numbers, different files) and a rerun on one never replaces the other's
    device_kind: str = "cpu"
    source: str = "auto"
    #: seeds the partition draw, adapter initialisation, data order, client sampling and bootstrap;
    #: a profile's ``grid.seeds`` repeats each training cell over several of these
    seed: int = 0
    #: seeds the train / eval split only, so that every seed of a profile is evaluated on the same rows
    split_seed: int = 0
    eval_fraction: float = 0.25
    #: rows carved (seeded by split_seed) from the training pool as a validation split: never trained
    #: on, never the eval set; used to choose the learning rate (``fedlab sweep-lr``)
    val_size: int = 100
    #: what the run's held-out metrics are measured on: the eval split, or the validation split (a sweep)
    eval_on: str = "eval"
    max_eval: int | None = None  # evaluate on the first N rows of the fixed eval split (None = all)
    evaluator: str = "loglik"
    max_length: int = 512
    eval_batch_size: int = 8
    n_boot: int = 1000
    #: the chat template's system turn, the same in training and evaluation: "" = an empty one
    #: (no default persona text in every example), None = the template's own default
    system_prompt: str | None = ""
    #: how an input longer than max_length is shortened (see fedlab.core.prompts.TRUNCATIONS)
    truncation: str = "middle"
    # --- training (federated, centralized, isolated)
    method: str = "lora"
    method_params: dict = field(default_factory=dict)
    clients: int = 4
    rounds: int = 3
    partition: str = "dirichlet:0.5"
    strategy: str = "fedavg"
    strategy_params: dict = field(default_factory=dict)
    fraction: float = 1.0  # share of clients sampled per round
    min_clients: int = 1  # a round needs at least this many successful client replies
    local_steps: int = 5
    batch_size: int = 4
    grad_accum: int = 1
    lr: float = 1e-3
    warmup_steps: int = 0
    schedule: str = "cosine"
    max_client_eval: int = 64  # rows of each client's own test rows for the final per-client evaluation
    #: share of each client's partition held out as its own test rows (never trained on); 0 = none, in
    #: which case "own data" is a sample of the client's training rows (results before schema 4)
    client_test_fraction: float = 0.2
    energy_country: str = "USA"
    group_by_length: bool = True  # batch examples of similar length together (less padding)
    #: isolated clients keep the adapter of their best checkpoint on the validation split (checked every
    #: local_steps steps); needs val_size > 0
    early_stopping: bool = True
    #: centralized optimizer steps (None = the federation's total, ``federated_steps``)
    steps: int | None = None
    #: checkpoint spacing: centralized every N optimizer steps, federated every N rounds, an isolated
    #: client every N of its steps (None = the default: centralized once per federated round's worth of
    #: steps, federated every round, isolated every local_steps)
    eval_every: int | None = None
    #: checkpoint selection (see SELECTS)
    select: str | None = None
    #: share of each client's training rows held out as its own validation rows (never trained on):
    #: what federated evaluation and an isolated client's early stopping score under select=validation
    client_val_fraction: float = 0.0
    faults: Faults = field(default_factory=Faults)
    #: differential privacy on the clients' adapter updates (None = off): Gaussian noise multiplier,
    #: fixed clipping norm, where clipping happens (Flower's server- or client-side wrapper) and the
    #: delta at which epsilon is reported per round (Flower's RDP accountant). See DP_DEFAULTS.
    dp: dict | None = None
    #: each client's LoRA rank, one per client (None = every client at the method's ``r``): a member with
    #: less compute trains a smaller adapter. Needs a mixed-rank strategy (MIXED_RANK_STRATEGIES); the
    #: scaling ``lora_alpha / r`` of the method is kept at every rank (see :meth:`client_method_params`)
    client_ranks: tuple[int, ...] | None = None
    #: secure aggregation with Flower's SecAgg+ (None = off): the server sees only the weighted mean of
    #: the clients' masked, quantised adapters. See SECAGG_DEFAULTS and :meth:`secagg_settings`.
    secagg: dict | None = None

    def validate(self) -> RunConfig:
        if self.data is not None:
            name = register_user_data(self.data)
            if name != self.dataset:
                raise ConfigError(
                    f"dataset {self.dataset!r} does not match its data file (registered as {name!r}). "
                    f"Fix: let fedlab name it (fedlab run --data PATH ...)."
                )
        if self.dataset not in DATASETS:
            raise ConfigError(f"Unknown dataset {self.dataset!r}. {did_you_mean(self.dataset, DATASETS)}")
        if self.setting not in SETTINGS:
            raise ConfigError(f"Unknown setting {self.setting!r}. {did_you_mean(self.setting, SETTINGS)}")
        if self.evaluator not in EVALUATORS:
            raise ConfigError(f"Unknown evaluator {self.evaluator!r}. {did_you_mean(self.evaluator, EVALUATORS)}")
        if not 0 < self.eval_fraction < 1:
            raise ConfigError(f"eval_fraction must be in (0, 1), got {self.eval_fraction}. Fix: e.g. 0.25.")
        if self.max_eval is not None and self.max_eval <= 0:
            raise ConfigError(f"max_eval must be positive or None, got {self.max_eval}.")
        for name in ("max_length", "eval_batch_size"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}.")
        if self.truncation not in TRUNCATIONS:
            raise ConfigError(f"Unknown truncation {self.truncation!r}. {did_you_mean(self.truncation, TRUNCATIONS)}")
        if self.eval_on not in EVAL_ON:
            raise ConfigError(f"eval_on must be one of {EVAL_ON}, got {self.eval_on!r}.")
        if self.val_size < 0 or (self.eval_on == "validation" and self.val_size == 0):
            raise ConfigError(
                f"val_size must be >= 0 (and > 0 to evaluate on the validation split), got {self.val_size}."
            )
        if self.autocast is not None and self.autocast not in AUTOCASTS:
            raise ConfigError(f"Unknown autocast {self.autocast!r}; valid: {AUTOCASTS} or none (null).")
        if self.n_boot < 0:
            raise ConfigError(f"n_boot must be >= 0, got {self.n_boot}.")
        if self.setting == "zeroshot":
            return self
        method_params(self.method, self.method_params)
        parse_partition(self.partition)
        strategy_params(self.strategy, self.strategy_params)
        for name in ("clients", "rounds", "local_steps", "batch_size", "grad_accum", "min_clients", "max_client_eval"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(
                    f"{name} must be a positive integer, got {value!r}. Fix: e.g. --{name.replace('_', '-')} 3."
                )
        for name in ("steps", "eval_every"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise ConfigError(f"{name} must be a positive integer or None, got {value!r}.")
        if self.select not in SELECTS:
            raise ConfigError(
                f"select must be one of {SELECTS}, got {self.select!r}. Fix: select=validation, last or none."
            )
        if not 0 <= self.client_val_fraction <= 0.5:
            raise ConfigError(
                f"client_val_fraction must be in [0, 0.5], got {self.client_val_fraction}. Fix: e.g. 0.15."
            )
        if self.validates:
            if self.setting == "centralized" and self.val_size <= 0:
                raise ConfigError(
                    f"select={self.select} for a centralized run needs the pooled validation split. "
                    "Fix: val_size > 0 (e.g. 300)."
                )
            if self.setting in ("federated", "isolated") and self.client_val_fraction <= 0:
                raise ConfigError(
                    f"select={self.select} for a {self.setting} run needs the clients' own validation "
                    f"rows. Fix: client_val_fraction > 0 (e.g. 0.15)."
                )
        if self.select == "validation":
            if self.setting == "federated" and self.strategy in ("fedsa-lora", "fedex-lora"):
                raise ConfigError(
                    f"select=validation goes back to the best round's global adapter; {self.strategy} "
                    f"has none to go back to (fedsa-lora: each client keeps its own B; fedex-lora: the "
                    f"base weights carry every round's residual). Fix: select last (or none) with {self.strategy}."
                )
        if not 0 <= self.client_test_fraction <= 0.5:
            raise ConfigError(
                f"client_test_fraction must be in [0, 0.5], got {self.client_test_fraction}. Fix: e.g. 0.2."
            )
        if not 0 < self.fraction <= 1:
            raise ConfigError(
                f"fraction must be in (0, 1], got {self.fraction}. Fix: e.g. 0.5 samples half the clients."
            )
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}.")
        if self.min_clients > self.clients_per_round:
            raise ConfigError(
                f"min_clients={self.min_clients} exceeds the {self.clients_per_round} clients sampled per "
                f"round. Fix: lower min_clients or raise fraction/clients."
            )
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"Unknown schedule {self.schedule!r}. {did_you_mean(self.schedule, SCHEDULES)}")
        spec = get_method(self.method)
        check_strategy(self.strategy, self.method, spec.peft_type, spec.quantization)
        if self.dp is not None:
            self.dp_settings()
        bad = [c for c in self.faults.fail_clients if not 0 <= int(c) < self.clients]
        if bad:
            raise ConfigError(f"fail_clients {bad} are not client ids 0..{self.clients - 1}.")
        if self.client_ranks is not None:
            self._check_client_ranks()
        if self.secagg is not None:
            self.secagg_settings()
        return self

    def secagg_settings(self) -> dict:
        """The SecAgg+ settings with defaults filled in, validated (ConfigError naming the fix)."""
        unknown = sorted(set(self.secagg or {}) - set(SECAGG_DEFAULTS))
        if unknown:
            raise ConfigError(f"Unknown secagg setting(s) {unknown}; valid: {sorted(SECAGG_DEFAULTS)}.")
        s = dict(SECAGG_DEFAULTS, **(self.secagg or {}))
        if self.setting != "federated":
            raise ConfigError(f"secagg aggregates federated clients' adapters; a {self.setting} run has none.")
        if self.strategy in SECAGG_REFUSED:
            raise ConfigError(
                f"--strategy {self.strategy} cannot run under SecAgg+, where the server sees only the clients' "
                f"weighted mean: {SECAGG_REFUSED[self.strategy]}. Fix: --strategy fedavg with secagg."
            )
        if self.dp is not None:
            raise ConfigError(
                "DP here is Flower's fixed-clipping wrappers, which clip (server side) or weigh each client's "
                "update as the server receives it; under SecAgg+ it receives only their mean. Fix: leave out "
                "either dp or secagg."
            )
        n = self.clients_per_round
        if n < 2:
            raise ConfigError(f"SecAgg+ needs at least 2 clients per round, got {n}. Fix: --clients 3 or more.")
        t, shares = s["reconstruction_threshold"], s["num_shares"]
        if isinstance(t, bool) or not ((isinstance(t, int) and 2 <= t <= n) or (isinstance(t, float) and 0 < t <= 1)):
            raise ConfigError(
                f"secagg reconstruction_threshold must be a number of clients in 2..{n} or a share in (0, 1], "
                f"got {t!r}. Fix: e.g. reconstruction_threshold: 2."
            )
        if isinstance(shares, bool) or not (
            (isinstance(shares, int) and 2 < shares <= n) or (isinstance(shares, float) and 0 < shares <= 1)
        ):
            raise ConfigError(
                f"secagg num_shares must be a share of the sampled clients in (0, 1] or a number of them in "
                f"3..{n}, got {shares!r}. Fix: num_shares: 1.0 (every client)."
            )
        if not isinstance(s["clipping_range"], (int, float)) or not s["clipping_range"] > 0:
            raise ConfigError(f"secagg clipping_range must be > 0, got {s['clipping_range']!r}. Fix: e.g. 8.0.")
        q, m = s["quantization_range"], s["modulus_range"]
        if not isinstance(q, int) or q < 2 or not isinstance(m, int) or m <= q or m & (m - 1):
            raise ConfigError(
                f"secagg needs an integer quantization_range >= 2 and a power-of-two modulus_range above it, "
                f"got {q!r} and {m!r}. Fix: e.g. 4194304 (2**22) and 4294967296 (2**32)."
            )
        if n * q >= m:
            raise ConfigError(
                f"secagg: the sum of {n} clients' values (each below quantization_range {q}) would wrap around "
                f"modulus_range {m}. Fix: a modulus_range above {n * q} (a power of two) or a smaller "
                f"quantization_range."
            )
        if s["max_weight"] is not None and not s["max_weight"] > 0:
            raise ConfigError(f"secagg max_weight must be > 0 or None, got {s['max_weight']!r}.")
        return dict(s, clipping_range=float(s["clipping_range"]))

    def _check_client_ranks(self) -> None:
        ranks = self.client_ranks
        if self.setting != "federated":
            raise ConfigError(
                f"client_ranks sets each federated client's LoRA rank; a {self.setting} run trains one rank. "
                f"Fix: leave client_ranks out for {self.setting} runs (set the rank with method_params r)."
            )
        if len(ranks) != self.clients or any(isinstance(r, bool) or not isinstance(r, int) or r < 1 for r in ranks):
            raise ConfigError(
                f"client_ranks needs one positive integer rank per client ({self.clients} clients), got "
                f"{list(ranks)}. Fix: e.g. --client-ranks {','.join(('4', '8', '16')[i % 3] for i in range(self.clients))}."
            )
        if self.strategy in FACTOR_STRATEGIES:
            raise ConfigError(
                f"--strategy {self.strategy} shares one A of one rank between the clients (ffa-lora: frozen at "
                f"its seeded initialisation; fedsa-lora: averaged), which clients of ranks {sorted(set(ranks))} "
                f"cannot hold. Fix: --strategy {' or '.join(MIXED_RANK_STRATEGIES)} with client_ranks, or leave "
                f"client_ranks out."
            )
        if self.strategy not in MIXED_RANK_STRATEGIES:
            raise ConfigError(
                f"--strategy {self.strategy} averages adapters of one shape and cannot combine clients of "
                f"ranks {sorted(set(ranks))}. Fix: --strategy {' or '.join(MIXED_RANK_STRATEGIES)} with "
                f"client_ranks, or leave client_ranks out."
            )

    def client_method_params(self, client: int | None = None) -> dict:
        """The method parameters a client's adapter is built with (``client=None``: the server's, at the
        largest rank). With ``client_ranks`` the rank is the client's and ``lora_alpha`` is scaled with it
        (``lora_alpha / r`` unchanged), so that the first ``r_i`` ranks of a larger adapter mean the same
        update in a client's smaller one; without, the run's own ``method_params``."""
        if self.client_ranks is None:
            return dict(self.method_params)
        params = method_params(self.method, self.method_params)
        scaling = float(params["lora_alpha"]) / float(params["r"])
        rank = max(self.client_ranks) if client is None else self.client_ranks[client]
        alpha = scaling * rank
        return dict(self.method_params, r=rank, lora_alpha=int(alpha) if alpha == int(alpha) else alpha)

    def dp_settings(self) -> dict:
        """The DP settings with defaults filled in, validated (ConfigError naming the fix)."""
        unknown = sorted(set(self.dp or {}) - set(DP_DEFAULTS))
        if unknown:
            raise ConfigError(f"Unknown dp setting(s) {unknown}; valid: {sorted(DP_DEFAULTS)}.")
        dp = dict(DP_DEFAULTS, **(self.dp or {}))
        if not dp["noise"] > 0 or not dp["clip"] > 0:
            raise ConfigError(
                f"dp needs a noise multiplier > 0 and a clipping norm > 0, got noise={dp['noise']}, "
                f"clip={dp['clip']}. Fix: e.g. --dp-noise 1.0 --dp-clip 1.0."
            )
        if dp["side"] not in DP_SIDES:
            raise ConfigError(f"dp side must be one of {DP_SIDES}, got {dp['side']!r}.")
        if not 0 < dp["delta"] < 1:
            raise ConfigError(f"dp delta must be in (0, 1), got {dp['delta']}. Fix: e.g. 1e-5.")
        if self.strategy == "fedex-lora":
            raise ConfigError(
                "fedex-lora changes the base weights beside the adapter, which the DP wrappers do not "
                "clip or noise. Fix: use DP with fedavg or ffa-lora."
            )
        if self.strategy not in ("fedavg", "ffa-lora"):
            raise ConfigError(
                f"Flower's privacy accountant needs uniform FedAvg aggregation; {self.strategy} is not. "
                f"Fix: --strategy fedavg or ffa-lora with DP."
            )
        if self.fraction < 1:
            raise ConfigError(
                "DP accounting here assumes every client takes part in every round (no sampling "
                "amplification). Fix: --fraction 1."
            )
        return dp

    # --- checkpoint selection (SELECTS)
    @property
    def validates(self) -> bool:
        """Whether the run scores its own validation data at each checkpoint (and the held-out set once)."""
        return self.select in VALIDATING_SELECTS

    @property
    def keeps_best(self) -> bool:
        """Whether the run goes back to its best validated checkpoint (else it keeps its last one)."""
        return self.select == "validation"

    # --- budgets: the same optimizer steps and examples for every setting
    @property
    def clients_per_round(self) -> int:
        return max(1, math.ceil(self.clients * self.fraction))

    @property
    def federated_steps(self) -> int:
        """Optimizer steps of the whole federation (all rounds, all sampled clients)."""
        return self.rounds * self.clients_per_round * self.local_steps

    @property
    def centralized_steps(self) -> int:
        """Optimizer steps of the centralized model: ``steps`` when set, else the federation's total."""
        return self.steps or self.federated_steps

    @property
    def isolated_steps(self) -> int:
        """Steps one client makes in the federation on average (its budget when alone)."""
        return max(1, round(self.rounds * self.clients_per_round / self.clients)) * self.local_steps

    @property
    def examples_per_step(self) -> int:
        return self.batch_size * self.grad_accum

    def resolved(self) -> RunConfig:
        """Pin ``auto`` values (dtype, data source) to what this machine uses."""
        check_name(self.model)
        check_autocast(self.autocast, resolve_device())
        return dataclasses.replace(
            self.validate(),
            dtype=resolve_dtype(self.dtype),
            source="local" if self.data is not None else resolve_source(self.source),
            device_kind=resolve_device_kind(),
        )

    def to_dict(self) -> dict:
        """The fields this run's result depends on (zero-shot runs ignore the training fields)."""
        data = dataclasses.asdict(self)
        data["faults"] = self.faults.to_dict()
        for name, default in OPTIONAL_DEFAULTS.items():  # absent when unused: older hashes are unchanged
            if data[name] == default:
                del data[name]
        if self.setting == "zeroshot":
            return {k: data[k] for k in ZEROSHOT_FIELDS if k in data}
        return data

    def hash(self) -> str:
        data = self.to_dict()
        if data.get("data"):  # a user's file is identified by its content (SHA-256), not by where it lies
            data["data"] = {k: v for k, v in data["data"].items() if k != "path"}
        return config_hash(data)

    def stem(self) -> str:
        """File stem of the result: readable fields plus a short hash (no timestamps)."""
        model = self.model.replace("/", "--")
        device = "" if self.device_kind == "cpu" else f"-{self.device_kind}"  # a GPU result names its GPU
        if self.setting == "zeroshot":
            return f"{self.setting}-{self.dataset}-{model}-{self.evaluator}{device}-{self.hash()[:10]}"
        part = self.partition.replace(":", "")
        return f"{self.setting}-{self.dataset}-{self.method}-{model}-{part}{device}-{self.hash()[:10]}"

    @classmethod
    def from_dict(cls, data: dict) -> RunConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(
                f"Unknown config key(s) {unknown}. {did_you_mean(unknown[0], names)} Fix: remove or rename them."
            )
        data = dict(data)
        if data.get("data"):  # a user's file: registered in this process too (e.g. a Ray worker, a SuperNode)
            register_user_data(data["data"])
        if not isinstance(data.get("faults", Faults()), Faults):
            data["faults"] = Faults.from_dict(data["faults"])
        if isinstance(data.get("client_ranks"), list):  # JSON and YAML give a list; the config is frozen
            data["client_ranks"] = tuple(data["client_ranks"])
        return cls(**data)
