"""FedSA-LoRA (Guo et al., 2025): ``A`` is shared and averaged; ``B`` stays with each client (kept in
the node's Flower state across rounds) and never travels. Each client ends with a personalised model,
scored on its own rows and on the shared eval set."""

from __future__ import annotations

from fedlab.core import lora_aggregation as lora
from fedlab.core.peft_methods import adapter_state, load_adapter_state

from ..codec import arrays_to_dict, dict_to_arrays
from .base import ClientSide
from .fedavg import FedAvg

#: where a FedSA-LoRA client keeps its own B between rounds (the node's Flower state)
OWN_B = "fedsa-own-b"


def only_b(arrays: dict) -> dict:
    return {k: v for k, v in arrays.items() if k.endswith(lora.B_SUFFIX)}


class FedSALoRAClient(ClientSide):
    private_model = True  # a client's first B is this run's seeded initialisation
    personalised = True

    def __init__(self, model):
        super().__init__(model)
        self.initial_b = only_b(adapter_state(model))

    def receive(self, content, context) -> None:
        """The global A over this client's own B (its initial B before its first round)."""
        own = arrays_to_dict(context.state[OWN_B]) if OWN_B in context.state else self.initial_b
        load_adapter_state(self.model, dict(adapter_state(self.model), **own, **arrays_to_dict(content["arrays"])))

    def reply(self, context) -> dict:
        state = adapter_state(self.model)
        context.state[OWN_B] = dict_to_arrays(only_b(state))  # B stays here, for the next round
        return {k: v for k, v in state.items() if not k.endswith(lora.B_SUFFIX)}


class FedSALoRA(FedAvg):
    personalised = True
    client = FedSALoRAClient

    def sent(self, arrays: dict) -> dict:
        return {k: v for k, v in arrays.items() if not k.endswith(lora.B_SUFFIX)}

    def aggregation_error(self, arrays: list[dict], weights) -> None:
        return None  # the B factors never reach the server: nothing to measure
