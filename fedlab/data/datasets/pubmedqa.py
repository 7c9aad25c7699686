"""PubMedQA PQA-L (Jin et al. 2019), optional extra: yes/no/maybe questions on PubMed abstracts.

Local: ``pubmedqa/ori_pqal.json``, a JSON object mapping the PubMed id to ``QUESTION``,
``CONTEXTS`` (abstract sections), ``LONG_ANSWER`` and ``final_decision`` (yes/no/maybe: 552/338/110).
Hub: ``qiaojin/PubMedQA`` config ``pqa_labeled``, a single ``train`` split of the same 1,000 rows
(``pubid``, ``question``, ``context.contexts``, ``long_answer``, ``final_decision``). The hub copy
does not mark the release's 500-question test split (``test_ground_truth.json``), so, to keep both
sources identical, the 1,000 rows are treated like FPB: one pool (``split="train"``) with a seeded
eval split.

``Record.text`` is the question followed by the abstract (``"<question>\\n\\nContext: <sections>"``):
the task is reading comprehension and the prompt shows only ``text``. The bare question and the
long answer are kept in ``meta``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..base import (
    DatasetSpec,
    KeyLines,
    load_hub_records,
    malformed,
    read_json,
    require_file,
    require_rows,
    require_str,
    unknown_label,
)
from ..records import Record, make_id

NAME = "pubmedqa"
TASK = "mcq3"
FILENAME = "ori_pqal.json"
OPTIONS = ("yes", "no", "maybe")
SPLIT = "train"  # the hub's only split


def make_record(
    pubid: str, question: str, contexts: Any, decision: Any, long_answer: Any, *, split: str = SPLIT, where: str
) -> Record:
    """The record of one abstract's question; the id hashes PubMed id, question and label."""
    if decision not in OPTIONS:
        raise unknown_label(where, decision, OPTIONS)
    if (
        isinstance(contexts, (str, bytes))
        or not isinstance(contexts, Sequence)
        or not contexts
        or not all(isinstance(part, str) for part in contexts)
    ):
        raise malformed(where, f"contexts must be a non-empty list of strings, got {contexts!r}")
    return Record(
        id=make_id(NAME, pubid, question, decision),
        dataset=NAME,
        domain="healthcare",
        task=TASK,
        text=f"{question}\n\nContext: {' '.join(contexts)}",
        options=OPTIONS,
        label=OPTIONS.index(decision),
        label_text=decision,
        group="all",
        split=split,
        meta={"pubid": pubid, "question": question, "long_answer": long_answer},
    )


def load_local(folder: Path) -> list[Record]:
    """Every entry of ``ori_pqal.json``, in file order."""
    path = require_file(folder, FILENAME, NAME)
    data, text = read_json(path)
    lines = KeyLines(text)
    shown = f"{folder.name}/{FILENAME}"
    if not isinstance(data, dict):
        raise malformed(shown, f"expected a JSON object keyed by PubMed id, got {type(data).__name__}")
    records = []
    for pubid, entry in data.items():
        line = lines.line(pubid)
        where = f"{shown} line {line} (entry {pubid!r})" if line else f"{shown} (entry {pubid!r})"
        if not isinstance(entry, dict):
            raise malformed(where, "entry must be an object", str(entry))
        records.append(
            make_record(
                pubid,
                require_str(entry, "QUESTION", where),
                entry.get("CONTEXTS"),
                entry.get("final_decision"),
                entry.get("LONG_ANSWER"),
                where=where,
            )
        )
    require_rows(len(records), shown)
    return records


def hub_row_to_record(row: Mapping[str, Any], split: str, *, where: str = "hub row") -> Record:
    """One ``qiaojin/PubMedQA`` / ``pqa_labeled`` row as a record (``pubid`` is an int there)."""
    context = row.get("context")
    if not isinstance(context, Mapping):
        raise malformed(where, f"field 'context' must be an object with 'contexts', got {context!r}")
    return make_record(
        str(row.get("pubid")),
        require_str(row, "question", where),
        context.get("contexts"),
        row.get("final_decision"),
        row.get("long_answer"),
        split=split,
        where=where,
    )


def load_hub() -> list[Record]:
    """The 1,000 expert-labelled rows (needs network)."""
    return load_hub_records(SPEC, hub_row_to_record)


SPEC = DatasetSpec(
    name=NAME,
    domain="healthcare",
    task=TASK,
    options=OPTIONS,
    label_names=OPTIONS,
    hub_id="qiaojin/PubMedQA",
    hub_config="pqa_labeled",
    hub_splits=("train",),
    hub_train_split=None,
    hub_eval_split=None,
    local_folder="pubmedqa",
    local_files=(FILENAME,),
    group_field="none (every record is in group 'all')",
    offline_resplit_note=None,
    load_local=load_local,
    load_hub=load_hub,
    hub_row_to_record=hub_row_to_record,
    in_study=False,
)
