"""Financial PhraseBank v1.0 (Malo et al. 2014), ``sentences_50agree``: 3-way sentence sentiment.

Local: ``fpb/Sentences_50Agree.txt``, one ``sentence@label`` per line, ISO-8859-1, CRLF; the
sentence is everything before the LAST ``@``. Hub: ``takala/financial_phrasebank`` config
``sentences_50agree`` (columns ``sentence``, ``label`` with 0=negative, 1=neutral, 2=positive), a
single ``train`` split. There is no official train/test split. The file has 6 exact duplicate lines
(dropped and counted by :func:`fedlab.data.load_records`) and 2 sentences that occur with two
different labels (kept: different ids, reported as ``conflicting_labels``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..base import (
    DatasetSpec,
    load_hub_records,
    malformed,
    read_lines,
    require_file,
    require_rows,
    unknown_label,
    where_line,
)
from ..records import SENTIMENT_OPTIONS, Record, make_id

NAME = "fpb"
TASK = "sentiment3"
FILENAME = "Sentences_50Agree.txt"
ENCODING = "latin-1"
SPLIT = "train"  # the hub's only split; the release has no official split


def make_record(sentence: str, label_text: str, *, split: str = SPLIT, where: str) -> Record:
    """The record of one sentence; the label word must be one of negative/neutral/positive.

    The id hashes the sentence *and* its label: two sentences of the release carry two different
    labels, and each (sentence, label) line is its own example.
    """
    if label_text not in SENTIMENT_OPTIONS:
        raise unknown_label(where, label_text, SENTIMENT_OPTIONS)
    if not sentence.strip():
        raise malformed(where, "empty sentence", sentence + "@" + label_text)
    return Record(
        id=make_id(NAME, sentence, label_text),
        dataset=NAME,
        domain="finance",
        task=TASK,
        text=sentence,
        options=SENTIMENT_OPTIONS,
        label=SENTIMENT_OPTIONS.index(label_text),
        label_text=label_text,
        group="all",
        split=split,
    )


def load_local(folder: Path) -> list[Record]:
    """Every line of ``Sentences_50Agree.txt`` as a record, in file order (duplicates included)."""
    path = require_file(folder, FILENAME, NAME)
    records = []
    for line_no, line in read_lines(path, ENCODING):
        where = where_line(path, line_no)
        if "@" not in line:
            raise malformed(where, "no '@' separating sentence and label", line)
        sentence, label_text = line.rsplit("@", 1)
        records.append(make_record(sentence, label_text.strip(), where=where))
    require_rows(len(records), f"{folder.name}/{FILENAME}")
    return records


def hub_row_to_record(row: Mapping[str, Any], split: str, *, where: str = "hub row") -> Record:
    """One ``takala/financial_phrasebank`` row (``sentence``, int ``label``) as a record."""
    label = row.get("label")
    if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label < len(SENTIMENT_OPTIONS):
        raise unknown_label(where, label, range(len(SENTIMENT_OPTIONS)))
    sentence = row.get("sentence")
    if not isinstance(sentence, str):
        raise malformed(where, f"field 'sentence' must be a string, got {sentence!r}")
    return make_record(sentence, SENTIMENT_OPTIONS[label], split=split, where=where)


def load_hub() -> list[Record]:
    """All rows of ``takala/financial_phrasebank`` / ``sentences_50agree`` (needs network)."""
    return load_hub_records(SPEC, hub_row_to_record)


SPEC = DatasetSpec(
    name=NAME,
    domain="finance",
    task=TASK,
    options=SENTIMENT_OPTIONS,
    label_names=SENTIMENT_OPTIONS,
    hub_id="takala/financial_phrasebank",
    hub_config="sentences_50agree",
    hub_splits=("train",),
    hub_train_split=None,
    hub_eval_split=None,
    local_folder="fpb",
    local_files=(FILENAME,),
    group_field="none (every record is in group 'all')",
    offline_resplit_note=None,
    load_local=load_local,
    load_hub=load_hub,
    hub_row_to_record=hub_row_to_record,
)
