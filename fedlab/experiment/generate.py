"""After training: load base + a run's final adapter and answer held-out prompts."""

from __future__ import annotations

from pathlib import Path

from fedlab.core.evaluate import generate_text
from fedlab.core.models import load_model
from fedlab.core.peft_methods import get_method
from fedlab.errors import FedlabError, ModelError

from .config import RunConfig
from .rundata import RunData
from .store import ResultStore


def load_adapted(cfg: RunConfig, adapter_path: Path):
    """The run's base model (quantized for QLoRA) with the adapter saved at ``adapter_path``."""
    from peft import PeftConfig, PeftModel

    adapter_path = Path(adapter_path)
    if not (adapter_path / "adapter_config.json").is_file():
        raise ModelError(
            f"No adapter at {adapter_path}. Fix: rerun the training run (its adapter is saved on success)."
        )
    saved = PeftConfig.from_pretrained(adapter_path)
    expected = get_method(cfg.method).peft_type
    if str(saved.peft_type.value if hasattr(saved.peft_type, "value") else saved.peft_type) != expected:
        raise ModelError(
            f"Adapter at {adapter_path} is {saved.peft_type}, but the run used {cfg.method}. "
            f"Fix: pair the adapter with the method it was trained with."
        )
    base, tokenizer, _ = load_model(cfg.model, cfg.dtype, quantization=get_method(cfg.method).quantization)
    try:
        model = PeftModel.from_pretrained(base, adapter_path)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise ModelError(
            f"Adapter at {adapter_path} does not fit base model {cfg.model!r} ({exc.__class__.__name__}). "
            f"Fix: use the base model the adapter was trained on."
        ) from exc
    model.eval()
    return model, tokenizer


def generate_from_result(result_path: str | Path, n: int = 3, max_new_tokens: int = 48) -> list[dict]:
    """Answers of a finished run's final adapter to the first ``n`` held-out prompts."""
    path = Path(result_path)
    result = ResultStore.read(path)
    if result is None:
        raise FedlabError(f"Cannot read result {path}. Fix: pass the .json of a finished run.")
    if not result.ok or not result.adapter_dir:
        raise FedlabError(f"{path} is not a finished federated or centralized run with a saved adapter.")
    cfg = RunConfig.from_dict(result.config)
    model, tokenizer = load_adapted(cfg, path.parent / result.adapter_dir)
    return generate_text(
        model,
        tokenizer,
        RunData(cfg).eval_rows[:n],
        max_new_tokens=max_new_tokens,
        max_length=cfg.max_length,
        system_prompt=cfg.system_prompt,
        truncation=cfg.truncation,
    )
