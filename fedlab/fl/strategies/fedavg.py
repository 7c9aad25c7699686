"""The FedAvg family: Flower's FedAvg, FedProx, FedAdam, FedYogi and FedAvgM with fedlab's hooks.

Flower does the aggregation; each class here only declares the state it carries across rounds, so a
checkpoint keeps it. The whole adapter travels both ways.
"""

from __future__ import annotations

from flwr.serverapp import strategy as S

from .base import FedlabStrategy


class FedAvg(FedlabStrategy, S.FedAvg):
    """Weighted averaging of the clients' adapters (McMahan et al., 2017)."""


class FedProx(FedlabStrategy, S.FedProx):
    """FedAvg whose clients add a proximal term ``mu/2 ||w - w_global||^2`` (Flower sends ``proximal-mu``)."""


class FedAdam(FedlabStrategy, S.FedAdam):
    """Server-side Adam on the averaged update (Reddi et al., 2021)."""

    STATE = ("m_t", "v_t", "current_arrays")


class FedYogi(FedlabStrategy, S.FedYogi):
    """Server-side Yogi on the averaged update (Reddi et al., 2021)."""

    STATE = ("m_t", "v_t", "current_arrays")


class FedAvgM(FedlabStrategy, S.FedAvgM):
    """FedAvg with server momentum (Hsu et al., 2019)."""

    STATE = ("momentum_vector", "current_arrays")
    RECORD_STATE = ("current_arrays",)
