"""Mixed precision: ``torch.autocast`` around the forward (and so the backward) of training and scoring.

The weights stay in the run's ``dtype`` (fp32 master weights for an fp32 run); only the matrix
products inside the autocast region run in the lower precision. On CPUs this pays only where the
CPU has native bf16 instructions (AVX512-BF16 or AMX): elsewhere PyTorch emulates bf16, about 100x
slower, so :func:`check_autocast` refuses such a run with a message naming the flags it needs.

On a GPU, ``fp16`` autocast (for GPUs without bf16, e.g. T4, V100) and fp16 weights need loss scaling:
small gradients underflow to zero in fp16 and the loss goes NaN. :func:`loss_scaler` gives a
``torch.amp.GradScaler`` there (skipping the steps whose gradients overflowed, and lowering the scale)
and a disabled one, a pass-through that changes nothing, everywhere else.
"""

from __future__ import annotations

import contextlib

from fedlab.errors import ConfigError

from .models import cpu_supports_bf16

#: the autocast precisions a run may ask for (None = off, every operation in the weights' dtype)
AUTOCASTS = ("bf16", "fp16")
#: /proc/cpuinfo flags that give a CPU native bf16 matrix products
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def check_autocast(autocast: str | None, device: str) -> None:
    """Raise a ConfigError for an autocast this machine cannot run at speed (or at all)."""
    if autocast is None:
        return
    if autocast not in AUTOCASTS:
        raise ConfigError(f"Unknown autocast {autocast!r}; valid: {AUTOCASTS} or none. Fix: e.g. --set autocast=bf16.")
    if device == "cpu" and autocast == "fp16":
        raise ConfigError(
            "autocast fp16 is for GPUs (CPUs have no fast fp16 matrix products). Fix: on a CPU use "
            "autocast bf16 (with native bf16 instructions) or none."
        )
    if device == "cuda" and autocast == "bf16":
        import torch

        if not torch.cuda.is_bf16_supported():
            raise ConfigError(
                f"autocast bf16 needs a GPU with bf16 (Ampere or newer); {torch.cuda.get_device_name(0)} "
                "has none. Fix: --set autocast=fp16 (loss-scaled) or none."
            )
    if device == "cpu":
        if not cpu_supports_bf16():
            raise ConfigError(
                "autocast bf16 needs a CPU with native bf16 instructions (/proc/cpuinfo flag "
                f"{' or '.join(BF16_CPU_FLAGS)}); this CPU has neither, and emulated bf16 runs about 100x slower "
                "(days instead of hours). Fix: run this profile on such a CPU (or a GPU), or set autocast to none "
                "and accept that the result is then a different (fp32) run with its own hash."
            )


def autocast_context(autocast: str | None, model):
    """The autocast region for ``model``'s device (a no-op context when ``autocast`` is None)."""
    if autocast is None:
        return contextlib.nullcontext()
    import torch

    device = next(model.parameters()).device.type
    return torch.autocast(device_type=device, dtype={"bf16": torch.bfloat16, "fp16": torch.float16}[autocast])


def needs_loss_scaling(autocast: str | None, model) -> bool:
    """fp16 on a GPU: fp16 autocast, or a model whose weights are fp16."""
    import torch

    first = next(model.parameters())
    if first.device.type != "cuda":
        return False
    return autocast == "fp16" or any(p.dtype == torch.float16 for p in model.parameters())


def loss_scaler(autocast: str | None, model):
    """A ``torch.amp.GradScaler`` that is enabled only where :func:`needs_loss_scaling` (a pass-through
    elsewhere: ``scale`` returns the loss as is and ``step`` is the optimizer's step)."""
    import torch

    enabled = needs_loss_scaling(autocast, model)
    return torch.amp.GradScaler("cuda" if enabled else "cpu", enabled=enabled)
