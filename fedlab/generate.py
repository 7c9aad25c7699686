"""After training: load base + a run's final adapter and answer held-out prompts."""

from __future__ import annotations

import json
from pathlib import Path

from .config import RunConfig
from .errors import FedlabError, ModelError


def load_adapted(cfg: RunConfig, adapter_path: Path):
    """The run's base model (quantized for QLoRA) with the adapter saved at ``adapter_path``."""
    from peft import PeftConfig, PeftModel

    from .models import load_model
    from .peft_methods import get_method

    adapter_path = Path(adapter_path)
    if not (adapter_path / "adapter_config.json").is_file():
        raise ModelError(f"No adapter at {adapter_path}. Fix: rerun the training run (its adapter is saved on success).")
    saved = PeftConfig.from_pretrained(adapter_path)
    expected = {"lora": "LORA", "qlora": "LORA", "ia3": "IA3"}[cfg.method]
    if str(saved.peft_type.value if hasattr(saved.peft_type, "value") else saved.peft_type) != expected:
        raise ModelError(f"Adapter at {adapter_path} is {saved.peft_type}, but the run used {cfg.method}. "
                         f"Fix: pair the adapter with the method it was trained with.")
    base, tokenizer, _ = load_model(cfg.model, cfg.dtype, quantization=get_method(cfg.method).quantization)
    try:
        model = PeftModel.from_pretrained(base, adapter_path)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise ModelError(f"Adapter at {adapter_path} does not fit base model {cfg.model!r} ({exc.__class__.__name__}). "
                         f"Fix: use the base model the adapter was trained on.") from exc
    model.eval()
    return model, tokenizer


def generate_from_result(result_path: str | Path, n: int = 3, max_new_tokens: int = 48) -> list[dict]:
    """Answers of a finished run's final adapter to the first ``n`` held-out prompts."""
    from .evaluate import generate_text
    from .workload import Workload

    path = Path(result_path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise FedlabError(f"Cannot read result {path} ({exc}). Fix: pass the .json of a finished run.") from exc
    if data.get("status") != "success" or "adapter_dir" not in data:
        raise FedlabError(f"{path} is not a finished federated or centralized run with a saved adapter.")
    cfg = RunConfig.from_dict(data["config"])
    model, tokenizer = load_adapted(cfg, path.parent / data["adapter_dir"])
    return generate_text(model, tokenizer, Workload(cfg).eval_rows[:n], max_new_tokens=max_new_tokens)
