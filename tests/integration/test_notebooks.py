"""`make reproduce` in the smoke profile: every notebook executed by papermill, reports, figures, results."""

import json
import re

from fedlab.experiment.profiles import load_profile
from fedlab.experiment.profiles import AGGREGATION_STRATEGIES, DP_NOISES
from fedlab.reporting.reports_index import stderr_outputs
from fedlab.pipeline import executions, reproduce
from fedlab.study import profile_domains


def test_make_reproduce_executes_every_notebook_in_the_smoke_profile(tmp_path, monkeypatch, fedlab_data_dir):
    monkeypatch.setenv("FEDLAB_DATA_DIR", str(fedlab_data_dir))
    monkeypatch.setenv("FEDLAB_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("FEDLAB_FIGURES_DIR", str(tmp_path / "figures"))
    index = reproduce("smoke", out=tmp_path / "reports")
    stems = [stem for _, _, stem in executions("smoke")]
    profile = load_profile("smoke")
    assert len(stems) == 6 + len(profile_domains(profile)) * len(profile.grid["methods"])  # + PEFT per (domain, method)
    for stem in stems:
        assert (tmp_path / "reports" / f"{stem}.html").stat().st_size > 10_000
        assert f'href="{stem}.html"' in index.read_text()

    n_results = 0
    for setting in ("zeroshot", "federated", "centralized", "isolated"):
        for path in (tmp_path / "results" / setting).glob("*.json"):
            data = json.loads(path.read_text())
            assert data["status"] == "success" and data["config"]["model"] == "tiny-random"
            assert {"config", "config_hash", "metrics", "manifest", "data"} <= set(data)
            assert 0 <= data["metrics"]["accuracy"] <= 1 and 0 <= data["metrics"]["macro_f1"] <= 1
            if setting != "zeroshot":
                assert {"energy", "communication", "budget", "partition"} <= set(data)
            n_results += 1
    assert n_results == len(profile.grid["datasets"]) * (1 + 3 * 3) + len(AGGREGATION_STRATEGIES) - 1 + len(DP_NOISES)
    # Known and left (issue #20's note): Flower logs that `run_simulation` is deprecated in every report
    # that trains a federated run (smoke trains in its notebooks; quick's reports load results and have
    # no stderr at all). Any other stderr output fails.
    flower_notice = re.compile(r"^.*DEPRECATED FEATURE: The `run_simulation` function is deprecated.*\n(?:(?:[ \t].*)?\n)*", re.M)
    noise = [(stem, cell, text) for stem, cell, text in stderr_outputs(tmp_path / "reports")
             if flower_notice.sub("", text + "\n").strip()]
    sources = sorted({(stem, flower_notice.sub("", text + "\n").strip()[:120]) for stem, _, text in noise})
    assert not noise, f"{len(noise)} stderr outputs in the rendered reports, from: {sources[:20]}"
    assert "Figures (" in index.read_text() and "smoke_forest.png" in index.read_text()
    for name in ("smoke_baselines", "smoke_energy_bytes", "smoke_energy_phases", "smoke_cost_frontier", "data_label_balance",
                 "partitions_fpb", "smoke_finance_lora_curves", "smoke_medqa_tiny-random_ia3_per_client",
                 "smoke_fpb_lora_accuracy_vs_epsilon"):
        assert (tmp_path / "figures" / f"{name}.png").stat().st_size > 5_000, name
    # the numbers the summary report shows are those of the result files (not only "a file exists")
    import nbformat
    from fedlab.reporting import claims, tables
    from fedlab.reporting.frames import results_frame
    from fedlab.reporting.verdicts import profile_verdicts
    summary = nbformat.read(tmp_path / "reports" / "05_summary.ipynb", as_version=4)
    shown = [o.get("data", {}).get("text/markdown", "") for c in summary.cells if c.cell_type == "code"
             for o in c.get("outputs", [])]
    assert tables.main_table(results_frame(profile)) in shown
    assert claims.headline_markdown(profile_verdicts(profile), "smoke") in shown
