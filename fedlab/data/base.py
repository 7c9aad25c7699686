"""Shared pieces of the dataset modules: the spec type, data-dir resolution, strict file readers.

Every reader here raises :class:`~fedlab.errors.DataError` naming the file, the 1-based line and a
short excerpt of what it could not read, and says how to fix it. Nothing is skipped silently.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedlab import paths
from fedlab.errors import DataError

from .records import Record

DATA_DIR_ENV = paths.DATA_DIR_ENV

_RESTORE_HINT = "restore the original release file (see the data folder's README.md for its SHA-256)"
_RESTORE_SENTENCE = _RESTORE_HINT[0].upper() + _RESTORE_HINT[1:] + "."


@dataclass(frozen=True)
class DatasetSpec:
    """What the registry knows about one dataset.

    Attributes:
        name: registry name (``fpb``, ``fiqa_sa``, ``medqa``, ``medmcqa``, ``pubmedqa``).
        domain: ``"finance"`` or ``"healthcare"``.
        task: ``"sentiment3"``, ``"mcq4"`` or ``"mcq3"``.
        options: the fixed answer options, or ``None`` where every question has its own.
        label_names: names used in label counts (the options, or the letters ``A``..``D``).
        hub_id: Hugging Face hub dataset id; ``hub_config`` its config name (or ``None``).
        hub_splits: hub splits read by the hub loader, official evaluation split first (a row
            that occurs in both is kept in the evaluation split and counted as a duplicate in train).
        hub_train_split, hub_eval_split: the official train / evaluation splits on the hub, or
            ``None`` where the dataset has no official split (then one seeded split is carved).
        local_folder: folder under the data dir holding the original files.
        local_files: the original files the local loader reads.
        group_field: what the natural partition key (``Record.group``) is.
        offline_resplit_note: set where the local copy lacks the official train split, so that
            the training pool and eval set are both carved out of the one split that is there.
        load_local: reads the original files from the dataset's folder.
        load_hub: reads the hub copy (needs network).
        hub_row_to_record: converts one hub row (and its split name) into a :class:`Record`.
        in_study: whether the dataset is one of the study's benchmarks (default grids, reports).
    """

    name: str
    domain: str
    task: str
    options: tuple[str, ...] | None
    label_names: tuple[str, ...]
    hub_id: str
    hub_config: str | None
    hub_splits: tuple[str, ...]
    hub_train_split: str | None
    hub_eval_split: str | None
    local_folder: str
    local_files: tuple[str, ...]
    group_field: str
    offline_resplit_note: str | None
    load_local: Callable[[Path], list[Record]] = field(repr=False)
    load_hub: Callable[[], list[Record]] = field(repr=False)
    hub_row_to_record: Callable[..., Record] = field(repr=False)
    in_study: bool = True  # one of the study's four benchmarks (False: an extra, e.g. PubMedQA)
    user: dict | None = None  # a user's own file (fedlab.data.user): path, SHA-256, columns, labels, sites

    @property
    def primary_metric(self) -> str:
        """What verdicts are decided on: macro-F1 for sentiment (imbalanced classes, where a model that
        always answers the majority class scores a high accuracy) and any classification by label word,
        accuracy for multiple choice."""
        return "accuracy" if self.task.startswith("mcq") else "macro_f1"


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The data root: ``data_dir`` if given, else ``$FEDLAB_DATA_DIR``, else ``<repo>/data/raw``.

    Relative paths are taken relative to the current working directory. The folder is not
    required to exist (see :func:`require_data_dir`).
    """
    if data_dir is not None:
        return Path(data_dir).expanduser()
    return paths.data_dir()


def require_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """:func:`resolve_data_dir`, raising a DataError with the fix if the folder does not exist."""
    root = resolve_data_dir(data_dir)
    if not root.is_dir():
        raise DataError(
            f"Data folder {str(root.absolute())!r} does not exist. Point fedlab at the original "
            f"release files: set {DATA_DIR_ENV}=../shared/data (relative to the working directory), "
            "or pass data_dir=..., or use source='hub' on a machine with network access."
        )
    return root


def dataset_folder(root: Path, spec: DatasetSpec) -> Path:
    """The dataset's folder under the data root (must exist)."""
    folder = root / spec.local_folder
    if not folder.is_dir():
        raise DataError(
            f"Dataset {spec.name!r}: folder {str(folder.absolute())!r} does not exist under the data "
            f"folder {str(root.absolute())!r}. It must hold {', '.join(spec.local_files)}; copy the "
            f"original release files there, or set {DATA_DIR_ENV} to the folder that has a "
            f"{spec.local_folder}/ subfolder."
        )
    return folder


def require_file(folder: Path, filename: str, dataset: str) -> Path:
    """``folder / filename``, raising a DataError naming the file and the folder if it is missing."""
    path = folder / filename
    if not path.is_file():
        raise DataError(
            f"Dataset {dataset!r}: expected file {filename!r} is missing from {str(folder.absolute())!r}. "
            "Copy the original release file there (the data folder's README.md lists its SHA-256), "
            f"or point {DATA_DIR_ENV} at a folder that has it."
        )
    return path


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes (recorded in the load info, to pin the data version)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def excerpt(text: str, width: int = 80) -> str:
    """A one-line, shortened ``repr`` of ``text`` for error messages."""
    text = text.strip()
    return repr(text if len(text) <= width else text[: width - 3] + "...")


def where_line(path: Path, line_no: int) -> str:
    """``'<folder>/<file> line N'``: the location prefix of local error messages."""
    return f"{path.parent.name}/{path.name} line {line_no}"


def read_lines(path: Path, encoding: str) -> list[tuple[int, str]]:
    """The lines of a text file as ``(1-based line number, line)``, without line terminators.

    Accepts CRLF and LF endings and one final line terminator. A blank line is malformed (it is
    not a row, and silently skipping it could hide a truncated or concatenated file).
    """
    raw = path.read_bytes()
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line_no = raw[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{where_line(path, line_no)}: bytes are not valid {encoding} ({exc.reason}). "
            f"The file is damaged or re-encoded; {_RESTORE_HINT}."
        ) from exc
    parts = text.split("\n")
    if parts and parts[-1] == "":
        parts.pop()  # the terminator of the last line
    lines = []
    for line_no, line in enumerate(parts, start=1):
        line = line[:-1] if line.endswith("\r") else line
        if not line.strip():
            raise DataError(
                f"{where_line(path, line_no)}: blank line in a one-row-per-line file. "
                f"Remove the blank line or {_RESTORE_HINT}."
            )
        lines.append((line_no, line))
    return lines


def read_json_lines(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """A JSON-lines file as ``(1-based line number, object)``; every line must be a JSON object."""
    rows = []
    for line_no, line in read_lines(path, "utf-8"):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{where_line(path, line_no)}: not valid JSON ({exc.msg} at column {exc.colno}): "
                f"{excerpt(line)}. Each line must be one JSON object; {_RESTORE_HINT}."
            ) from exc
        if not isinstance(obj, dict):
            raise DataError(
                f"{where_line(path, line_no)}: expected a JSON object, got {type(obj).__name__}: "
                f"{excerpt(line)}. {_RESTORE_SENTENCE}"
            )
        rows.append((line_no, obj))
    return rows


def read_json(path: Path) -> tuple[Any, str]:
    """A whole-file JSON document and its text (the text lets callers report line numbers)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path.parent.name}/{path.name}: bytes are not valid UTF-8 ({exc.reason}); {_RESTORE_HINT}."
        ) from exc
    try:
        return json.loads(text), text
    except json.JSONDecodeError as exc:
        bad_line = text.splitlines()[exc.lineno - 1] if text.strip() else ""
        raise DataError(
            f"{where_line(path, exc.lineno)}: not valid JSON ({exc.msg} at column {exc.colno}): "
            f"{excerpt(bad_line)}. {_RESTORE_SENTENCE}"
        ) from exc


class KeyLines:
    """1-based line numbers of the keys of a JSON object text, looked up in file order.

    Each lookup searches from the previous hit, so locating every key of a file costs one pass.
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._pos = 0
        self._line = 1

    def line(self, key: str) -> int | None:
        """Line of the next ``"key":`` at or after the previous hit (``None`` if absent)."""
        pos = self._text.find(json.dumps(key, ensure_ascii=False) + ":", self._pos)
        if pos < 0:
            return None
        self._line += self._text.count("\n", self._pos, pos)
        self._pos = pos
        return self._line


def require_rows(count: int, where: str) -> None:
    """Raise the empty-result DataError if a file or hub split produced no rows."""
    if count == 0:
        raise DataError(
            f"{where}: no rows. The file or split is empty or truncated; {_RESTORE_HINT}, "
            "or check the hub dataset id and split names."
        )


def unknown_label(where: str, seen: Any, allowed: Iterable[Any]) -> DataError:
    """The DataError for a label outside the allowed set."""
    return DataError(
        f"{where}: unknown label {seen!r}; allowed: {', '.join(repr(a) for a in allowed)}. "
        f"Correct the label or {_RESTORE_HINT}."
    )


def malformed(where: str, problem: str, text: str | None = None) -> DataError:
    """The DataError for a row that cannot be read (with an excerpt of it when there is one)."""
    shown = f": {excerpt(text)}" if text is not None else ""
    return DataError(f"{where}: {problem}{shown}. Fix the row or {_RESTORE_HINT}.")


def require_str(row: Mapping[str, Any], key: str, where: str) -> str:
    """``row[key]`` as a non-empty string, or a DataError naming the field."""
    value = row.get(key)
    if not isinstance(value, str) or not value.strip():
        raise malformed(where, f"field {key!r} must be a non-empty string, got {value!r}")
    return value


def load_hub_records(spec: DatasetSpec, convert: Callable[..., Record]) -> list[Record]:
    """Read ``spec.hub_splits`` with :func:`datasets.load_dataset` and convert every row.

    Needs network access (or a warm Hugging Face cache). ``convert(row, split, where=...)`` turns
    one row into a :class:`Record`; ``where`` names the hub id, split and row index for errors.
    """
    from datasets import load_dataset

    records: list[Record] = []
    for split in spec.hub_splits:
        try:
            rows = load_dataset(spec.hub_id, spec.hub_config, split=split)
        except Exception as exc:  # network, auth and hub errors all get the same remedy
            raise DataError(
                f"Dataset {spec.name!r}: could not load split {split!r} of {spec.hub_id!r}"
                f"{f' (config {spec.hub_config!r})' if spec.hub_config else ''} from the Hugging Face "
                f"hub ({type(exc).__name__}: {exc}). Check network access and HF_TOKEN, or use "
                f"source='local' with {DATA_DIR_ENV} pointing at the original release files."
            ) from exc
        count = 0
        for index, row in enumerate(rows):
            records.append(convert(row, split, where=f"{spec.hub_id} split {split!r} row {index}"))
            count += 1
        require_rows(count, f"{spec.hub_id} split {split!r}")
    return records
