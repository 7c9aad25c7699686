"""A CSV none of the other tests has seen, with a site column, end to end: notebook 06 executed by papermill
in the smoke profile (zero-shot, federated on Flower, centralized, isolated, verdicts), then
`fedlab run --data` on the same file finds the same run by its content hash."""

import csv
import json
import random

import papermill as pm
import pytest

from fedlab import paths
from fedlab.cli import main

pytestmark = [pytest.mark.notebooks, pytest.mark.ray]


def test_your_own_csv_runs_through_the_notebook_and_the_cli(tmp_path, monkeypatch, fedlab_data_dir, capsys):
    monkeypatch.setenv("FEDLAB_DATA_DIR", str(fedlab_data_dir))
    monkeypatch.setenv("FEDLAB_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("FEDLAB_FIGURES_DIR", str(tmp_path / "figures"))
    rng = random.Random(7)
    kinds = {
        "refund": ["money back for", "charge reversal on"],
        "fraud": ["unknown transfer to", "stolen card at"],
        "advice": ["how to save for", "best account for"],
    }
    rows = [
        {
            "message": f"{rng.choice(kinds[k])} {rng.choice(['shop', 'rent', 'travel', 'school'])} #{i}",
            "intent": k,
            "branch": rng.choice(["zurich", "geneva", "basel"]),
        }
        for i, k in enumerate(rng.choice(list(kinds)) for _ in range(120))
    ]
    path = tmp_path / "bank_messages.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["message", "intent", "branch"])
        writer.writeheader()
        writer.writerows(rows)

    out = tmp_path / "06_your_data.ipynb"
    pm.execute_notebook(
        str(paths.notebooks_dir() / "06_your_data.ipynb"),
        str(out),
        cwd=str(paths.notebooks_dir()),
        parameters=dict(
            PROFILE="smoke", DATA_PATH=str(path), TEXT_COL="message", LABEL_COL="intent", CLIENT_COL="branch"
        ),
        progress_bar=False,
        kernel_name="python3",
    )
    text = out.read_text()
    assert "federated vs centralized" in text and "federated vs isolated" in text
    results = {
        p.parent.name: json.loads(p.read_text())
        for p in (tmp_path / "results").glob("*/*.json")
        if p.parent.name != "splits"
    }  # the split manifest of a user file lives beside its results
    assert set(results) == {"zeroshot", "federated", "centralized", "isolated"}
    fed = results["federated"]
    assert fed["config"]["dataset"].startswith("user-") and fed["config"]["partition"] == "natural"
    assert fed["config"]["clients"] == 3 and fed["config"]["data"]["sha256"] and fed["status"] == "success"
    assert fed["data"]["provenance"]["files"] == {str(path.resolve()): fed["config"]["data"]["sha256"]}
    assert sorted(fed["data"]["label_counts"]["train"]) == ["advice", "fraud", "refund"]

    assert (
        main(
            [
                "run",
                "--profile",
                "smoke",
                "--data",
                str(path),
                "--text-col",
                "message",
                "--label-col",
                "intent",
                "--client-col",
                "branch",
                "--setting",
                "federated",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "3 sites from column 'branch'" in printed and "(cached)" in printed
