"""experiment.profiles: the shipped profiles, their grid keys, the models and seeds axes."""

import pytest

from fedlab import paths
from fedlab.errors import ConfigError
from fedlab.experiment.profiles import load_profile, profile_names


def test_profiles_ship_with_the_package_and_reject_unknown_grid_keys(tmp_path):
    assert set(profile_names()) >= {"smoke", "quick", "paper"}
    assert all(p.parent == paths.PROFILES_DIR for p in paths.PROFILES_DIR.glob("*.yaml"))
    bad = tmp_path / "p.yaml"
    bad.write_text("defaults: {model: tiny-random}\ngrid: {domains: {finance: fpb}}\n")
    with pytest.raises(ConfigError, match="come from the dataset registry"):
        load_profile(str(bad))


def test_a_models_axis_gives_every_backbone_its_cells_floors_and_own_overrides(tmp_path):
    base = (paths.PROFILES_DIR / "smoke.yaml").read_text()
    path = tmp_path / "two.yaml"
    other = str(tmp_path / "other-model")
    (tmp_path / "other-model").mkdir()
    (tmp_path / "other-model" / "config.json").write_text("{}")
    path.write_text(
        base.replace(
            "grid:\n",
            f"grid:\n  models: [tiny-random, {other}]\n"
            f"  model_overrides: {{{other}: {{batch_size: 1}}}}\n"
            f"  method_overrides: {{{other}/ia3: {{lr: 0.5}}, ia3: {{lr: 0.25}}, {other}/medqa/ia3: {{lr: 0.125}}}}\n"
            f"  exclude: [{{model: {other}, method: qlora}}]\n",
            1,
        )
    )
    two, smoke = load_profile(str(path)), load_profile("smoke")
    assert two.models == ["tiny-random", other]
    assert [c.model for c in two.zeroshots()] == ["tiny-random"] * 2 + [other] * 2
    cells = two.cells()
    assert len(cells) == len(smoke.cells()) + len(smoke.cells()) * 2 // 3  # the second backbone without qlora
    mine = [c for c in cells if c.model == other]
    assert {c.batch_size for c in mine} == {1} and {c.method for c in mine} == {"lora", "ia3"}
    assert {c.lr for c in mine if c.method == "ia3" and c.dataset == "fpb"} == {0.5}  # the backbone's own pin wins
    assert {c.lr for c in mine if c.method == "ia3" and c.dataset == "medqa"} == {0.125}  # and a dataset's over it
    assert {c.lr for c in cells if c.model == "tiny-random" and c.method == "ia3"} == {0.25}
    assert {c.batch_size for c in cells if c.model == "tiny-random"} == {smoke.defaults["batch_size"]}
    path.write_text(base.replace("grid:\n", "grid:\n  exclude: [{backbone: x}]\n", 1))
    with pytest.raises(ConfigError, match="grid.exclude"):
        load_profile(str(path))


def test_a_seeds_axis_repeats_every_training_cell_on_the_same_eval_rows(tmp_path, fedlab_data_dir, monkeypatch):
    from fedlab.experiment.rundata import RunData

    monkeypatch.setenv("FEDLAB_DATA_DIR", str(fedlab_data_dir))
    base = (paths.PROFILES_DIR / "smoke.yaml").read_text()
    path = tmp_path / "seeded.yaml"
    path.write_text(base.replace("grid:\n", "grid:\n  seeds: [0, 1, 2]\n", 1))
    seeded, smoke = load_profile(str(path)), load_profile("smoke")
    assert seeded.seeds == [0, 1, 2] and len(seeded.cells()) == 3 * len(smoke.cells())
    runs = [c for c in seeded.cells() if c.dataset == "fpb" and c.method == "lora" and c.setting == "federated"]
    assert [c.seed for c in runs] == [0, 1, 2] and len({c.hash() for c in runs}) == 3
    data = [RunData(c.resolved()) for c in runs]
    assert len({tuple(r.id for r in d.eval_rows) for d in data}) == 1  # the same eval rows for every seed
    assert len({d.partition_info["partition_hash"] for d in data}) == 3  # a new partition draw per seed
    path.write_text(base.replace("grid:\n", "grid:\n  seeds: [0, 0]\n", 1))
    with pytest.raises(ConfigError, match="distinct integers"):
        load_profile(str(path))
    # a cell whose seed SD asks for more seeds gets its own extra ones; the other cells keep the grid's
    path.write_text(
        base.replace("grid:\n", "grid:\n  seeds: [0, 1, 2]\n  extra_seeds:\n    tiny-random/fpb/lora: [3]\n", 1)
    )
    extra = load_profile(str(path))
    assert extra.seeds_for("tiny-random", "fpb", "lora") == [0, 1, 2, 3] and extra.seeds_for(
        "tiny-random", "fpb", "ia3"
    ) == [0, 1, 2]
    more = {(c.setting, c.seed) for c in extra.cells() if c.dataset == "fpb" and c.method == "lora"}
    assert len(extra.cells()) == len(seeded.cells()) + len(smoke.grid["settings"]) and ("federated", 3) in more
    path.write_text(base.replace("grid:\n", "grid:\n  extra_seeds:\n    fpb/lora: [3]\n", 1))
    with pytest.raises(ConfigError, match="<backbone>/<dataset>/<method>"):
        load_profile(str(path))
    # extra seeds for some settings only (the seed rule is about federated - centralized)
    path.write_text(
        base.replace(
            "grid:\n",
            "grid:\n  seeds: [0, 1, 2]\n  extra_seeds:\n    tiny-random/fpb/lora: {seeds: [3, 4], settings: [federated, centralized]}\n",
            1,
        )
    )
    some = load_profile(str(path))
    assert some.seeds_for("tiny-random", "fpb", "lora", "federated") == [0, 1, 2, 3, 4]
    assert some.seeds_for("tiny-random", "fpb", "lora", "isolated") == [0, 1, 2]
    assert some.seeds_for("tiny-random", "fpb", "lora") == [0, 1, 2, 3, 4]  # any setting's
    more = {(c.setting, c.seed) for c in some.cells() if c.dataset == "fpb" and c.method == "lora"}
    assert {("federated", 4), ("centralized", 4)} <= more and ("isolated", 3) not in more
    assert len(some.cells()) == len(seeded.cells()) + 2 * 2
    for bad in ("{seeds: [3], settings: [federated, zeroshot]}", "{seeds: [3]}", "{seeds: [x], settings: [federated]}"):
        path.write_text(base.replace("grid:\n", f"grid:\n  extra_seeds:\n    tiny-random/fpb/lora: {bad}\n", 1))
        with pytest.raises(ConfigError, match="a list of integers \\(every setting\\) or"):
            load_profile(str(path))


def test_the_aggregation_study_has_one_checkpoint_policy_for_every_strategy(tmp_path):
    """A profile that selects on validation cannot run FedSA-LoRA or FedEx-LoRA that way; grid.aggregation.select
    null puts all of notebook 07's runs (FedAvg included, shared by its three parts) at their last round."""
    from fedlab.experiment.plan import profile_configs

    selecting = "defaults:\n  select: validation\n  client_val_fraction: 0.25\n"
    base = (paths.PROFILES_DIR / "smoke.yaml").read_text().replace("defaults:\n", selecting, 1)
    path = tmp_path / "selecting.yaml"
    path.write_text(base)
    with pytest.raises(ConfigError, match="select last \\(or none\\) with fedsa-lora"):
        load_profile(str(path)).aggregation_configs()  # smoke's study, as it is, under validation selection
    spec = "{dataset: fpb, method: lora, dp_clip: 1.0, select: null, client_ranks: [4, 8], secagg: {}}"
    lines = [line for line in base.splitlines() if not line.strip().startswith("aggregation:")]
    path.write_text("\n".join(lines).replace("grid:\n", f"grid:\n  aggregation: {spec}\n", 1) + "\n")
    prof = load_profile(str(path))
    study = prof.aggregation_configs() + prof.mixed_rank_configs() + prof.secagg_configs()
    assert {c.select for c in study} == {None} and {c.strategy for c in study} >= {"fedsa-lora", "fedex-lora"}
    assert all(c.select == "validation" for c in prof.cells() if c.setting == "federated")  # the grid's own runs
    assert len(prof.study_configs()) == len({c.hash() for c in study}) < len(study)  # FedAvg once
    assert {c.hash() for c in prof.study_configs()} <= {c.hash() for c in profile_configs(prof)}  # planned
    # select: last keeps the last round too, with the grid's federated validation curve and one held-out score
    path.write_text(path.read_text().replace("select: null", "select: last"))
    validated = load_profile(str(path)).aggregation_configs()
    assert {c.select for c in validated} == {"last"} and all(c.validate().validates for c in validated)
    assert {c.hash() for c in validated}.isdisjoint(c.hash() for c in study)


def test_a_curve_dataset_outside_the_grid_gets_its_floor_and_its_own_overrides(monkeypatch, fedlab_data_dir):
    monkeypatch.setenv("FEDLAB_DATA_DIR", str(fedlab_data_dir))
    monkeypatch.setenv("FEDLAB_RESULTS_DIR", str(paths.PACKAGE.parent / "results"))  # the committed curves
    ref = load_profile("reference")
    floors = {(c.model, c.dataset) for c in ref.curve_zeroshots()}
    assert ("smollm2-135m", "pubmedqa") in floors and not {d for _, d in floors} & set(ref.grid["datasets"])
    pubmed = [c for c in ref.curve_configs() if c.dataset == "pubmedqa"]
    assert pubmed and {c.max_length for c in pubmed} == {512} and ref.analysis.margin_for("pubmedqa") == 0.08
    assert {c.select for c in ref.study_configs()} == {"last"}  # reference selects on validation; notebook 07 cannot


def test_a_cut_cell_gets_no_curve_but_a_cut_setting_keeps_it(tmp_path, monkeypatch, fedlab_data_dir):
    monkeypatch.setenv("FEDLAB_DATA_DIR", str(fedlab_data_dir))
    monkeypatch.setenv("FEDLAB_RESULTS_DIR", str(paths.PACKAGE.parent / "results"))  # the committed curves
    ref = load_profile("reference")
    cut = [rule for rule in ref.grid["exclude"] if "setting" not in rule]
    assert cut and not [
        c for c in ref.curve_configs() if ref.excluded(model=c.model, dataset=c.dataset, method=c.method)
    ]
    base = (paths.PROFILES_DIR / "reference.yaml").read_text()
    path = tmp_path / "cut-isolated.yaml"
    # (a copy under another name has no sweep records of its own: curves.sweep would hold every cell back)
    path.write_text(
        base.replace("  exclude:\n", "  exclude:\n    - {setting: isolated}\n", 1).replace(
            "sweep: true", "sweep: false"
        )
    )
    prof = load_profile(str(path))
    assert len(prof.curve_configs()) == len(ref.curve_configs())  # the centralized curve still sets a budget
    assert {c.setting for c in prof.cells()} == {"federated", "centralized"}
