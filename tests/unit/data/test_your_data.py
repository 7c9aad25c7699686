"""Bring your own data: a user's CSV/TSV/JSONL/Parquet/XLSX file becomes a dataset with the same records, splits
and configs as the built-in ones, and every mistake a user can make is a clear error naming the fix."""

import csv
import hashlib
import json

import pytest

from fedlab.data import DATASETS, load_splits
from fedlab.data.user import UserData
from fedlab.errors import DataError
from fedlab.experiment.profiles import load_profile
from fedlab.study import your_data

LABELS = ("billing", "clinical", "scheduling")


def write_csv(path, rows, fields=("note", "kind", "site")):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(fields))
        writer.writeheader()
        writer.writerows(rows)
    return path


def notes(n=60, sites=("a", "b", "c")):
    return [
        {"note": f"{LABELS[i % 3]} request number {i}", "kind": LABELS[i % 3], "site": sites[i % len(sites)]}
        for i in range(n)
    ]


def test_a_classification_csv_with_sites_is_a_dataset_with_natural_clients(tmp_path):
    path = write_csv(tmp_path / "notes.csv", notes())
    name, extra = your_data(str(path), text_col="note", label_col="kind", client_col="site")
    spec = DATASETS[name]
    assert name.startswith("user-") and spec.task == "label" and spec.label_names == LABELS
    assert spec.primary_metric == "macro_f1" and spec.user["read"]["sites"] == {"a": 20, "b": 20, "c": 20}
    assert extra["partition"] == "natural" and extra["clients"] == 3 and "classification into" in extra["summary"]
    splits = load_splits(name, splits_dir=tmp_path / "splits")
    assert splits.info["n_train"] + splits.info["n_eval"] == 60 and {r.group for r in splits.train} == {"a", "b", "c"}
    cfg = load_profile("smoke").config(name, "federated", "lora", **{k: v for k, v in extra.items() if k != "summary"})
    assert cfg.data["sha256"] and cfg.resolved().source == "local"
    # the content, not the path, is the identity: a copy elsewhere is the same run; an edit is another dataset
    copy = tmp_path / "elsewhere.csv"
    copy.write_bytes(path.read_bytes())
    same, _ = your_data(str(copy), text_col="note", label_col="kind", client_col="site")
    moved = UserData(str(copy), text_col="note", label_col="kind", client_col="site").check().to_dict()
    assert same == name and moved["path"] != cfg.data["path"]
    assert (
        load_profile("smoke")
        .config(same, "federated", "lora", data=moved, **{k: v for k, v in extra.items() if k != "summary"})
        .hash()
        == cfg.hash()
    )
    write_csv(copy, notes()[:-1] + [{"note": "edited", "kind": "billing", "site": "a"}])
    assert your_data(str(copy), text_col="note", label_col="kind", client_col="site")[0] != name


def test_multiple_choice_from_a_list_column_in_jsonl(tmp_path):
    path = tmp_path / "quiz.jsonl"
    rows = [{"q": f"question {i}?", "opts": ["red", "green", "blue"], "ans": "ABC"[i % 3]} for i in range(30)]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    name, extra = your_data(str(path), question_col="q", options_col="opts", answer_col="ans")
    spec = DATASETS[name]
    assert spec.task == "mcq3" and spec.label_names == ("A", "B", "C") and spec.primary_metric == "accuracy"
    assert "partition" not in extra


@pytest.mark.parametrize(
    "change, columns, message",
    [
        (
            None,
            dict(text_col="note", label_col="label"),
            r"no column\(s\) \['label'\]; its columns are \['note', 'kind', 'site'\]",
        ),
        (
            lambda rows: rows[4].update(note="  "),
            dict(text_col="note", label_col="kind"),
            r"notes\.csv, line 6: empty text in column 'note'",
        ),
        (
            lambda rows: rows.append({"note": "x", "kind": "billing", "site": "tiny"}),
            dict(text_col="note", label_col="kind", client_col="site"),
            r"site\(s\) \{'tiny': 1\}.*fewer than 5 rows.*merge them",
        ),
        (None, dict(text_col="note", label_col="kind", question_col="note"), "not both"),
        (None, dict(question_col="note", answer_col="kind"), "needs --question-col, --answer-col and the options"),
    ],
)
def test_user_mistakes_name_the_file_the_row_and_the_fix(tmp_path, change, columns, message):
    rows = notes()
    if change:
        change(rows)
    path = write_csv(tmp_path / "notes.csv", rows)
    with pytest.raises(DataError, match=message):
        your_data(str(path), **columns)


def test_a_label_seen_only_in_eval_and_a_varying_option_count_are_errors(tmp_path):
    rows = notes(40) + [{"note": "the one odd request", "kind": "legal", "site": "a"}]
    path = write_csv(tmp_path / "odd.csv", rows)
    name, _ = your_data(str(path), text_col="note", label_col="kind")
    try:  # the single 'legal' row lands in train or eval depending on the seed; find a seed that puts it in eval
        for seed in range(20):
            load_splits(name, seed=seed, splits_dir=tmp_path / "splits")
    except DataError as exc:
        assert "['legal']" in str(exc) and "occur only in the eval split" in str(exc) and "Fix:" in str(exc)
    else:
        pytest.fail("a label present only in eval was not reported")
    quiz = tmp_path / "quiz.jsonl"
    quiz.write_text(
        "\n".join(
            json.dumps({"q": f"q{i}", "opts": ["a", "b", "c"] + (["d"] if i == 3 else []), "ans": 0}) for i in range(10)
        )
    )
    with pytest.raises(DataError, match=r"quiz\.jsonl, line 4: 4 options where the first row has 3.*--option-cols"):
        your_data(str(quiz), question_col="q", options_col="opts", answer_col="ans")
    with pytest.raises(DataError, match="does not exist"):
        your_data(str(tmp_path / "missing.csv"), text_col="note", label_col="kind")
    bad = tmp_path / "notes.txt"
    bad.write_text("x")
    with pytest.raises(DataError, match=r"unknown format '\.txt'"):
        your_data(str(bad), text_col="note", label_col="kind")


# --- files as institutions export them: a European spreadsheet's CSV, TSV, Excel, a non-UTF-8 file


def content(name):
    """What a user dataset's records say, whatever the file (ids and the dataset name depend on the file's hash)."""
    return [(r.text, r.options, r.label, r.label_text, r.group) for r in DATASETS[name].load_local(None)]


def test_a_semicolon_csv_with_a_bom_loads_and_reports_its_delimiter(tmp_path):
    plain = write_csv(tmp_path / "notes.csv", notes())
    rows = notes()
    rows[0]["note"] = "billing, with a comma; and a semicolon"  # quoted by the writer: the sniffer must not be fooled
    with open(tmp_path / "export.csv", "w", newline="", encoding="utf-8-sig") as f:  # Excel's "CSV UTF-8", ; locale
        writer = csv.DictWriter(f, fieldnames=["note", "kind", "site"], delimiter=";")
        writer.writeheader()
        writer.writerows(rows)
    path = tmp_path / "export.csv"
    assert path.read_bytes().startswith(b"\xef\xbb\xbfnote;kind;site")
    name, extra = your_data(str(path), text_col="note", label_col="kind", client_col="site")
    read = DATASETS[name].user["read"]
    assert read["columns"] == ["note", "kind", "site"] and read["delimiter"] == ";" and read["delimiter_detected"]
    assert read["bom"] and "delimited by ';' (detected)" in extra["summary"] and extra["clients"] == 3
    assert (
        content(name)[0][0] == "billing, with a comma; and a semicolon"
        and content(name)[1:]
        == content(your_data(str(plain), text_col="note", label_col="kind", client_col="site")[0])[1:]
    )
    # the identity stays the file's bytes (SHA-256), and a given delimiter reads the same records
    assert DATASETS[name].user["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    given, extra = your_data(str(path), text_col="note", label_col="kind", client_col="site", delimiter=";")
    assert content(given) == content(name) and "delimited by ';' (given)" in extra["summary"]
    quiz = tmp_path / "quiz.jsonl"
    quiz.write_text('{"note": "x", "kind": "y"}\n')
    with pytest.raises(DataError, match="applies to CSV and TSV"):
        your_data(str(quiz), text_col="note", label_col="kind", delimiter=";")


@pytest.mark.parametrize(
    "text, delimiter",
    [
        ("id;text;kind\n" + "".join(f'{i};"a;b", c;k\n' for i in range(30)), ";"),  # fools csv.Sniffer alone (',')
        ("note;score\n" + "".join(f"n{i};{i},5\n" for i in range(30)), ";"),  # decimal commas
        ("note,kind\n" + "".join(f"x{i}; y,a\n" for i in range(30)), ","),  # semicolons in the text
        ("a|b|c\n1|2|3\n", "|"),
        ("a\tb\n1\t2\n", "\t"),
        ("single\nx\n", ","),
    ],
)
def test_the_delimiter_is_detected_among_comma_semicolon_tab_and_pipe(text, delimiter):
    from fedlab.data.user import sniff_delimiter

    assert sniff_delimiter(text) == delimiter


def test_a_tsv_and_an_xlsx_load_the_same_records_as_the_csv(tmp_path):
    import pandas as pd

    rows = notes()
    csv_name, _ = your_data(
        str(write_csv(tmp_path / "notes.csv", rows)), text_col="note", label_col="kind", client_col="site"
    )
    tsv = tmp_path / "notes.tsv"
    tsv.write_text("note\tkind\tsite\n" + "".join(f"{r['note']}\t{r['kind']}\t{r['site']}\n" for r in rows))
    tsv_name, extra = your_data(str(tsv), text_col="note", label_col="kind", client_col="site")
    assert DATASETS[tsv_name].user["read"]["delimiter"] == "\t" and "tsv delimited by '\\t'" in extra["summary"]
    xlsx = tmp_path / "notes.xlsx"
    with pd.ExcelWriter(xlsx, engine="openpyxl") as book:
        pd.DataFrame(rows).to_excel(book, sheet_name="export", index=False)
        pd.DataFrame({"other": [1]}).to_excel(book, sheet_name="notes on the data", index=False)
    xlsx_name, extra = your_data(str(xlsx), text_col="note", label_col="kind", client_col="site")
    assert len({csv_name, tsv_name, xlsx_name}) == 3  # three files, three datasets (the bytes differ)
    assert content(xlsx_name) == content(tsv_name) == content(csv_name) and len(content(csv_name)) == 60
    assert DATASETS[xlsx_name].user["sha256"] == hashlib.sha256(xlsx.read_bytes()).hexdigest()
    assert "sheet 'export' (first of 2)" in extra["summary"]
    rows[3]["note"] = None
    pd.DataFrame(rows).to_excel(xlsx, index=False)
    with pytest.raises(DataError, match=r"notes\.xlsx, row 5: empty text in column 'note'"):
        your_data(str(xlsx), text_col="note", label_col="kind")


def test_a_file_that_is_not_utf8_names_the_byte_and_the_fix(tmp_path):
    path = tmp_path / "latin.csv"
    text = "note,kind\n" + "".join(f"{LABELS[i % 3]} request {i},{LABELS[i % 3]}\n" for i in range(30))
    text += "facture réglée,billing\n"
    path.write_bytes(text.encode("cp1252"))
    offset = text.encode("cp1252").index("é".encode("cp1252"))
    with pytest.raises(
        DataError,
        match=rf"not valid UTF-8: byte\(s\) e9 at byte offset {offset} \(line 32\).*"
        r"Fix: re-export the file as UTF-8.*--encoding",
    ):
        your_data(str(path), text_col="note", label_col="kind")
    name, extra = your_data(str(path), text_col="note", label_col="kind", encoding="cp1252")
    assert content(name)[-1][0] == "facture réglée" and "cp1252" in extra["summary"]
    with pytest.raises(DataError, match="Unknown encoding 'klingon'"):
        your_data(str(path), text_col="note", label_col="kind", encoding="klingon")
