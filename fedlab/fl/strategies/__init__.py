"""Strategies: one Flower ``Strategy`` subclass per aggregation variant, with its client side.

Each owns what it sends, what it does after averaging, its checkpoint state and its client side
(see :mod:`.base`).

The names and default parameters are declared in :data:`fedlab.experiment.config.STRATEGY_DEFAULTS`;
:data:`STRATEGY_CLASSES` maps each to its class, and :func:`make_strategy` builds a run's (in its DP
wrapper when the run asks for DP). Client sampling is fedlab's (:mod:`.sampling`).
"""

from __future__ import annotations

from fedlab.core import lora_aggregation as lora
from fedlab.core.peft_methods import method_params
from fedlab.experiment.config import RunConfig, strategy_params

from .base import ClientSide, FedlabStrategy
from .dp import DP_WEIGHT_KEY, ClientSideDP, ServerSideDP, wrap
from .fedavg import FedAdam, FedAvg, FedAvgM, FedProx, FedYogi
from .fedex_lora import FedExLoRA
from .fedsa_lora import FedSALoRA
from .ffa_lora import FFALoRA
from .flexlora import FlexLoRA
from .hetlora import HetLoRA
from .sampling import Offered, sample_clients
from .secure import SecureFedAvg

STRATEGY_CLASSES: dict[str, type[FedlabStrategy]] = {
    "fedavg": FedAvg,
    "fedprox": FedProx,
    "fedadam": FedAdam,
    "fedyogi": FedYogi,
    "fedavgm": FedAvgM,
    "ffa-lora": FFALoRA,
    "fedsa-lora": FedSALoRA,
    "fedex-lora": FedExLoRA,
    "hetlora": HetLoRA,
    "flexlora": FlexLoRA,
}

__all__ = [
    "STRATEGY_CLASSES",
    "ClientSide",
    "ClientSideDP",
    "DP_WEIGHT_KEY",
    "FedlabStrategy",
    "Offered",
    "ServerSideDP",
    "client_side",
    "make_strategy",
    "sample_clients",
    "SecureFedAvg",
]


def make_strategy(cfg: RunConfig) -> FedlabStrategy:
    """The run's strategy; with ``cfg.dp``, in Flower's fixed-clipping DP wrapper (see :mod:`.dp`); with
    ``cfg.secagg``, FedAvg under SecAgg+ (see :mod:`.secure`)."""
    cls = SecureFedAvg if cfg.secagg is not None else STRATEGY_CLASSES[cfg.strategy]
    strategy = cls(
        fraction_train=1.0,
        fraction_evaluate=1.0,
        min_train_nodes=1,
        min_evaluate_nodes=1,
        min_available_nodes=1,
        weighted_by_key=DP_WEIGHT_KEY if cfg.dp is not None else "num-examples",
        scaling=lora.lora_scaling(method_params(cfg.method, cfg.method_params)),
        **strategy_params(cfg.strategy, cfg.strategy_params),
        **cls.options(cfg),
    )
    return strategy if cfg.dp is None else wrap(strategy, cfg)


def client_side(cfg: RunConfig) -> type[ClientSide]:
    """The client-side part of the run's strategy (a DP wrapper adds none of its own)."""
    return STRATEGY_CLASSES[cfg.strategy].client
