"""MedQA (USMLE, English, 4 options; Jin et al. 2021): 4-way medical multiple choice.

Local: ``medqa/phrases_no_exclude_test.jsonl``, the official test split (1,273 questions), JSON lines
with ``question``, ``answer`` (text), ``options`` {A..D}, ``answer_idx`` (letter), ``meta_info``
(``step1`` / ``step2&3``, the natural group) and ``metamap_phrases``. Hub:
``GBaker/MedQA-USMLE-4-options`` with the same columns, splits ``train`` (10,178) and ``test``.
The official train split is not available offline, so offline runs carve their training pool and
their eval set out of the test split (see :func:`fedlab.data.load_splits`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..base import (
    DatasetSpec,
    load_hub_records,
    malformed,
    read_json_lines,
    require_file,
    require_rows,
    require_str,
    unknown_label,
    where_line,
)
from ..records import MCQ_LETTERS, Record, make_id

NAME = "medqa"
TASK = "mcq4"
FILENAME = "phrases_no_exclude_test.jsonl"
LOCAL_SPLIT = "test"


def row_to_record(row: Mapping[str, Any], split: str, *, where: str) -> Record:
    """One MedQA row (same format locally and on the hub) as a record, options in A..D order."""
    question = require_str(row, "question", where)
    options = row.get("options")
    if not isinstance(options, Mapping) or sorted(options) != list(MCQ_LETTERS):
        raise malformed(where, f"'options' must map exactly the letters A-D to texts, got {options!r}")
    texts = tuple(options[letter] for letter in MCQ_LETTERS)
    if not all(isinstance(text, str) and text.strip() for text in texts):
        raise malformed(where, f"every option must be a non-empty string, got {texts!r}")
    letter = row.get("answer_idx")
    if letter not in MCQ_LETTERS:
        raise unknown_label(where, letter, MCQ_LETTERS)
    label = MCQ_LETTERS.index(letter)
    if row.get("answer") != texts[label]:
        raise malformed(where, f"'answer' {row.get('answer')!r} is not the text of option {letter} ({texts[label]!r})")
    return Record(
        id=make_id(NAME, question, *texts, letter),
        dataset=NAME,
        domain="healthcare",
        task=TASK,
        text=question,
        options=texts,
        label=label,
        label_text=texts[label],
        group=require_str(row, "meta_info", where),
        split=split,
    )


def load_local(folder: Path) -> list[Record]:
    """Every line of the official test split, in file order."""
    path = require_file(folder, FILENAME, NAME)
    records = [
        row_to_record(row, LOCAL_SPLIT, where=where_line(path, line_no)) for line_no, row in read_json_lines(path)
    ]
    require_rows(len(records), f"{folder.name}/{FILENAME}")
    return records


def hub_row_to_record(row: Mapping[str, Any], split: str, *, where: str = "hub row") -> Record:
    """One ``GBaker/MedQA-USMLE-4-options`` row as a record (the hub keeps the release format)."""
    return row_to_record(row, split, where=where)


def load_hub() -> list[Record]:
    """The official test split, then the official train split (needs network)."""
    return load_hub_records(SPEC, hub_row_to_record)


SPEC = DatasetSpec(
    name=NAME,
    domain="healthcare",
    task=TASK,
    options=None,
    label_names=MCQ_LETTERS,
    hub_id="GBaker/MedQA-USMLE-4-options",
    hub_config=None,
    hub_splits=("test", "train"),
    hub_train_split="train",
    hub_eval_split="test",
    local_folder="medqa",
    local_files=(FILENAME,),
    group_field="meta_info: USMLE step ('step1' or 'step2&3')",
    offline_resplit_note=(
        "MedQA's official train split (10,178 questions) is not available offline, so the training "
        "pool and the held-out eval set were both carved, seeded and stratified by answer letter, "
        "out of the official test split (1,273 questions); no eval question is in the training pool, "
        "but scores are not comparable with results trained on the official train split."
    ),
    load_local=load_local,
    load_hub=load_hub,
    hub_row_to_record=hub_row_to_record,
)
