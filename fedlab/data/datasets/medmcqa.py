"""MedMCQA (Pal et al. 2022): 4-way medical multiple choice from Indian entrance exams.

Local: ``medmcqa/dev.json``, the official validation split (4,183 questions, the one papers report
on), JSON lines (not a JSON array) with ``id``, ``question``, ``opa``..``opd``, ``cop`` (**1-based**
here), ``choice_type``, ``exp``, ``subject_name`` (the natural group, 21 subjects) and
``topic_name``. Hub: ``openlifescienceai/medmcqa`` with the same columns but a **0-based** ``cop``;
splits ``train`` (182,822), ``validation`` and ``test`` (unlabelled, never read). Offline runs carve
their training pool and eval set out of the validation split (see :func:`fedlab.data.load_splits`).
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

NAME = "medmcqa"
TASK = "mcq4"
FILENAME = "dev.json"
LOCAL_SPLIT = "validation"  # the release calls it dev; the hub calls it validation
OPTION_FIELDS = ("opa", "opb", "opc", "opd")


def make_record(row: Mapping[str, Any], label: int, split: str, *, where: str) -> Record:
    """The record of one row whose 0-based answer index ``label`` has already been checked."""
    question = require_str(row, "question", where)
    texts = tuple(row.get(key) for key in OPTION_FIELDS)
    if not all(isinstance(text, str) for text in texts):
        raise malformed(where, f"options opa..opd must be strings, got {texts!r}")
    return Record(
        id=make_id(NAME, question, *texts, MCQ_LETTERS[label]),
        dataset=NAME,
        domain="healthcare",
        task=TASK,
        text=question,
        options=texts,
        label=label,
        label_text=texts[label],
        group=require_str(row, "subject_name", where),
        split=split,
        meta={"source_id": row.get("id"), "choice_type": row.get("choice_type"), "topic_name": row.get("topic_name")},
    )


def _answer_index(row: Mapping[str, Any], base: int, where: str) -> int:
    """``cop`` converted to a 0-based index; ``base`` is 1 for the release files, 0 for the hub."""
    cop = row.get("cop")
    allowed = range(base, base + len(MCQ_LETTERS))
    if not isinstance(cop, int) or isinstance(cop, bool) or cop not in allowed:
        raise unknown_label(f"{where} (field 'cop', {base}-based)", cop, allowed)
    return cop - base


def load_local(folder: Path) -> list[Record]:
    """Every line of ``dev.json`` (1-based ``cop``), in file order."""
    path = require_file(folder, FILENAME, NAME)
    records = []
    for line_no, row in read_json_lines(path):
        where = where_line(path, line_no)
        records.append(make_record(row, _answer_index(row, 1, where), LOCAL_SPLIT, where=where))
    require_rows(len(records), f"{folder.name}/{FILENAME}")
    return records


def hub_row_to_record(row: Mapping[str, Any], split: str, *, where: str = "hub row") -> Record:
    """One ``openlifescienceai/medmcqa`` row (0-based ``cop``) as a record."""
    return make_record(row, _answer_index(row, 0, where), split, where=where)


def load_hub() -> list[Record]:
    """The official validation split, then the official train split (needs network)."""
    return load_hub_records(SPEC, hub_row_to_record)


SPEC = DatasetSpec(
    name=NAME,
    domain="healthcare",
    task=TASK,
    options=None,
    label_names=MCQ_LETTERS,
    hub_id="openlifescienceai/medmcqa",
    hub_config=None,
    hub_splits=("validation", "train"),
    hub_train_split="train",
    hub_eval_split="validation",
    local_folder="medmcqa",
    local_files=(FILENAME,),
    group_field="subject_name: medical subject (21 in the validation split)",
    offline_resplit_note=(
        "MedMCQA's official train split (182,822 questions) is not available offline, so the "
        "training pool and the held-out eval set were both carved, seeded and stratified by answer "
        "letter, out of the official validation split (4,183 questions); no eval question is in the "
        "training pool, but scores are not comparable with results trained on the official train split."
    ),
    load_local=load_local,
    load_hub=load_hub,
    hub_row_to_record=hub_row_to_record,
)
