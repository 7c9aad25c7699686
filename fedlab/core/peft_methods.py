"""PEFT methods in one registry: LoRA, QLoRA (4-bit NF4 base + LoRA) and IA3, all through `peft`.

A method is configuration: its peft config, whether the base is quantized, and its defaults.
``build_peft_model`` returns the wrapped model; ``adapter_state`` / ``load_adapter_state`` move the
adapter tensors (and only them) in and out as numpy arrays, which is all that a federated client
ever sends or receives.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fedlab.errors import ConfigError, ModelError, did_you_mean

from .models import load_model


@dataclass(frozen=True)
class MethodSpec:
    name: str
    peft_type: str  # peft's PeftType name: "LORA" or "IA3"
    quantization: str | None  # "nf4" for QLoRA
    defaults: dict = field(default_factory=dict)
    description: str = ""


METHODS = {
    "lora": MethodSpec(
        "lora",
        "LORA",
        None,
        {"r": 8, "lora_alpha": 16, "lora_dropout": 0.05, "target_modules": ["q_proj", "v_proj"]},
        "LoRA on the attention query/value projections",
    ),
    "qlora": MethodSpec(
        "qlora",
        "LORA",
        "nf4",
        {"r": 8, "lora_alpha": 16, "lora_dropout": 0.05, "target_modules": ["q_proj", "v_proj"]},
        "LoRA on a 4-bit NF4 (double-quantised) base via bitsandbytes",
    ),
    "ia3": MethodSpec(
        "ia3",
        "IA3",
        None,
        {"target_modules": ["k_proj", "v_proj", "down_proj"], "feedforward_modules": ["down_proj"]},
        "IA3 rescaling vectors on keys, values and the MLP down projection",
    ),
}


def get_method(name: str) -> MethodSpec:
    if name not in METHODS:
        raise ConfigError(f"Unknown PEFT method {name!r}. {did_you_mean(name, METHODS)}")
    return METHODS[name]


def method_params(name: str, overrides: dict | None = None) -> dict:
    """The method's defaults updated with user overrides (unknown keys are an error)."""
    spec = get_method(name)
    params = dict(spec.defaults)
    for key, value in (overrides or {}).items():
        if key not in params:
            raise ConfigError(f"{key!r} is not a parameter of {name}. Valid: {sorted(params)}. Fix the method params.")
        params[key] = value
    return params


def peft_config(name: str, overrides: dict | None = None):
    from peft import IA3Config, LoraConfig, TaskType

    params = method_params(name, overrides)
    if get_method(name).peft_type == "LORA":
        return LoraConfig(task_type=TaskType.CAUSAL_LM, bias="none", **params)
    return IA3Config(task_type=TaskType.CAUSAL_LM, **params)


def build_peft_model(base, name: str, overrides: dict | None = None):
    """Wrap a loaded base model with the method's adapter (QLoRA expects a 4-bit base)."""
    from peft import get_peft_model, prepare_model_for_kbit_training

    spec = get_method(name)
    if spec.quantization == "nf4":
        if not getattr(base, "is_loaded_in_4bit", False):
            raise ModelError("QLoRA needs the base loaded in 4-bit: load it with quantization='nf4'.")
        base = prepare_model_for_kbit_training(base, use_gradient_checkpointing=False)
    return get_peft_model(base, peft_config(name, overrides))


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@contextlib.contextmanager
def library_notices(name: str = "bitsandbytes"):
    """Collect what a library logs while the block runs, instead of letting it reach stderr: the notices
    go into the run's model info (``info["notices"]``), so they are kept, with the run, not printed.
    bitsandbytes logs, on a CPU with AVX-512-bf16, that its optional hub-fetched 4-bit kernel (the
    ``kernels`` package) is missing and it falls back to its own code; offline that is always so."""
    logger, handler = logging.getLogger(name), _Records()
    old = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.propagate = old


def load_for_method(model_name: str, method: str, dtype: str = "auto", overrides: dict | None = None, seed: int = 0):
    """Load the backbone as the method needs it and wrap it: ``(peft_model, tokenizer, info)``.

    The adapter's initialisation is seeded, so every setting of a run starts from the same adapter.
    """
    import torch

    spec = get_method(method)
    # peft imports bitsandbytes when it wraps a model, and QLoRA's preparation calls a transformers API
    # deprecated in 5.x: what they log or warn is kept in the run's model info rather than printed
    with library_notices("bitsandbytes") as notices, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        base, tokenizer, info = load_model(model_name, dtype, quantization=spec.quantization)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = build_peft_model(base, method, overrides)
    kept = [f"{r.name}: {r.getMessage()}" for r in notices]
    kept += [f"{w.category.__name__}: {w.message}" for w in caught]
    if kept:
        info = dict(info, notices=list(dict.fromkeys(kept)))
    model.eval()
    trainable, total = model.get_nb_trainable_parameters()
    info = dict(
        info,
        method=method,
        method_params=method_params(method, overrides),
        trainable_parameters=int(trainable),
        total_parameters=int(total),
        adapter_bytes=adapter_nbytes(adapter_state(model)),
    )
    return model, tokenizer, info


def adapter_state(model) -> OrderedDict[str, np.ndarray]:
    """The adapter tensors only (peft's state dict), as float32 numpy arrays in a fixed order.

    The arrays are copies: on a float32 CPU model ``.numpy()`` would share memory with the live
    parameters, and a snapshot (a FedSA client's initial B, a checkpoint) would move with training."""
    from peft import get_peft_model_state_dict

    state = get_peft_model_state_dict(model)
    return OrderedDict((k, state[k].detach().float().cpu().numpy().copy()) for k in sorted(state))


def load_adapter_state(model, arrays: dict) -> None:
    """Load adapter arrays into ``model``; names and shapes must match exactly."""
    import torch
    from peft import set_peft_model_state_dict

    own = adapter_state(model)
    missing, extra = sorted(set(own) - set(arrays)), sorted(set(arrays) - set(own))
    if missing or extra:
        raise ModelError(
            f"Adapter does not fit this model: {len(missing)} tensors missing (e.g. {missing[:2]}), "
            f"{len(extra)} unexpected (e.g. {extra[:2]}). It was trained for another base model or "
            f"PEFT method. Fix: use the adapter with the base/method it was trained with."
        )
    bad = [k for k in own if tuple(own[k].shape) != tuple(np.shape(arrays[k]))]
    if bad:
        raise ModelError(
            f"Adapter shapes differ from this model's for {len(bad)} tensors (e.g. {bad[0]}: "
            f"{np.shape(arrays[bad[0]])} vs {own[bad[0]].shape}): different base model or rank."
        )
    result = set_peft_model_state_dict(model, {k: torch.from_numpy(np.asarray(v)) for k, v in arrays.items()})
    unexpected = getattr(result, "unexpected_keys", None)
    if unexpected:
        raise ModelError(f"peft could not place adapter tensors {unexpected[:3]}.")


@dataclass
class AdapterSnapshot:
    """What a finished run keeps of its model: the adapter's peft config and its tensors (float32 numpy
    copies on the host), enough to write the folder ``PeftModel.from_pretrained`` loads. A result holds
    this rather than the live model, so the model (and its GPU memory) is freed when the run ends."""

    peft_config: object
    arrays: dict

    @classmethod
    def of(cls, model) -> AdapterSnapshot:
        config = copy.deepcopy(model.peft_config[model.active_adapter])
        config.inference_mode = True  # as peft's save_pretrained writes it
        return cls(config, adapter_state(model))

    def save(self, folder) -> None:
        """``adapter_config.json`` + ``adapter_model.safetensors``, the layout of peft's save_pretrained."""
        import torch
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.peft_config.save_pretrained(str(folder))
        save_file(
            {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in self.arrays.items()},
            str(folder / "adapter_model.safetensors"),
            metadata={"format": "pt"},
        )


def adapter_nbytes(arrays: dict) -> int:
    return int(sum(np.asarray(a).nbytes for a in arrays.values()))


def adapter_hash(arrays: dict) -> str:
    """sha256 over names, shapes and raw bytes of the adapter: equal hash, equal adapter."""
    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k], dtype=np.float32)
        h.update(k.encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()
