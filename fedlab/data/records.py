"""The one normalized record type every dataset loader produces.

A :class:`Record` is source-independent: the loader of the original release files and the loader of
the Hugging Face hub copy of a dataset produce equal records (ids included) for the same example.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from fedlab.core.prompts import LETTERS, TASKS
from fedlab.errors import DataError

DOMAINS = ("finance", "healthcare", "custom")  # custom: a user's own file (fedlab.data.user)
SENTIMENT_OPTIONS = ("negative", "neutral", "positive")
MCQ_LETTERS = tuple(LETTERS[:4])
MCQ_MAX_OPTIONS = len(LETTERS)

_ID_SEPARATOR = "\x1f"  # ASCII unit separator: never part of the hashed texts


def make_id(dataset: str, *parts: str) -> str:
    """Stable record id: the first 16 hex chars of sha1 over the dataset name and defining texts.

    The parts are joined with an ASCII unit separator, so ``("ab", "c")`` and ``("a", "bc")`` hash
    differently. Each dataset module decides which texts define an example (for instance the FiQA
    headline *and* its target, so that several targets of one headline get distinct ids).
    """
    payload = _ID_SEPARATOR.join((dataset, *parts))
    return hashlib.sha1(payload.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Record:
    """One labelled example.

    Attributes:
        id: stable, source-independent id (see :func:`make_id`).
        dataset: registry name, e.g. ``"fpb"``.
        domain: ``"finance"`` or ``"healthcare"``.
        task: the prompt and answer format, one of :data:`fedlab.core.prompts.TASKS`.
        text: the model input: a sentence (sentiment) or a question (multiple choice).
        options: the answer options; ``("negative", "neutral", "positive")`` for sentiment, the
            option texts in A..D order for multiple choice.
        label: index of the gold answer in ``options``.
        label_text: ``options[label]``.
        group: natural partition key (FiQA ``"headline"``/``"post"``, MedMCQA subject, MedQA
            ``meta_info``, ``"all"`` where the dataset has none).
        split: the official split the example came from (``"train"``, ``"test"``, ``"validation"``).
        meta: extra fields of the source (FiQA target, MedMCQA choice type, ...); not part of
            equality or hashing.
    """

    id: str
    dataset: str
    domain: str
    task: str
    text: str
    options: tuple[str, ...]
    label: int
    label_text: str
    group: str
    split: str
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.domain not in DOMAINS:
            raise DataError(
                f"Record {self.id!r}: domain {self.domain!r} is not one of {DOMAINS}; fix the dataset's spec."
            )
        if self.task not in TASKS:
            raise DataError(
                f"Record {self.id!r}: task {self.task!r} is not one of {tuple(TASKS)}; fix the dataset's spec."
            )
        if not isinstance(self.label, int) or not 0 <= self.label < len(self.options):
            raise DataError(
                f"Record {self.id!r}: label {self.label!r} is not an index into its "
                f"{len(self.options)} options; fix the loader or the stored record."
            )
        if self.options[self.label] != self.label_text:
            raise DataError(
                f"Record {self.id!r}: label_text {self.label_text!r} differs from "
                f"options[{self.label}] = {self.options[self.label]!r}; fix the stored record."
            )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict (``options`` becomes a list)."""
        out = asdict(self)
        out["options"] = list(self.options)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Record:
        """Inverse of :meth:`to_dict`; ``meta`` is optional."""
        required = ("id", "dataset", "domain", "task", "text", "options", "label", "label_text", "group", "split")
        missing = [key for key in required if key not in data]
        if missing:
            raise DataError(f"Cannot build a Record: missing keys {missing}; pass a dict made by Record.to_dict().")
        return cls(
            id=data["id"],
            dataset=data["dataset"],
            domain=data["domain"],
            task=data["task"],
            text=data["text"],
            options=tuple(data["options"]),
            label=data["label"],
            label_text=data["label_text"],
            group=data["group"],
            split=data["split"],
            meta=dict(data.get("meta") or {}),
        )
