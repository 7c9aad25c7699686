"""Bring your own data: a CSV, TSV, JSONL, Parquet or Excel (.xlsx) file as a dataset of the study.

``fedlab run --data PATH`` with either

* ``--text-col`` and ``--label-col``: classification; the label set is read from the data (sorted,
  listed in the result) and the answer is the label word; or
* ``--question-col``, the options (``--option-cols A B C D``: one column per option, or
  ``--options-col``: one column holding a list) and ``--answer-col`` (a letter, a 0-based index or
  the option's text): multiple choice, answered with the option letter;

and optionally ``--client-col`` (each distinct value is one institution: a natural partition).

The file is read with :mod:`datasets` (``csv`` for .csv and .tsv, ``json`` for JSON Lines, ``parquet``)
or, for .xlsx, with :func:`pandas.read_excel` (first sheet, openpyxl) into the same
:class:`~fedlab.data.records.Record` as the built-in sets, so splits, prompts, evaluation, partitions
and result files are the same.

Files as institutions export them: text files are read as UTF-8 with an optional byte-order mark
(``utf-8-sig``) unless ``--encoding`` names another encoding, and a file that does not decode is an
error naming the byte offset and the fix. A CSV's delimiter (``,`` ``;`` tab or ``|``: a European
spreadsheet writes ``;``) is detected with :class:`csv.Sniffer` unless ``--delimiter`` names it; a
.tsv is tab-separated. What was used is reported (``read``: ``format``, ``delimiter``, ``encoding``).

The dataset's registry name is ``user-<hash>`` of the file's SHA-256 (of its bytes, whatever the
format) and the column choice (with an explicit ``--delimiter`` / ``--encoding``, which change what is
read): a changed file, or other columns, is a different dataset (and run). Every problem is a
:class:`~fedlab.errors.DataError` naming the file, the row and the fix; nothing is dropped.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import math
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from fedlab.errors import DataError

from .base import DatasetSpec, file_sha256
from .records import DOMAINS, MCQ_MAX_OPTIONS, Record, make_id

#: file suffix -> the reader: a ``datasets`` builder (csv, json, parquet) or ``excel`` (pandas + openpyxl)
FORMATS = {".csv": "csv", ".tsv": "csv", ".jsonl": "json", ".json": "json", ".parquet": "parquet", ".xlsx": "excel"}
#: the delimiters a CSV is sniffed for (the first is the fallback when the sample is ambiguous)
DELIMITERS = (",", ";", "\t", "|")
#: names --delimiter accepts besides the character itself (a shell passes '\t' as two characters)
DELIMITER_NAMES = {"\\t": "\t", "tab": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
#: text files are read as UTF-8, a byte-order mark (Excel's "CSV UTF-8") stripped
DEFAULT_ENCODING = "utf-8-sig"
#: bytes of a CSV the delimiter is sniffed from
SNIFF_BYTES = 64 * 1024
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
    #: CSV/TSV delimiter (None = a .tsv's tab, or sniffed from a .csv); part of the name when given
    delimiter: str | None = None
    #: text encoding (None = UTF-8 with or without a byte-order mark); part of the name when given
    encoding: str | None = None

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
        for key in ("delimiter", "encoding"):  # absent while unset: names (and run hashes) made before are unchanged
            if data[key] is None:
                del data[key]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> UserData:
        data = dict(data)
        data["option_cols"] = tuple(data.get("option_cols") or ())
        return cls(**data)

    def check(self) -> UserData:
        """Validate the column choice and the file; returns a copy carrying the file's SHA-256."""
        path = Path(self.path).expanduser()
        if not path.is_file():
            raise DataError(
                f"Data file {path} does not exist. Fix: pass the path of a CSV, TSV, JSONL, Parquet or .xlsx "
                f"file to --data."
            )
        suffix = path.suffix.lower()
        if suffix not in FORMATS:
            hint = " (save it as .xlsx or CSV)" if suffix in (".xls", ".ods", ".numbers") else ""
            raise DataError(
                f"Data file {path}: unknown format {path.suffix!r}. Fix: use one of {sorted(FORMATS)}{hint}."
            )
        delimiter, encoding = _delimiter(self.delimiter), _encoding(self.encoding)
        if delimiter is not None and FORMATS[suffix] != "csv":
            raise DataError(
                f"--delimiter {self.delimiter!r} applies to CSV and TSV files; {path.name} is "
                f"{FORMATS[suffix]}. Fix: leave --delimiter out."
            )
        if encoding is not None and FORMATS[suffix] not in ("csv", "json"):
            raise DataError(
                f"--encoding {self.encoding!r} applies to text files (CSV, TSV, JSON Lines); {path.name} "
                f"is {FORMATS[suffix]}, which has its own. Fix: leave --encoding out."
            )
        classification = self.text_col or self.label_col
        mcq = self.question_col or self.answer_col or self.option_cols or self.options_col
        if classification and mcq:
            raise DataError(
                "Give either --text-col and --label-col (classification) or --question-col, "
                "--option-cols/--options-col and --answer-col (multiple choice), not both."
            )
        if classification and not (self.text_col and self.label_col):
            raise DataError("Classification needs both --text-col and --label-col.")
        if not classification and not (
            self.question_col and self.answer_col and (self.option_cols or self.options_col)
        ):
            raise DataError(
                "Multiple choice needs --question-col, --answer-col and the options: --option-cols "
                "(one column per option) or --options-col (a column holding a list). "
                "For classification give --text-col and --label-col."
            )
        if self.option_cols and self.options_col:
            raise DataError("Give --option-cols or --options-col, not both.")
        if self.domain not in DOMAINS:
            raise DataError(f"Unknown domain {self.domain!r}. Fix: one of {DOMAINS}.")
        sha = file_sha256(path)
        if self.sha256 and self.sha256 != sha:
            raise DataError(
                f"Data file {path} has changed since this run was configured (SHA-256 {sha[:12]} instead of "
                f"{self.sha256[:12]}): it is a different dataset. Fix: configure the run again from the file."
            )
        return UserData.from_dict(
            dict(self.to_dict(), path=str(path.resolve()), sha256=sha, delimiter=delimiter, encoding=encoding)
        )


def _delimiter(value: str | None) -> str | None:
    """``--delimiter`` as one character (``\\t`` and ``tab`` are a tab), or None for "detect"."""
    if value is None or value == "":
        return None
    value = DELIMITER_NAMES.get(value.lower() if len(value) > 1 else value, value)
    if len(value) != 1 or value in '"\r\n':
        raise DataError(
            f"--delimiter {value!r} is not one character other than a quote or a line break. Fix: e.g. "
            f"--delimiter ';' or --delimiter tab, or leave it out to detect one of {list(DELIMITERS)}."
        )
    return value


def _encoding(value: str | None) -> str | None:
    """``--encoding`` as Python's codec name, or None for the default (UTF-8, with or without a BOM)."""
    if value is None or value == "":
        return None
    try:
        name = codecs.lookup(value).name
    except LookupError as exc:
        raise DataError(
            f"Unknown encoding {value!r}. Fix: a Python codec name such as utf-8, cp1252, latin-1 or utf-16."
        ) from exc
    return None if name in ("utf-8", "utf-8-sig") else name


def decode_text(path: Path, encoding: str | None = None, data: bytes | None = None) -> str:
    """The text of a file (``data``: its bytes, if read already), or a DataError naming where it stops being
    valid ``encoding`` and the fix."""
    data = path.read_bytes() if data is None else data
    enc = encoding or DEFAULT_ENCODING
    try:
        return data.decode(enc)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        bad = data[exc.start : exc.end].hex(" ")
        shown = "UTF-8" if encoding is None else enc
        fix = (
            "Fix: re-export the file as UTF-8 (e.g. Excel: Save As > CSV UTF-8), or name the encoding it was "
            "written in with --encoding (e.g. --encoding cp1252 for Windows Western Europe, latin-1)."
            if encoding is None
            else "Fix: name the encoding the file was written in with --encoding, or re-export it as UTF-8 and "
            "leave --encoding out."
        )
        raise DataError(
            f"Data file {path} is not valid {shown}: byte(s) {bad} at byte offset {exc.start} "
            f"(line {line}) cannot be decoded ({exc.reason}). {fix}"
        ) from exc


def _field_counts(sample: str, delimiter: str, whole: bool) -> set[int]:
    rows = list(csv.reader(io.StringIO(sample), delimiter=delimiter))
    if not whole:
        rows = rows[:-1]  # the sample may end inside a quoted field
    return {len(r) for r in rows if r}


def sniff_delimiter(text: str) -> str:
    """The delimiter of a CSV text, one of :data:`DELIMITERS`: :class:`csv.Sniffer`'s guess over a sample,
    kept when it splits every sampled line (the header included) into the same number (> 1) of fields;
    else the first candidate that does (a ``;`` file whose rows hold decimal commas such as ``3,5``
    fools the sniffer, not this check); else the sniffer's guess, else the header's most frequent, else ``,``."""
    whole = len(text) <= SNIFF_BYTES
    sample = text[:SNIFF_BYTES]
    if not whole and "\n" in sample:
        sample = sample[: sample.rindex("\n") + 1]  # whole lines only
    try:
        found = csv.Sniffer().sniff(sample, delimiters="".join(DELIMITERS)).delimiter
    except csv.Error:
        found = None
    consistent = [d for d in DELIMITERS if len(counts := _field_counts(sample, d, whole)) == 1 and counts.pop() > 1]
    if found in consistent or (found in DELIMITERS and not consistent):
        return found
    if consistent:
        return consistent[0]
    header = sample.splitlines()[0] if sample.strip() else ""
    best = max(DELIMITERS, key=header.count)  # ties: the earlier (',' first)
    return best if header.count(best) else DELIMITERS[0]


def _read_excel(path: Path) -> tuple[list[dict], dict]:
    try:
        with pd.ExcelFile(path, engine="openpyxl") as book:
            sheets = list(book.sheet_names)
            frame = pd.read_excel(book, sheet_name=0, dtype=object)  # the first sheet, cells as stored
    except ImportError as exc:
        raise DataError(
            f"Reading {path.name} needs openpyxl. Fix: pip install openpyxl (it is in requirements.txt), "
            f"or export the sheet as CSV."
        ) from exc
    except Exception as exc:  # zip, XML and openpyxl errors: the message is what matters
        raise DataError(
            f"Data file {path} could not be read as an Excel workbook: {exc.__class__.__name__}: {exc}. "
            f"Fix: check it is an .xlsx file (not a renamed .xls or CSV), or export the sheet as CSV."
        ) from exc

    def cell(value):
        if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
            return None
        return value

    columns = [str(c) for c in frame.columns]
    rows = [{c: cell(v) for c, v in zip(columns, values)} for values in frame.itertuples(index=False, name=None)]
    return rows, {"format": "xlsx", "sheet": sheets[0], "n_sheets": len(sheets)}


def read_rows(
    path: Path, *, delimiter: str | None = None, encoding: str | None = None, details: dict | None = None
) -> list[dict]:
    """The file's rows as dicts, read with ``datasets`` (no caching to disk beside the file) or, for .xlsx,
    pandas. ``details`` (if given) is filled with how the file was read: format, delimiter, encoding."""
    builder = FORMATS[path.suffix.lower()]
    details = {} if details is None else details
    if builder == "excel":
        rows, how = _read_excel(path)
        details.update(how)
        return rows
    from datasets import load_dataset
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    delimiter, encoding = _delimiter(delimiter), _encoding(encoding)
    kwargs: dict = {}
    if builder in ("csv", "json"):
        data = path.read_bytes()
        text = decode_text(path, encoding, data)  # a clear error (byte offset, fix) before a reader's own
        bom = encoding is None and data.startswith(codecs.BOM_UTF8)
        if builder == "csv":
            tsv = path.suffix.lower() == ".tsv"
            details["delimiter_detected"] = delimiter is None and not tsv
            if delimiter is None:
                delimiter = "\t" if tsv else sniff_delimiter(text.lstrip("\ufeff"))
            kwargs.update(sep=delimiter, encoding=encoding or DEFAULT_ENCODING)
            details["delimiter"] = delimiter
        elif encoding is not None or bom:
            kwargs.update(encoding=encoding or DEFAULT_ENCODING)
        details.update(encoding=encoding or "utf-8", bom=bom)
    details["format"] = path.suffix.lower().lstrip(".")
    try:
        table = load_dataset(builder, data_files=str(path), split="train", keep_in_memory=True, **kwargs)
    except Exception as exc:  # the datasets readers raise many types; the message is what matters
        how = f" with delimiter {delimiter!r}" if builder == "csv" else ""
        fix = (
            " (or name the delimiter with --delimiter)"
            if builder == "csv"
            else " (one JSON object per line for .jsonl)"
            if builder == "json"
            else ""
        )
        raise DataError(
            f"Data file {path} could not be read as {builder}{how}: {exc.__class__.__name__}: {exc}. "
            f"Fix: check the file is valid {builder}{fix}."
        ) from exc
    return table.to_list()


def _where(path: Path, i: int, builder: str) -> str:
    # row numbers as a user sees them in an editor or a spreadsheet: CSV and Excel count their header line
    return f"{path.name}, {'line' if builder in ('csv', 'json') else 'row'} {i + (2 if builder in ('csv', 'excel') else 1)}"


def _text(row: dict, col: str, where: str, what: str) -> str:
    value = row.get(col)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DataError(
            f"{where}: empty {what} in column {col!r}. Fix: fill it in or remove the row "
            f"(fedlab drops nothing silently)."
        )
    return str(value).strip()


def _answer_index(value, options: tuple[str, ...], where: str, col: str) -> int:
    text = str(value).strip() if value is not None else ""
    if len(text) == 1 and text.upper() in LETTER_ANSWERS[: len(options)]:
        return LETTER_ANSWERS.index(text.upper())
    if text.isdigit() and int(text) < len(options):
        return int(text)
    if text in options:
        return options.index(text)
    raise DataError(
        f"{where}: answer {text!r} in column {col!r} is not an option letter "
        f"({', '.join(LETTER_ANSWERS[: len(options)])}), a 0-based index or one of the options "
        f"{list(options)}. Fix the answer."
    )


def load_user_records(user: UserData) -> tuple[list[Record], dict]:
    """Records of a user file, and what was read (label set, sites, row counts)."""
    path = Path(user.path)
    builder = FORMATS[path.suffix.lower()]
    how: dict = {}
    rows = read_rows(path, delimiter=user.delimiter, encoding=user.encoding, details=how)
    if not rows:
        raise DataError(f"Data file {path} has no rows. Fix: pass a file with data.")
    columns = list(rows[0])
    wanted = [
        c
        for c in (
            user.text_col,
            user.label_col,
            user.question_col,
            user.answer_col,
            user.options_col,
            user.client_col,
            *user.option_cols,
        )
        if c
    ]
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise DataError(
            f"Data file {path} has no column(s) {missing}; its columns are {columns}. "
            f"Fix: pass the right names (--text-col, --label-col, ...)."
        )
    name = user.name
    records, sites = [], Counter()
    if user.kind == "classification":
        labels = tuple(
            sorted({_text(r, user.label_col, _where(path, i, builder), "label") for i, r in enumerate(rows)})
        )
        if len(labels) < 2:
            raise DataError(
                f"Data file {path}: column {user.label_col!r} has one label only ({labels}). "
                f"Fix: a classification needs at least two labels."
            )
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
                    raise DataError(
                        f"{where}: column {user.options_col!r} must hold a list of options, got "
                        f"{type(value).__name__}. Fix: store the options as a list, or use --option-cols."
                    )
                options = tuple(str(o).strip() for o in value)
                if len(options) != len(records[0].options if records else options):
                    raise DataError(
                        f"{where}: {len(options)} options where the first row has {len(records[0].options)}; "
                        f"the option count varies. Fix: give every row the same number of options, "
                        f"or name one column per option with --option-cols."
                    )
            if not 2 <= len(options) <= MCQ_MAX_OPTIONS:
                raise DataError(
                    f"{where}: {len(options)} options; fedlab scores 2 to {MCQ_MAX_OPTIONS}. Fix the options."
                )
            label = _answer_index(row.get(user.answer_col), options, where, user.answer_col)
            task = f"mcq{len(options)}"
        records.append(
            Record(
                make_id(name, text, *options),
                name,
                user.domain,
                task,
                text,
                options,
                label,
                options[label],
                site,
                "train",
                {"row": i},
            )
        )
    if user.client_col:
        small = {s: n for s, n in sites.items() if n < MIN_SITE_ROWS}
        if small:
            raise DataError(
                f"Data file {path}: site(s) {small} in column {user.client_col!r} have fewer than "
                f"{MIN_SITE_ROWS} rows, too few to train on and test. Fix: merge them with another "
                f"site or remove their rows."
            )
    info = {
        "kind": user.kind,
        "columns": columns,
        "n_rows_read": len(rows),
        "labels": list(records[0].options) if user.kind == "classification" else None,
        "sites": dict(sorted(sites.items())) if user.client_col else None,
        **how,
    }
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
        name=user.name,
        domain=user.domain,
        task=first.task,
        options=first.options if user.kind == "classification" else None,
        label_names=first.options if user.kind == "classification" else letters,
        hub_id="",
        hub_config=None,
        hub_splits=(),
        hub_train_split=None,
        hub_eval_split=None,
        local_folder=str(Path(user.path).parent),
        local_files=(Path(user.path).name,),
        group_field=user.client_col or "none",
        offline_resplit_note=None,
        load_local=lambda _folder: list(records),
        load_hub=no_hub,
        hub_row_to_record=no_hub,
        in_study=False,
        user=dict(user.to_dict(), read=info),
    )


def user_data_of(spec: DatasetSpec) -> dict | None:
    """The :class:`UserData` dict a run config carries for a registered user file (None for built-ins)."""
    return {k: v for k, v in spec.user.items() if k != "read"} if spec.user else None
