"""Bring your own data: a CSV, JSONL or Parquet file as a dataset of the study.

``fedlab run --data PATH`` with either

* ``--text-col`` and ``--label-col``: classification; the label set is read from the data (sorted,
  listed in the result) and the answer is the label word; or
* ``--question-col``, the options (``--option-cols A B C D``: one column per option, or
  ``--options-col``: one column holding a list) and ``--answer-col`` (a letter, a 0-based index or
  the option's text): multiple choice, answered with the option letter;

and optionally ``--client-col`` (each distinct value is one institution: a natural partition).

The file is read with :mod:`datasets` (``csv``, ``json`` for JSON Lines, ``parquet``) into the same
:class:`~fedlab.data.records.Record` as the built-in sets, so splits, prompts, evaluation, partitions
and result files are the same. The dataset's registry name is ``user-<hash>`` of the file's SHA-256
and the column choice: a changed file, or other columns, is a different dataset (and run). Every
problem is a :class:`~fedlab.errors.DataError` naming the file, the row and the fix; nothing is dropped.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from fedlab.errors import DataError

from .base import DatasetSpec, file_sha256
from .records import DOMAINS, MCQ_MAX_OPTIONS, Record, make_id

#: file suffix -> the ``datasets`` builder that reads it
FORMATS = {".csv": "csv", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}
#: rows a site (``--client-col`` value) needs to be a client: a few to train on and one to test
MIN_SITE_ROWS = 5
PREFIX = "user-"
LETTER_ANSWERS = "ABCDEFGH"


@dataclass(frozen=True)
class UserData:
    """Where a user dataset lives and how its columns map to records (part of a run's config)."""

    path: str
    sha256: str = ""
    text_col: str | None = None
    label_col: str | None = None
    question_col: str | None = None
    option_cols: tuple[str, ...] = ()
    options_col: str | None = None
    answer_col: str | None = None
    client_col: str | None = None
    domain: str = "custom"

    @property
    def kind(self) -> str:
        return "classification" if self.label_col else "mcq"

    @property
    def name(self) -> str:
        """Registry name: a hash of the content and of the column mapping (not of the path)."""
        mapping = {k: v for k, v in self.to_dict().items() if k != "path"}
        return PREFIX + hashlib.sha256(json.dumps(mapping, sort_keys=True).encode()).hexdigest()[:12]

    def to_dict(self) -> dict:
        data = asdict(self)
        data["option_cols"] = list(self.option_cols)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "UserData":
        data = dict(data)
        data["option_cols"] = tuple(data.get("option_cols") or ())
        return cls(**data)

    def check(self) -> "UserData":
        """Validate the column choice and the file; returns a copy carrying the file's SHA-256."""
        path = Path(self.path).expanduser()
        if not path.is_file():
            raise DataError(f"Data file {path} does not exist. Fix: pass the path of a CSV, JSONL or Parquet file to --data.")
        if path.suffix.lower() not in FORMATS:
            raise DataError(f"Data file {path}: unknown format {path.suffix!r}. Fix: use one of {sorted(FORMATS)}.")
        classification = self.text_col or self.label_col
        mcq = self.question_col or self.answer_col or self.option_cols or self.options_col
        if classification and mcq:
            raise DataError("Give either --text-col and --label-col (classification) or --question-col, "
                            "--option-cols/--options-col and --answer-col (multiple choice), not both.")
        if classification and not (self.text_col and self.label_col):
            raise DataError("Classification needs both --text-col and --label-col.")
        if not classification and not (self.question_col and self.answer_col and (self.option_cols or self.options_col)):
            raise DataError("Multiple choice needs --question-col, --answer-col and the options: --option-cols "
                            "(one column per option) or --options-col (a column holding a list). "
                            "For classification give --text-col and --label-col.")
        if self.option_cols and self.options_col:
            raise DataError("Give --option-cols or --options-col, not both.")
        if self.domain not in DOMAINS:
            raise DataError(f"Unknown domain {self.domain!r}. Fix: one of {DOMAINS}.")
        sha = file_sha256(path)
        if self.sha256 and self.sha256 != sha:
            raise DataError(f"Data file {path} has changed since this run was configured (SHA-256 {sha[:12]} instead of "
                            f"{self.sha256[:12]}): it is a different dataset. Fix: configure the run again from the file.")
        return UserData.from_dict(dict(self.to_dict(), path=str(path.resolve()), sha256=sha))


def read_rows(path: Path) -> list[dict]:
    """The file's rows as dicts, read with ``datasets`` (no caching to disk beside the file)."""
    from datasets import load_dataset
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    builder = FORMATS[path.suffix.lower()]
    try:
        table = load_dataset(builder, data_files=str(path), split="train", keep_in_memory=True)
    except Exception as exc:  # the datasets readers raise many types; the message is what matters
        raise DataError(f"Data file {path} could not be read as {builder}: {exc.__class__.__name__}: {exc}. "
                        f"Fix: check the file is valid {builder} (one JSON object per line for .jsonl).") from exc
    return table.to_list()


def _where(path: Path, i: int, builder: str) -> str:
    # row numbers as a user sees them in an editor: CSV counts its header line
    return f"{path.name}, {'line' if builder != 'parquet' else 'row'} {i + (2 if builder == 'csv' else 1)}"


def _text(row: dict, col: str, where: str, what: str) -> str:
    value = row.get(col)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DataError(f"{where}: empty {what} in column {col!r}. Fix: fill it in or remove the row "
                        f"(fedlab drops nothing silently).")
    return str(value).strip()


def _answer_index(value, options: tuple[str, ...], where: str, col: str) -> int:
    text = str(value).strip() if value is not None else ""
    if len(text) == 1 and text.upper() in LETTER_ANSWERS[: len(options)]:
        return LETTER_ANSWERS.index(text.upper())
    if text.isdigit() and int(text) < len(options):
        return int(text)
    if text in options:
        return options.index(text)
    raise DataError(f"{where}: answer {text!r} in column {col!r} is not an option letter "
                    f"({', '.join(LETTER_ANSWERS[: len(options)])}), a 0-based index or one of the options "
                    f"{list(options)}. Fix the answer.")


def load_user_records(user: UserData) -> tuple[list[Record], dict]:
    """Records of a user file, and what was read (label set, sites, row counts)."""
    path = Path(user.path)
    builder = FORMATS[path.suffix.lower()]
    rows = read_rows(path)
    if not rows:
        raise DataError(f"Data file {path} has no rows. Fix: pass a file with data.")
    columns = list(rows[0])
    wanted = [c for c in (user.text_col, user.label_col, user.question_col, user.answer_col, user.options_col,
                          user.client_col, *user.option_cols) if c]
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise DataError(f"Data file {path} has no column(s) {missing}; its columns are {columns}. "
                        f"Fix: pass the right names (--text-col, --label-col, ...).")
    name = user.name
    records, sites = [], Counter()
    if user.kind == "classification":
        labels = tuple(sorted({_text(r, user.label_col, _where(path, i, builder), "label") for i, r in enumerate(rows)}))
        if len(labels) < 2:
            raise DataError(f"Data file {path}: column {user.label_col!r} has one label only ({labels}). "
                            f"Fix: a classification needs at least two labels.")
    for i, row in enumerate(rows):
        where = _where(path, i, builder)
        site = _text(row, user.client_col, where, "site") if user.client_col else "all"
        sites[site] += 1
        if user.kind == "classification":
            text = _text(row, user.text_col, where, "text")
            label = labels.index(_text(row, user.label_col, where, "label"))
            options, task = labels, "label"
        else:
            text = _text(row, user.question_col, where, "question")
            if user.option_cols:
                options = tuple(_text(row, c, where, "option") for c in user.option_cols)
            else:
                value = row.get(user.options_col)
                if not isinstance(value, (list, tuple)) or not value:
                    raise DataError(f"{where}: column {user.options_col!r} must hold a list of options, got "
                                    f"{type(value).__name__}. Fix: store the options as a list, or use --option-cols.")
                options = tuple(str(o).strip() for o in value)
                if len(options) != len(records[0].options if records else options):
                    raise DataError(f"{where}: {len(options)} options where the first row has {len(records[0].options)}; "
                                    f"the option count varies. Fix: give every row the same number of options, "
                                    f"or name one column per option with --option-cols.")
            if not 2 <= len(options) <= MCQ_MAX_OPTIONS:
                raise DataError(f"{where}: {len(options)} options; fedlab scores 2 to {MCQ_MAX_OPTIONS}. Fix the options.")
            label = _answer_index(row.get(user.answer_col), options, where, user.answer_col)
            task = f"mcq{len(options)}"
        records.append(Record(make_id(name, text, *options), name, user.domain, task, text, options, label,
                              options[label], site, "train", {"row": i}))
    if user.client_col:
        small = {s: n for s, n in sites.items() if n < MIN_SITE_ROWS}
        if small:
            raise DataError(f"Data file {path}: site(s) {small} in column {user.client_col!r} have fewer than "
                            f"{MIN_SITE_ROWS} rows, too few to train on and test. Fix: merge them with another "
                            f"site or remove their rows.")
    info = {"kind": user.kind, "columns": columns, "n_rows_read": len(rows),
            "labels": list(records[0].options) if user.kind == "classification" else None,
            "sites": dict(sorted(sites.items())) if user.client_col else None}
    return records, info


def user_spec(user: UserData) -> DatasetSpec:
    """A registry entry for a user file (loaded from the file whatever the data source says)."""
    user = user.check()
    records, info = load_user_records(user)
    first = records[0]
    letters = tuple(LETTER_ANSWERS[: len(first.options)])

    def no_hub():
        raise DataError(f"Dataset {user.name} is a local file ({user.path}); it has no hub copy.")

    return DatasetSpec(
        name=user.name, domain=user.domain, task=first.task,
        options=first.options if user.kind == "classification" else None,
        label_names=first.options if user.kind == "classification" else letters,
        hub_id="", hub_config=None, hub_splits=(), hub_train_split=None, hub_eval_split=None,
        local_folder=str(Path(user.path).parent), local_files=(Path(user.path).name,),
        group_field=user.client_col or "none", offline_resplit_note=None,
        load_local=lambda _folder: list(records), load_hub=no_hub, hub_row_to_record=no_hub, in_study=False,
        user=dict(user.to_dict(), read=info),
    )


def user_data_of(spec: DatasetSpec) -> dict | None:
    """The :class:`UserData` dict a run config carries for a registered user file (None for built-ins)."""
    return {k: v for k, v in spec.user.items() if k != "read"} if spec.user else None
