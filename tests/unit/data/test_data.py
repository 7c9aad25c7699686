"""fedlab.data: loaders of the original files, hub-row conversion, splits, manifests, errors.

Runs offline: the real benchmark files come from the ``fedlab_data_dir`` fixture (conftest), the
hub is replaced by in-memory ``datasets.Dataset`` objects built from those same files.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from fedlab.data import (
    BUILTIN_DATASETS,
    DATASETS,
    MCQ_LETTERS,
    SENTIMENT_OPTIONS,
    Record,
    load_records,
    load_splits,
    manifest_name,
    resolve_data_dir,
    resolve_source,
    split_hash,
)
from fedlab.data.datasets import fiqa_sa, fpb, medmcqa, medqa, pubmedqa
from fedlab.errors import ConfigError, DataError

MAIN = ("fpb", "fiqa_sa", "medqa", "medmcqa")
EXPECTED_EVAL = {"fpb": 1210, "fiqa_sa": 294, "medqa": 319, "medmcqa": 1046, "pubmedqa": 250}

_CACHE: dict[str, tuple] = {}


@pytest.fixture
def local(fedlab_data_dir):
    """``local(name)``: the (cached) local ``LoadResult`` of a dataset."""

    def get(name: str):
        if name not in _CACHE:
            _CACHE[name] = load_records(name, "local", fedlab_data_dir)
        return _CACHE[name]

    return get


def write(root: Path, relpath: str, text: str, encoding: str = "utf-8") -> Path:
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def jsonl(rows) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


MEDQA_ROW = {
    "question": "Which vitamin deficiency causes scurvy?",
    "answer": "Vitamin C",
    "options": {"A": "Vitamin A", "B": "Vitamin B12", "C": "Vitamin C", "D": "Vitamin D"},
    "meta_info": "step1",
    "answer_idx": "C",
    "metamap_phrases": ["vitamin deficiency", "scurvy"],
}
MEDMCQA_ROW = {
    "question": "Drug of choice for absence seizures:",
    "exp": None,
    "cop": 2,
    "opa": "Phenytoin",
    "opb": "Ethosuximide",
    "opc": "Carbamazepine",
    "opd": "Phenobarbitone",
    "subject_name": "Pharmacology",
    "topic_name": None,
    "id": "x1",
    "choice_type": "single",
}


# --------------------------------------------------------------------------- registry, records


def test_registry_specs():
    # A user's file joins the registry as user-<hash> (another test in this process may have added one).
    builtin = set(BUILTIN_DATASETS)
    assert builtin == {"fpb", "fiqa_sa", "medqa", "medmcqa", "pubmedqa"}
    assert all(n in builtin or n.startswith("user-") for n in DATASETS)
    assert {n: DATASETS[n].task for n in builtin} == {
        "fpb": "sentiment3",
        "fiqa_sa": "sentiment3",
        "medqa": "mcq4",
        "medmcqa": "mcq4",
        "pubmedqa": "mcq3",
    }
    assert DATASETS["fpb"].options == SENTIMENT_OPTIONS == ("negative", "neutral", "positive")
    assert DATASETS["medqa"].options is None and DATASETS["medqa"].label_names == MCQ_LETTERS
    assert DATASETS["fpb"].hub_id == "takala/financial_phrasebank"
    assert DATASETS["fpb"].hub_config == "sentences_50agree"
    assert {n: DATASETS[n].domain for n in MAIN} == {
        "fpb": "finance",
        "fiqa_sa": "finance",
        "medqa": "healthcare",
        "medmcqa": "healthcare",
    }


def test_record_roundtrip_and_validation(local):
    for name in BUILTIN_DATASETS:
        record = local(name).records[0]
        data = json.loads(json.dumps(record.to_dict()))
        again = Record.from_dict(data)
        assert again == record and again.meta == record.meta and isinstance(again.options, tuple)
        assert hash(again) == hash(record)
    with pytest.raises(DataError, match="label_text"):
        Record("x", "fpb", "finance", "sentiment3", "t", SENTIMENT_OPTIONS, 0, "positive", "all", "train")
    with pytest.raises(DataError, match="not an index"):
        Record("x", "fpb", "finance", "sentiment3", "t", SENTIMENT_OPTIONS, 3, "positive", "all", "train")
    with pytest.raises(DataError, match="missing keys"):
        Record.from_dict({"id": "x"})


# --------------------------------------------------------------------------- real data counts


def test_fpb_counts(local):
    records, info = local("fpb")
    assert info["n_rows_read"] == 4846
    assert info["duplicates_dropped"] == 6 and info["duplicates_by_split"] == {"train": 6}
    assert len(records) == info["n_records"] == 4840
    assert info["label_counts"] == {"negative": 604, "neutral": 2879 - 6, "positive": 1363}
    assert info["conflicting_labels"] == 2  # two sentences carry two different labels
    assert len({r.id for r in records}) == 4840
    assert {r.group for r in records} == {"all"} and {r.split for r in records} == {"train"}
    assert any("+ñ" in r.text for r in records)  # latin-1 decoding keeps the release's bytes
    assert not any(r.text.endswith(("\r", "\n")) for r in records)
    assert info["provenance"]["files"] == {  # the SHA-256 pinned in the data folder's README
        "fpb/Sentences_50Agree.txt": "bb1b4df6de05d50b146f87a9d4d024b69f947066445f2384f014c3564c1612c8"
    }


def test_fiqa_counts(local):
    records, info = local("fiqa_sa")
    assert len(records) == 1173 and info["duplicates_dropped"] == 0
    by_group = {g: Counter(r.label_text for r in records if r.group == g) for g in ("headline", "post")}
    assert by_group["headline"] == {"positive": 291, "neutral": 62, "negative": 145}
    assert by_group["post"] == {"positive": 426, "neutral": 31, "negative": 218}
    assert len({r.id for r in records}) == 1173  # multi-target headlines get distinct ids
    headlines = Counter(r.text for r in records if r.group == "headline")
    assert len(headlines) == 436 and max(headlines.values()) > 1
    # the ±0.1 band is neutral, bounds included
    assert all(r.label_text == "neutral" for r in records if abs(r.meta["score"]) <= 0.1)
    assert fiqa_sa.score_to_label(0.1) == fiqa_sa.score_to_label(-0.1) == "neutral"
    assert fiqa_sa.score_to_label(0.101) == "positive" and fiqa_sa.score_to_label(-0.11) == "negative"


def test_medqa_counts(local):
    records, info = local("medqa")
    assert len(records) == 1273
    assert info["label_counts"] == {"A": 353, "B": 309, "C": 346, "D": 265}
    assert info["group_counts"] == {"step1": 679, "step2&3": 594}
    assert info["split_counts"] == {"test": 1273}
    assert all(len(r.options) == 4 for r in records)


def test_medmcqa_counts(local):
    records, info = local("medmcqa")
    assert len(records) == 4183 and info["split_counts"] == {"validation": 4183}
    assert len(info["group_counts"]) == 21 and info["group_counts"]["Dental"] == 1318
    assert info["label_counts"] == {"A": 1348, "B": 1085, "C": 925, "D": 825}  # cop 1..4 -> A..D
    assert Counter(r.meta["choice_type"] for r in records) == {"single": 2816, "multi": 1367}


def test_pubmedqa_counts(local):
    records, info = local("pubmedqa")
    assert len(records) == 1000
    assert info["label_counts"] == {"yes": 552, "no": 338, "maybe": 110}
    assert all(r.text.startswith(r.meta["question"] + "\n\nContext: ") for r in records)


# --------------------------------------------------------------------------- splits and manifests


@pytest.mark.parametrize("name", BUILTIN_DATASETS)
def test_local_splits(name, fedlab_data_dir, tmp_path):
    splits = load_splits(name, source="local", data_dir=fedlab_data_dir, seed=0, splits_dir=tmp_path)
    info = splits.info
    train_ids, eval_ids = {r.id for r in splits.train}, {r.id for r in splits.eval}
    assert not train_ids & eval_ids
    assert info["n_train"] + info["n_eval"] == info["n_records"]
    assert info["n_eval"] == len(splits.eval) == EXPECTED_EVAL[name]
    assert abs(info["n_eval"] / info["n_records"] - 0.25) < 0.005
    assert info["stratified"] is True and info["stratify_note"] is None
    assert info["split_hash"] == split_hash(sorted(train_ids), sorted(eval_ids))
    assert [r.id for r in splits.train] == sorted(train_ids)
    # stratified: per-label eval shares stay within one record of 25 %
    for label, n_eval in info["label_counts"]["eval"].items():
        total = n_eval + info["label_counts"]["train"][label]
        assert abs(n_eval - 0.25 * total) <= 1
    resplit = name in ("medqa", "medmcqa")
    assert info["offline_resplit"] is resplit
    assert (info["offline_resplit_note"] is not None) is resplit
    # same seed again (fresh manifest dir, and the existing manifest): same split
    again = load_splits(name, source="local", data_dir=fedlab_data_dir, seed=0, splits_dir=tmp_path / "b")
    assert again.info["split_hash"] == info["split_hash"]
    assert load_splits(name, source="local", data_dir=fedlab_data_dir, splits_dir=tmp_path).train == splits.train
    other = load_splits(name, source="local", data_dir=fedlab_data_dir, seed=1, splits_dir=tmp_path)
    assert other.info["split_hash"] != info["split_hash"]


def test_manifest_written_and_tamper_detected(fedlab_data_dir, tmp_path):
    splits = load_splits("fpb", source="local", data_dir=fedlab_data_dir, splits_dir=tmp_path)
    path = tmp_path / "fpb-local-seed0-eval25.json"
    assert splits.manifest_path == path and sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    manifest = json.loads(path.read_text())
    assert manifest["info"]["split_hash"] == splits.info["split_hash"]
    assert manifest["train_ids"] == [r.id for r in splits.train]
    assert manifest["eval_ids"] == [r.id for r in splits.eval]
    for key in (
        "dataset",
        "source",
        "seed",
        "eval_fraction",
        "n_train",
        "n_eval",
        "label_counts",
        "group_counts",
        "duplicates_dropped",
        "offline_resplit",
        "split_hash",
    ):
        assert key in manifest["info"]
    assert manifest["info"]["duplicates_dropped"] == 6

    # an eval id moved into train (hash untouched): still detected
    tampered = dict(manifest, train_ids=sorted(manifest["train_ids"] + manifest["eval_ids"][:1]))
    path.write_text(json.dumps(tampered))
    with pytest.raises(DataError, match="delete the manifest"):
        load_splits("fpb", source="local", data_dir=fedlab_data_dir, splits_dir=tmp_path)

    manifest["info"]["split_hash"] = "0" * 64
    path.write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="data or the manifest changed"):
        load_splits("fpb", source="local", data_dir=fedlab_data_dir, splits_dir=tmp_path)

    path.write_text("{not json")
    with pytest.raises(DataError, match="unreadable"):
        load_splits("fpb", source="local", data_dir=fedlab_data_dir, splits_dir=tmp_path)
    path.unlink()  # the documented fix
    assert (
        load_splits("fpb", source="local", data_dir=fedlab_data_dir, splits_dir=tmp_path).info["split_hash"]
        == splits.info["split_hash"]
    )


def test_manifest_name():
    assert manifest_name("fpb", "local", 0, 0.25) == "fpb-local-seed0-eval25.json"
    assert manifest_name("medqa", "hub", 3, 0.29) == "medqa-hub-seed3-eval29.json"
    assert manifest_name("fpb", "local", 0, 0.125) == "fpb-local-seed0-eval12.5.json"


def test_stratify_fallback_is_recorded(tmp_path):
    lines = [f"Sentence number {i} .@neutral" for i in range(6)] + ["Only one .@negative", "Up .@positive"]
    write(tmp_path, "fpb/Sentences_50Agree.txt", "\r\n".join(lines) + "\r\n", "latin-1")
    splits = load_splits("fpb", source="local", data_dir=tmp_path, splits_dir=tmp_path / "s")
    assert splits.info["stratified"] is False and "least populated" in splits.info["stratify_note"]
    assert splits.info["n_eval"] == 2 and not {r.id for r in splits.train} & {r.id for r in splits.eval}


def test_source_resolution(fedlab_data_dir, tmp_path, monkeypatch):
    assert resolve_source("auto", fedlab_data_dir) == "local"
    assert resolve_source("auto", tmp_path / "absent") == "hub"
    assert resolve_source("hub", tmp_path / "absent") == "hub"
    with pytest.raises(ConfigError, match="Did you mean 'local'"):
        resolve_source("locla")
    monkeypatch.setenv("FEDLAB_DATA_DIR", str(tmp_path))
    assert resolve_data_dir() == tmp_path and resolve_data_dir("x") == Path("x")
    monkeypatch.delenv("FEDLAB_DATA_DIR")
    assert resolve_data_dir() == Path(__file__).resolve().parents[3] / "data" / "raw"
    with pytest.raises(ConfigError, match="eval_fraction"):
        load_splits("fpb", data_dir=fedlab_data_dir, eval_fraction=1.0, splits_dir=tmp_path)


# --------------------------------------------------------------------------- hub rows


def _fpb_hub_rows(data_dir: Path) -> list[dict]:
    """Every line of the release (duplicates included) as a hub row: sentence + int label."""
    lines = (data_dir / "fpb" / "Sentences_50Agree.txt").read_text("latin-1").splitlines()
    return [{"sentence": s, "label": SENTIMENT_OPTIONS.index(lab)} for s, lab in (x.rsplit("@", 1) for x in lines)]


def _fiqa_hub_rows(records: list[Record]) -> list[dict]:
    return [
        {
            "_id": str(i),
            "sentence": r.text,
            "target": r.meta["target"],
            "aspect": r.meta["aspects"],
            "score": float(r.meta["score"]),
            "type": r.group,
        }
        for i, r in enumerate(records)
    ]


def _raw_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def _pubmedqa_hub_rows(data_dir: Path) -> list[dict]:
    raw = json.loads((data_dir / "pubmedqa" / "ori_pqal.json").read_text("utf-8"))
    return [
        {
            "pubid": int(k),
            "question": v["QUESTION"],
            "context": {"contexts": v["CONTEXTS"], "labels": v["LABELS"]},
            "long_answer": v["LONG_ANSWER"],
            "final_decision": v["final_decision"],
        }
        for k, v in raw.items()
    ]


def test_hub_row_conversion_matches_local(local, fedlab_data_dir):
    fpb_local = local("fpb").records
    seen: dict[str, Record] = {}
    for row in _fpb_hub_rows(fedlab_data_dir):
        record = fpb.hub_row_to_record(row, "train")
        seen.setdefault(record.id, record)
    assert list(seen.values()) == fpb_local

    fiqa_local = local("fiqa_sa").records
    assert [fiqa_sa.hub_row_to_record(row, "valid") for row in _fiqa_hub_rows(fiqa_local)] == fiqa_local

    medqa_rows = _raw_jsonl(fedlab_data_dir / "medqa" / "phrases_no_exclude_test.jsonl")
    assert [medqa.hub_row_to_record(row, "test") for row in medqa_rows] == local("medqa").records

    mcqa_rows = [dict(row, cop=row["cop"] - 1) for row in _raw_jsonl(fedlab_data_dir / "medmcqa" / "dev.json")]
    converted = [medmcqa.hub_row_to_record(row, "validation") for row in mcqa_rows]
    assert converted == local("medmcqa").records
    assert [r.meta for r in converted] == [r.meta for r in local("medmcqa").records]

    assert [pubmedqa.hub_row_to_record(row, "train") for row in _pubmedqa_hub_rows(fedlab_data_dir)] == local(
        "pubmedqa"
    ).records


@pytest.fixture
def fake_hub(monkeypatch):
    """Replace ``datasets.load_dataset`` by in-memory splits: ``fake_hub({(id, split): rows})``."""
    import datasets

    calls = []

    def install(tables: dict[tuple[str, str], list[dict]]):
        def load_dataset(path, name=None, split=None, **kwargs):
            calls.append((path, name, split))
            if (path, split) not in tables:
                raise ConnectionError(f"no network for {path}")
            return datasets.Dataset.from_list(tables[(path, split)])

        monkeypatch.setattr(datasets, "load_dataset", load_dataset)
        return calls

    return install


def test_hub_source_gives_local_split(local, fedlab_data_dir, fake_hub, tmp_path):
    calls = fake_hub({("takala/financial_phrasebank", "train"): _fpb_hub_rows(fedlab_data_dir)})
    records, info = load_records("fpb", source="hub")
    assert calls == [("takala/financial_phrasebank", "sentences_50agree", "train")]
    assert records == local("fpb").records and info["duplicates_dropped"] == 6
    hub = load_splits("fpb", source="hub", splits_dir=tmp_path)
    loc = load_splits("fpb", source="local", data_dir=fedlab_data_dir, splits_dir=tmp_path)
    assert hub.manifest_path.name == "fpb-hub-seed0-eval25.json"
    assert hub.info["split_hash"] == loc.info["split_hash"] and hub.eval == loc.eval

    rows = _fiqa_hub_rows(local("fiqa_sa").records)
    random.Random(0).shuffle(rows)  # the hub copy is a random re-split 822 / 117 / 234
    hub_id = "TheFinAI/fiqa-sentiment-classification"
    fake_hub({(hub_id, "train"): rows[:822], (hub_id, "valid"): rows[822:939], (hub_id, "test"): rows[939:]})
    hub = load_splits("fiqa_sa", source="hub", splits_dir=tmp_path)
    loc = load_splits("fiqa_sa", source="local", data_dir=fedlab_data_dir, splits_dir=tmp_path)
    assert hub.info["split_hash"] == loc.info["split_hash"] and hub.train == loc.train
    assert Counter(r.meta["hub_split"] for r in hub.train + hub.eval) == {"train": 822, "valid": 117, "test": 234}


def test_hub_official_splits(fedlab_data_dir, fake_hub, tmp_path):
    test_rows = _raw_jsonl(fedlab_data_dir / "medqa" / "phrases_no_exclude_test.jsonl")
    extra = dict(MEDQA_ROW)
    train_rows = [extra, test_rows[5]]  # the second repeats a test question: dropped from train
    fake_hub(
        {("GBaker/MedQA-USMLE-4-options", "test"): test_rows, ("GBaker/MedQA-USMLE-4-options", "train"): train_rows}
    )
    splits = load_splits("medqa", source="hub", splits_dir=tmp_path)
    info = splits.info
    assert info["offline_resplit"] is False and info["offline_resplit_note"] is None
    assert info["n_eval"] == 1273 and info["n_train"] == 1
    assert info["duplicates_by_split"] == {"train": 1} and info["stratified"] is None
    assert splits.train[0].text == extra["question"] and {r.split for r in splits.eval} == {"test"}

    mcqa = dict(MEDMCQA_ROW, cop=1)
    fake_hub(
        {
            ("openlifescienceai/medmcqa", "validation"): [mcqa, dict(mcqa, id="x2", question="Q2?")],
            ("openlifescienceai/medmcqa", "train"): [dict(mcqa, question="Q3?")],
        }
    )
    splits = load_splits("medmcqa", source="hub", splits_dir=tmp_path)
    assert (splits.info["n_train"], splits.info["n_eval"]) == (1, 2)
    assert splits.eval[0].label_text == "Ethosuximide"  # hub cop is 0-based


def test_hub_failure_names_the_fix(fake_hub):
    fake_hub({})
    with pytest.raises(DataError, match="source='local'") as err:
        load_records("medmcqa", source="hub")
    assert "openlifescienceai/medmcqa" in str(err.value) and "validation" in str(err.value)


# --------------------------------------------------------------------------- malformed inputs


def test_unknown_dataset_suggests_name():
    with pytest.raises(DataError, match="Did you mean 'fpb'") as err:
        load_records("fbp")
    assert "fiqa_sa" in str(err.value)
    with pytest.raises(DataError, match="Did you mean 'medmcqa'"):
        load_splits("medmcq", source="local")


def test_missing_folder_and_file(tmp_path):
    with pytest.raises(DataError, match="FEDLAB_DATA_DIR=../shared/data") as err:
        load_records("fpb", data_dir=tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(err.value) and "source='hub'" in str(err.value)
    with pytest.raises(DataError, match="folder .*fpb' does not exist") as err:
        load_records("fpb", data_dir=tmp_path)
    assert "Sentences_50Agree.txt" in str(err.value)
    (tmp_path / "fpb").mkdir()
    with pytest.raises(DataError, match="expected file 'Sentences_50Agree.txt' is missing") as err:
        load_records("fpb", data_dir=tmp_path)
    assert str(tmp_path / "fpb") in str(err.value)
    write(tmp_path, "fiqa_sa/task1_headline_ABSA_train.json", "{}")
    with pytest.raises(DataError, match="task1_post_ABSA_train.json"):
        load_records("fiqa_sa", data_dir=tmp_path)


def _fpb_error(tmp_path, text: str) -> str:
    write(tmp_path, "fpb/Sentences_50Agree.txt", text, "latin-1")
    with pytest.raises(DataError) as err:
        load_records("fpb", data_dir=tmp_path)
    return str(err.value)


def test_fpb_malformed_lines(tmp_path):
    msg = _fpb_error(tmp_path, "Profit rose .@positive\r\nThis line has no separator\r\n")
    assert "fpb/Sentences_50Agree.txt line 2" in msg and "no '@'" in msg and "no separator" in msg
    msg = _fpb_error(tmp_path, "Profit rose .@positive\r\nSales were flat .@mixed\r\n")
    assert "line 2" in msg and "'mixed'" in msg and "'negative', 'neutral', 'positive'" in msg
    msg = _fpb_error(tmp_path, "Profit rose .@positive\r\n\r\nSales fell .@negative\r\n")
    assert "line 2" in msg and "blank line" in msg
    assert "no rows" in _fpb_error(tmp_path, "")
    # the LAST '@' separates: '@' inside the sentence is kept
    write(tmp_path, "fpb/Sentences_50Agree.txt", "Shares @ EUR 5 rose .@positive\n", "latin-1")
    assert load_records("fpb", data_dir=tmp_path).records[0].text == "Shares @ EUR 5 rose ."


def test_medqa_malformed(tmp_path):
    path = "medqa/phrases_no_exclude_test.jsonl"
    write(tmp_path, path, jsonl([MEDQA_ROW]) + '{"question": "truncated\n')
    with pytest.raises(DataError, match=r"phrases_no_exclude_test\.jsonl line 2: not valid JSON") as err:
        load_records("medqa", data_dir=tmp_path)
    assert "truncated" in str(err.value)
    write(tmp_path, path, jsonl([MEDQA_ROW, dict(MEDQA_ROW, answer_idx="E")]))
    with pytest.raises(DataError, match="line 2: unknown label 'E'; allowed: 'A', 'B', 'C', 'D'"):
        load_records("medqa", data_dir=tmp_path)
    write(tmp_path, path, jsonl([dict(MEDQA_ROW, answer="Vitamin K")]))
    with pytest.raises(DataError, match="line 1: 'answer' 'Vitamin K' is not the text of option C"):
        load_records("medqa", data_dir=tmp_path)
    write(tmp_path, path, jsonl([dict(MEDQA_ROW, options={"A": "x", "B": "y", "C": "z"})]))
    with pytest.raises(DataError, match="line 1: 'options' must map exactly the letters A-D"):
        load_records("medqa", data_dir=tmp_path)
    (tmp_path / path).write_bytes(jsonl([MEDQA_ROW]).encode() + b'{"question": "\xff"}\n')
    with pytest.raises(DataError, match="line 2: bytes are not valid utf-8"):
        load_records("medqa", data_dir=tmp_path)
    write(tmp_path, path, "")
    with pytest.raises(DataError, match="no rows"):
        load_records("medqa", data_dir=tmp_path)


def test_medmcqa_cop_range(tmp_path):
    write(tmp_path, "medmcqa/dev.json", jsonl([MEDMCQA_ROW, dict(MEDMCQA_ROW, cop=5)]))
    with pytest.raises(DataError, match=r"dev\.json line 2 \(field 'cop', 1-based\): unknown label 5"):
        load_records("medmcqa", data_dir=tmp_path)
    write(tmp_path, "medmcqa/dev.json", jsonl([dict(MEDMCQA_ROW, cop=0)]))  # a 0-based row in a 1-based file
    with pytest.raises(DataError, match="line 1 .*unknown label 0"):
        load_records("medmcqa", data_dir=tmp_path)
    write(tmp_path, "medmcqa/dev.json", jsonl([MEDMCQA_ROW]))
    local_record = load_records("medmcqa", data_dir=tmp_path).records[0]
    assert local_record.label == 1 and local_record.label_text == "Ethosuximide"
    assert medmcqa.hub_row_to_record(dict(MEDMCQA_ROW, cop=1), "validation") == local_record
    with pytest.raises(DataError, match=r"\(field 'cop', 0-based\): unknown label 4"):
        medmcqa.hub_row_to_record(dict(MEDMCQA_ROW, cop=4), "train")
    with pytest.raises(DataError, match="unknown label -1"):  # the unlabelled hub test split
        medmcqa.hub_row_to_record(dict(MEDMCQA_ROW, cop=-1), "test")


def test_fiqa_malformed(tmp_path):
    good = {
        "1": {
            "sentence": "Shell profit jumps",
            "info": [{"snippets": "['profit jumps']", "target": "Shell", "sentiment_score": "0.5", "aspects": "['x']"}],
        }
    }
    bad = {
        "2": {
            "sentence": "BP slides",
            "info": [{"snippets": "['slides']", "target": "BP", "sentiment_score": "very bad", "aspects": "['x']"}],
        }
    }
    write(tmp_path, "fiqa_sa/task1_headline_ABSA_train.json", json.dumps(good, indent=2))
    write(tmp_path, "fiqa_sa/task1_post_ABSA_train.json", json.dumps({**good, **bad}, indent=2))
    with pytest.raises(
        DataError,
        match=r"task1_post_ABSA_train\.json line 13 \(entry '2'\), info item 0: "
        r"sentiment score must be a number in \[-1, 1\], got 'very bad'",
    ):
        load_records("fiqa_sa", data_dir=tmp_path)
    write(tmp_path, "fiqa_sa/task1_post_ABSA_train.json", "{}")
    with pytest.raises(DataError, match=r"task1_post_ABSA_train\.json: no rows"):
        load_records("fiqa_sa", data_dir=tmp_path)
    write(tmp_path, "fiqa_sa/task1_post_ABSA_train.json", '{"1": {"sentence": "x",\n "info": [}')
    with pytest.raises(DataError, match=r"task1_post_ABSA_train\.json line 2: not valid JSON"):
        load_records("fiqa_sa", data_dir=tmp_path)
    with pytest.raises(DataError, match="format/type must be one of"):
        fiqa_sa.hub_row_to_record({"sentence": "s", "target": "t", "score": 0.3, "type": "tweet"}, "train")
