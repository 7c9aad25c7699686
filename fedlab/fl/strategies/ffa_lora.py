"""FFA-LoRA (Sun et al., 2024): every LoRA ``A`` stays frozen at the run's seeded initialisation on
every node; clients train and send only ``B``, so averaging is exact and each message is half of
LoRA's at equal rank."""

from __future__ import annotations

from fedlab.core import lora_aggregation as lora
from fedlab.core.peft_methods import adapter_state

from .base import ClientSide
from .fedavg import FedAvg


def without_a(arrays: dict) -> dict:
    return {k: v for k, v in arrays.items() if not k.endswith(lora.A_SUFFIX)}


def freeze_a(model) -> list[str]:
    """Stop training every LoRA ``A`` (which must stay at the shared seeded initialisation); returns the
    frozen parameter names."""
    frozen = []
    for name, param in model.named_parameters():
        if ".lora_A." in name:
            param.requires_grad_(False)
            frozen.append(name)
    return frozen


class FFALoRAClient(ClientSide):
    private_model = True  # its A is this run's seeded initialisation

    def __init__(self, model):
        super().__init__(model)
        self.frozen = freeze_a(model)

    def reply(self, context) -> dict:
        return without_a(adapter_state(self.model))


class FFALoRA(FedAvg):
    client = FFALoRAClient

    def sent(self, arrays: dict) -> dict:
        return without_a(arrays)
