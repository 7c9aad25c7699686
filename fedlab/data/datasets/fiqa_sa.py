"""FiQA 2018 Task 1, aspect-based financial sentiment (Maia et al. 2018), as 3-way sentiment.

Local: ``fiqa_sa/task1_{headline,post}_ABSA_train.json``, each a JSON object keyed by entry id:
``{"sentence", "info": [{"snippets", "target", "sentiment_score", "aspects"}]}``. One record per
info item (a headline can hold several targets, each its own labelled instance); the ``*_test.json``
files carry no labels and are not read. Hub: ``TheFinAI/fiqa-sentiment-classification`` (columns
``_id``, ``sentence``, ``target``, ``aspect``, float ``score``, ``type`` = headline/post), a random
re-split (train/valid/test: 822/117/234) of the same 1,173 labelled instances; all three splits are
pooled, and ``Record.split`` is ``"train"`` for every record (the challenge split they all come
from), the hub split being kept in ``meta["hub_split"]``.

Score to label: ``score < -0.1`` negative, ``score > 0.1`` positive, otherwise neutral (the ±0.1
band, bounds included, is neutral), as in FinGPT and FlowerTune.
"""

from __future__ import annotations

from collections.abc import Mapping
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
)
from ..records import SENTIMENT_OPTIONS, Record, make_id

NAME = "fiqa_sa"
TASK = "sentiment3"
GROUPS = ("headline", "post")
FILES = {group: f"task1_{group}_ABSA_train.json" for group in GROUPS}
SPLIT = "train"  # the 2018 challenge's labelled split; its test files have no labels
NEUTRAL_BAND = 0.1


def score_to_label(score: float) -> str:
    """``negative`` below -0.1, ``positive`` above 0.1, ``neutral`` in [-0.1, 0.1]."""
    if score < -NEUTRAL_BAND:
        return "negative"
    if score > NEUTRAL_BAND:
        return "positive"
    return "neutral"


def _parse_score(value: Any, where: str) -> float:
    if isinstance(value, bool):
        raise malformed(where, f"sentiment score must be a number in [-1, 1], got {value!r}")
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise malformed(where, f"sentiment score must be a number in [-1, 1], got {value!r}") from None
    if not -1.0 <= score <= 1.0:
        raise malformed(where, f"sentiment score must be a number in [-1, 1], got {value!r}")
    return score


def make_record(
    sentence: str, target: str, score: Any, group: str, aspects: Any, *, meta: dict[str, Any], where: str
) -> Record:
    """The record of one (sentence, target) instance; the id hashes sentence, target and label."""
    if group not in GROUPS:
        raise malformed(where, f"format/type must be one of {GROUPS}, got {group!r}")
    value = _parse_score(score, where)
    label_text = score_to_label(value)
    return Record(
        id=make_id(NAME, sentence, target, label_text),
        dataset=NAME,
        domain="finance",
        task=TASK,
        text=sentence,
        options=SENTIMENT_OPTIONS,
        label=SENTIMENT_OPTIONS.index(label_text),
        label_text=label_text,
        group=group,
        split=SPLIT,
        meta={"target": target, "score": value, "aspects": aspects, **meta},
    )


def _load_file(path: Path, group: str) -> list[Record]:
    data, text = read_json(path)
    lines = KeyLines(text)
    shown = f"{path.parent.name}/{path.name}"
    if not isinstance(data, dict):
        raise malformed(shown, f"expected a JSON object keyed by entry id, got {type(data).__name__}")
    records = []
    for key, entry in data.items():
        line = lines.line(key)
        where = f"{shown} line {line} (entry {key!r})" if line else f"{shown} (entry {key!r})"
        if not isinstance(entry, dict) or not isinstance(entry.get("info"), list) or not entry["info"]:
            raise malformed(where, "an entry needs 'sentence' and a non-empty 'info' list", str(entry))
        sentence = require_str(entry, "sentence", where)
        for index, item in enumerate(entry["info"]):
            item_where = f"{where}, info item {index}"
            if not isinstance(item, dict):
                raise malformed(item_where, "info item must be an object", str(item))
            records.append(
                make_record(
                    sentence,
                    require_str(item, "target", item_where),
                    item.get("sentiment_score"),
                    group,
                    item.get("aspects"),
                    meta={"entry": key},
                    where=item_where,
                )
            )
    require_rows(len(records), shown)
    return records


def load_local(folder: Path) -> list[Record]:
    """All labelled instances: headline file, then post file, in file order (both must exist)."""
    paths = {group: require_file(folder, FILES[group], NAME) for group in GROUPS}
    return [record for group in GROUPS for record in _load_file(paths[group], group)]


def hub_row_to_record(row: Mapping[str, Any], split: str, *, where: str = "hub row") -> Record:
    """One ``TheFinAI/fiqa-sentiment-classification`` row as a record (``split`` goes to meta)."""
    return make_record(
        require_str(row, "sentence", where),
        require_str(row, "target", where),
        row.get("score"),
        row.get("type"),
        row.get("aspect"),
        meta={"hub_split": split, "hub_id": row.get("_id")},
        where=where,
    )


def load_hub() -> list[Record]:
    """All three hub splits, pooled (needs network)."""
    return load_hub_records(SPEC, hub_row_to_record)


SPEC = DatasetSpec(
    name=NAME,
    domain="finance",
    task=TASK,
    options=SENTIMENT_OPTIONS,
    label_names=SENTIMENT_OPTIONS,
    hub_id="TheFinAI/fiqa-sentiment-classification",
    hub_config=None,
    hub_splits=("train", "valid", "test"),
    hub_train_split=None,
    hub_eval_split=None,
    local_folder="fiqa_sa",
    local_files=tuple(FILES.values()),
    group_field="text format: 'headline' (news headline) or 'post' (microblog post)",
    offline_resplit_note=None,
    load_local=load_local,
    load_hub=load_hub,
    hub_row_to_record=hub_row_to_record,
)
