"""FedEx-LoRA (Singhal et al., 2025): average ``A`` and ``B``, then fold the residual
``s (mean(B_i A_i) - mean(B) mean(A))`` into the frozen base weight of each adapted layer, on the
server and on every client (the cumulative residual travels beside the adapter), so the global model
is exactly the average of the clients' updated models. The maths is in
:mod:`fedlab.core.lora_aggregation`."""

from __future__ import annotations

import numpy as np
from flwr.app import ArrayRecord

from fedlab.core import lora_aggregation as lora

from ..adapter import GlobalAdapter
from ..codec import arrays_to_dict, dict_to_arrays
from .base import ClientSide
from .fedavg import FedAvg

#: the message record that carries the cumulative base-weight residuals beside the adapter
RESIDUAL_RECORD = "fedex-residual"


class FedExLoRAClient(ClientSide):
    private_model = True  # its base weights change

    def __init__(self, model):
        super().__init__(model)
        self.applied: dict = {}

    def receive(self, content, context) -> None:
        super().receive(content, context)
        if RESIDUAL_RECORD in content:
            self.applied = lora.apply_residuals(self.model, arrays_to_dict(content[RESIDUAL_RECORD]), self.applied)


class FedExLoRA(FedAvg):
    STATE = ("fedex_residual",)
    client = FedExLoRAClient

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fedex_residual: dict | None = None  # cumulative, by module prefix
        self.applied: dict = {}  # what the server's model holds of it

    def records(self) -> dict[str, ArrayRecord]:
        return {RESIDUAL_RECORD: dict_to_arrays(self.fedex_residual)} if self.fedex_residual else {}

    def after_aggregate(self, arrays: list[dict], weights, adapter: GlobalAdapter) -> None:
        increment = lora.residuals(arrays, weights, self.scaling)
        total = {k: (self.fedex_residual or {}).get(k, 0.0) + v for k, v in increment.items()}
        self.fedex_residual = {k: np.asarray(v, np.float32) for k, v in total.items()}
        self.applied = lora.apply_residuals(adapter.model, self.fedex_residual, self.applied)

    def restore(self, state: dict, adapter: GlobalAdapter) -> None:
        super().restore(state, adapter)
        if self.fedex_residual:  # resumed: the server's model gets its residual back
            self.applied = lora.apply_residuals(adapter.model, self.fedex_residual, self.applied)
