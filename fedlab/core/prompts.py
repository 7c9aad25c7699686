"""Prompt builders, one per task type, shared by training and evaluation.

A prompt is the model's chat template applied to one user turn (instruction + input) when the
tokenizer has a template, and a plain "instruction / input / Answer:" text otherwise. The answer
(completion) is a label word for sentiment (``negative``/``neutral``/``positive``) and an option
letter for multiple choice. Training uses ``prompt + completion + end-of-turn``; evaluation scores
each option's completion after the very same prompt, so the two formats cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from fedlab.errors import ConfigError

LETTERS = "ABCDEFGH"

INSTRUCTIONS = {
    "sentiment": ("What is the sentiment of this financial text? Answer with one word: negative, neutral or positive."),
    "mcq": ("Answer the following medical multiple-choice question. Reply with the letter of the correct option only."),
    # a user's own multiple-choice file, whatever its field
    "mcq_any": "Answer the following multiple-choice question. Reply with the letter of the correct option only.",
}


#: the task types a record can have: sentiment over three label words, or lettered multiple choice
TASKS = {
    "sentiment3": "3-way sentiment (answer: negative, neutral or positive)",
    "mcq4": "4-option multiple choice (answer: A-D)",
    "mcq3": "3-option multiple choice (answer: A-C)",
    "label": "classification into the record's own label words (a user's file, fedlab.data.user)",
    **{f"mcq{k}": f"{k}-option multiple choice (a user's file)" for k in (2, 5, 6, 7, 8)},
}


def uses_letters(task: str) -> bool:
    """Multiple-choice tasks answer with option letters; label tasks answer with the label word."""
    return task.startswith("mcq")


def task_of(record) -> str:
    return record.task


def instruction_for(record) -> str:
    task = task_of(record)
    if uses_letters(task):
        return (
            INSTRUCTIONS["mcq"] if getattr(record, "domain", "healthcare") == "healthcare" else INSTRUCTIONS["mcq_any"]
        )
    if task.startswith("sentiment"):
        return INSTRUCTIONS["sentiment"]
    return f"Classify this text. Answer with one of: {', '.join(record.options[:-1])} or {record.options[-1]}."


def user_text(record, text: str | None = None) -> str:
    """The user turn: instruction, the input, and the lettered options for multiple choice."""
    body = record.text if text is None else text
    if uses_letters(task_of(record)):
        opts = "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(record.options))
        return f"{instruction_for(record)}\n\nQuestion: {body}\n\nOptions:\n{opts}"
    return f"{instruction_for(record)}\n\nText: {body}"


def completions(record) -> list[str]:
    """The answer string of each option (letters for MCQ, label words otherwise)."""
    if uses_letters(task_of(record)):
        return [LETTERS[i] for i in range(len(record.options))]
    return list(record.options)


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def prompt_text(record, tokenizer, text: str | None = None, system_prompt: str | None = None) -> str:
    """The full prompt string, ending where the answer starts.

    ``system_prompt``: ``None`` keeps the chat template's own default system turn (SmolLM2's adds a
    ~20-token "You are a helpful AI assistant named SmolLM ..." to every example); a string, ``""``
    included, is sent as an explicit system turn instead. Plain (template-less) prompts put a
    non-empty system prompt on the first line. A template that refuses a system turn (Mistral's, some
    Gemma instruct templates) gets none when ``system_prompt`` is ``""``: an empty turn says nothing, so
    leaving it out loses nothing; a non-empty one is refused with the fix.
    """
    user = user_text(record, text)
    if has_chat_template(tokenizer):
        messages = [{"role": "user", "content": user}]
        if system_prompt is not None:
            messages.insert(0, {"role": "system", "content": system_prompt})
        try:
            return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        except Exception as exc:  # jinja2 TemplateError: e.g. "System role not supported"
            if system_prompt is None:
                raise
            if system_prompt == "":
                return tokenizer.apply_chat_template(messages[1:], add_generation_prompt=True, tokenize=False)
            raise ConfigError(
                f"The chat template of this tokenizer refuses a system turn ({exc}). "
                f"Fix: set system_prompt: null to keep the template's default."
            ) from exc
    head = f"{system_prompt}\n\n" if system_prompt else ""
    return f"{head}{user}\nAnswer:"


def completion_prefix(tokenizer) -> str:
    """Plain prompts end in 'Answer:' so the answer follows a space; chat prompts start a new turn."""
    return "" if has_chat_template(tokenizer) else " "


@dataclass
class Encoded:
    """Token ids of one example: the prompt, each option's completion, the gold index."""

    prompt_ids: list[int]
    option_ids: list[list[int]]
    label: int
    truncated: bool


#: how an input too long for ``max_length`` is shortened: "middle" keeps its opening and its final
#: sentence (a vignette's question) and cuts the middle; "end" (results before schema 4) cuts the end
TRUNCATIONS = ("middle", "end")


def encode(
    record, tokenizer, max_length: int = 512, system_prompt: str | None = None, truncation: str = "middle"
) -> Encoded:
    """Tokenize prompt and options; if too long, shorten the input text (never the instruction or options)."""
    prefix = completion_prefix(tokenizer)
    option_ids = [tokenizer(prefix + c, add_special_tokens=False)["input_ids"] for c in completions(record)]
    add_bos = tokenizer.bos_token_id is not None and not has_chat_template(tokenizer)
    # room for the prompt: the longest answer plus the end-of-turn token (training) must still fit
    budget = max_length - (max(len(o) for o in option_ids) + 1) - int(add_bos)
    ids = tokenizer(prompt_text(record, tokenizer, system_prompt=system_prompt), add_special_tokens=False)["input_ids"]
    truncated = len(ids) > budget
    if truncated:
        if truncation == "middle":
            short = shorten_middle(record.text, tokenizer, len(ids) - budget + 8)
        else:
            text_ids = tokenizer(record.text, add_special_tokens=False)["input_ids"]
            short = tokenizer.decode(text_ids[: max(len(text_ids) - (len(ids) - budget) - 8, 16)]) + " ..."
        ids = tokenizer(prompt_text(record, tokenizer, short, system_prompt), add_special_tokens=False)["input_ids"]
        ids = ids[-budget:]
    if add_bos:
        ids = [tokenizer.bos_token_id] + ids
    return Encoded(ids, option_ids, record.label, truncated)


def final_sentence(text: str) -> str:
    """The last sentence of ``text`` (a clinical vignette ends with its question)."""
    body = text.rstrip()
    cut = max(body.rfind(". ", 0, len(body) - 1), body.rfind("\n", 0, len(body) - 1))
    return body[cut + 1 :].strip() if cut >= 0 else body


def shorten_middle(text: str, tokenizer, drop: int, *, min_head: int = 16) -> str:
    """``text`` with about ``drop`` tokens cut from its middle: the opening and the final sentence
    (the question of a vignette) stay, the middle of the story goes ("..." marks the cut)."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    keep = max(len(ids) - drop, min_head + 8)
    tail = tokenizer(" " + final_sentence(text), add_special_tokens=False)["input_ids"]
    n_tail = min(len(tail), keep - min_head)
    n_head = keep - n_tail
    return tokenizer.decode(ids[:n_head]).rstrip() + " ... " + tokenizer.decode(tail[len(tail) - n_tail :]).strip()


def training_ids(enc: Encoded, tokenizer) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)`` for causal-LM training with the loss on the answer tokens only."""
    answer = enc.option_ids[enc.label] + [tokenizer.eos_token_id]
    input_ids = enc.prompt_ids + answer
    labels = [-100] * len(enc.prompt_ids) + answer
    return input_ids, labels
