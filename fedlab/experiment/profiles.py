"""Profiles: one YAML file per study scale (smoke, quick, reference, full, paper) with run defaults and the grid.

Each file in ``fedlab/configs/profiles/`` (shipped with the package) opens with a header that says how to run it and what it costs.
A profile name or a path to such a file is accepted wherever a profile is.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import yaml

from fedlab import paths
from fedlab.core.peft_methods import METHODS, method_params
from fedlab.data import DATASETS, MAIN_DATASETS
from fedlab.data.user import user_data_of
from fedlab.errors import ConfigError, did_you_mean

from .analysis import Analysis
from .config import MIXED_RANK_STRATEGIES, SELECTS, SETTINGS, TRAINING_SETTINGS, RunConfig
from .curves import CurvePending, Curves, budget_from_curve, budgeted_overrides
from .resources import Resources
from .store import ResultStore
from .sweeps import SweepPending, read_sweep, sweep_gap, sweep_step

#: the aggregation study of notebook 07: FedAvg against the LoRA-aware strategies, and FedAvg under DP
AGGREGATION_STRATEGIES = ("fedavg", "ffa-lora", "fedsa-lora", "fedex-lora")
DP_NOISES = (0.3, 1.0, 3.0)

PROFILE_DIR = paths.PROFILES_DIR
GRID_KEYS = {
    "models",
    "datasets",
    "methods",
    "settings",
    "model_overrides",
    "dataset_overrides",
    "method_overrides",
    "seeds",
    "extra_seeds",
    "exclude",
    "aggregation",
}
#: the fields an ``exclude`` entry may match on
EXCLUDE_KEYS = {"model", "dataset", "method", "setting"}
#: overrides whose None is a value (the template's default system turn; select=None: the last round's
#: adapter), not "not given"
NULLABLE = ("system_prompt", "select")


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    defaults: dict
    grid: dict
    path: Path
    resources: Resources = Resources()
    analysis: Analysis = Analysis()
    #: the learning curves that set this profile's budgets (None: budgets are written in the profile)
    curves: Curves | None = None

    def config(self, dataset: str, setting: str, method: str = "lora", **overrides) -> RunConfig:
        """The run config of one grid cell: profile defaults, the backbone's own overrides (``grid.
        model_overrides``, keyed by the ``model`` override or the default backbone), the dataset's
        (``grid.dataset_overrides``), the method's (``grid.method_overrides``, e.g. the learning rate a
        ``fedlab sweep-lr`` chose; a key ``<backbone>/<method>`` applies to that backbone only, and
        ``<backbone>/<dataset>/<method>`` to that backbone on that dataset only), then the cell, then
        explicit overrides. In a profile with learning curves, a training setting's budget comes from its cell's
        curve (:class:`CurvePending` before it ran) and, with ``curves.sweep``, its learning rate from the sweep
        at that budget (:class:`SweepPending` until the sweep's winner is the rate pinned here)."""
        model = overrides.get("model") or self.defaults.get("model", RunConfig.model)
        spec = DATASETS.get(dataset)
        if spec is not None and spec.user and "data" not in overrides:  # a registered user file carries its data
            overrides = dict(overrides, data=user_data_of(spec))
        data = dict(self.defaults, **(self.grid.get("model_overrides") or {}).get(model, {}))
        data.update((self.grid.get("dataset_overrides") or {}).get(dataset, {}))
        if setting != "zeroshot":
            by_method = self.grid.get("method_overrides") or {}
            data.update(by_method.get(method, {}))
            data.update(by_method.get(f"{model}/{method}", {}))  # a backbone's own pin wins
            data.update(by_method.get(f"{model}/{dataset}/{method}", {}))  # and a dataset's pin for it wins over that
        data.update(dataset=dataset, setting=setting, method=method)
        if self.curves is not None and setting in TRAINING_SETTINGS and "steps" not in overrides:
            budget = self.budget(model, dataset, method)
            if budget is None:
                raise CurvePending(
                    f"the budget of {model} {dataset} {method} in profile {self.name!r} comes from its learning curve, "
                    f"which has not been run. Fix: fedlab curves --profile {self.name} --only-models {model} "
                    f"--only-datasets {dataset} --only-methods {method}"
                )
            data.update(
                budgeted_overrides(
                    setting,
                    budget["steps"],
                    self.curves,
                    clients=int(data.get("clients", 4)),
                    local_steps=int(data.get("local_steps", RunConfig.local_steps)),
                )
            )
            if self.curves.sweep and "lr" not in overrides:  # a sweep's own candidates name their rate
                why = sweep_gap(self.name, model, dataset, method, float(data.get("lr", RunConfig.lr)))
                if why is not None:
                    raise SweepPending(why)
        data.update({k: v for k, v in overrides.items() if v is not None or k in NULLABLE})
        return RunConfig.from_dict(data).validate()

    def curve_config(self, model: str, dataset: str, method: str) -> RunConfig:
        """The curve run of one (backbone, dataset, method) (see :meth:`curve_configs`)."""
        c = self.curves
        return self.config(
            dataset,
            "centralized",
            method,
            model=model,
            seed=c.seed,
            steps=c.cap,
            eval_every=c.every,
            select="validation",
        )

    def budget(self, model: str, dataset: str, method: str) -> dict | None:
        """The budget the finished curve of this cell sets (``budget_from_curve``), or None before it ran."""
        result = ResultStore().find(self.curve_config(model, dataset, method))
        return None if result is None else budget_from_curve(result, self.curves.tolerance)

    def zeroshot(self, dataset: str, **overrides) -> RunConfig:
        return self.config(dataset, "zeroshot", **overrides)

    @property
    def models(self) -> list[str]:
        """The backbones of the grid (``grid.models``; default: the one ``model`` of the defaults)."""
        return list(self.grid.get("models") or [self.defaults.get("model", RunConfig.model)])

    def zeroshots(self) -> list[RunConfig]:
        """The zero-shot floor of every (backbone, dataset) of the grid."""
        return [self.zeroshot(d, model=m) for m in self.models for d in self.grid["datasets"]]

    def curve_zeroshots(self) -> list[RunConfig]:
        """The zero-shot floors of the curves' datasets outside the grid (a curve is judged against its floors:
        ``fedlab zeroshot --profile P --datasets D`` runs one), per backbone of the curves."""
        if self.curves is None:
            return []
        extra = [d for d in (self.curves.datasets or ()) if d not in self.grid["datasets"]]
        return [self.zeroshot(d, model=m) for m in (self.curves.models or self.models) for d in extra]

    @property
    def seeds(self) -> list[int]:
        """The seeds each training cell is repeated with (``grid.seeds``; default: the one ``seed``)."""
        return list(self.grid.get("seeds") or [self.defaults.get("seed", 0)])

    def seeds_for(self, model: str, dataset: str, method: str, setting: str | None = None) -> list[int]:
        """The seeds of one (backbone, dataset, method) cell: the grid's, then the cell's own extra seeds, for a
        cell whose measured seed SD asks for more seeds than the grid's (the seed rule in the reference profile):
        ``grid.extra_seeds: {"<backbone>/<dataset>/<method>": [3]}`` for every setting, or ``{seeds: [3, 4],
        settings: [federated, centralized]}`` for those settings only (the rule is about the federated -
        centralized difference; the isolated comparison does not need them). ``setting`` None: the seeds any
        setting of the cell has."""
        extra = (self.grid.get("extra_seeds") or {}).get(f"{model}/{dataset}/{method}") or []
        if isinstance(extra, dict):
            extra = extra["seeds"] if setting is None or setting in extra["settings"] else []
        return self.seeds + [s for s in extra if s not in self.seeds]

    def cells(self) -> list[RunConfig]:
        """Every training run of the grid (backbone x dataset x method x setting x seed)."""
        out = []
        for model, d, m, s, seed in self._grid_keys():
            try:
                out.append(self.config(d, s, m, seed=seed, model=model))
            except CurvePending:  # listed by pending_cells()
                continue
        return out

    def pending_cells(self) -> list[tuple[str, str, str]]:
        """(backbone, dataset, method) of the grid whose budget waits for its learning curve."""
        if self.curves is None:
            return []
        keys = dict.fromkeys((model, d, m) for model, d, m, _, _ in self._grid_keys())
        return [k for k in keys if self.budget(*k) is None]

    def unswept_cells(self) -> list[tuple[tuple[str, str, str], str]]:
        """(backbone, dataset, method) of the grid whose budget is known but whose grid waits for its learning-rate
        sweep (``curves.sweep``), each with what the sweep asks next (:func:`~fedlab.experiment.sweeps.sweep_step`:
        ``sweep``, ``extend to <lr>`` or ``pin <lr>``)."""
        if self.curves is None or not self.curves.sweep:
            return []
        out = []
        for key in dict.fromkeys((model, d, m) for model, d, m, _, _ in self._grid_keys()):
            if self.budget(*key) is None:
                continue
            step = sweep_step(read_sweep(self.name, *key), self.curve_config(*key).lr)
            if step != "pinned":
                out.append((key, step))
        return out

    def cell_keys(self, datasets=None) -> list[tuple[str, str, str]]:
        """(backbone, dataset, method) of every cell of the grid, in grid order, cut cells included (see
        :meth:`excluded`); ``datasets``: only these of the grid's."""
        g = self.grid
        return [
            (model, d, m)
            for model in self.models
            for d in g["datasets"]
            if datasets is None or d in datasets
            for m in g["methods"]
        ]

    def _grid_keys(self):
        g = self.grid
        return [
            (model, d, m, s, seed)
            for model in self.models
            for d in g["datasets"]
            for m in g["methods"]
            for s in g["settings"]
            for seed in self.seeds_for(model, d, m, s)
            if not self.excluded(model=model, dataset=d, method=m, setting=s)
        ]

    @property
    def aggregation(self) -> dict | None:
        """The profile's aggregation study (``grid.aggregation``: dataset, method, dp_clip), or None when the
        profile has none (then ``make reproduce`` skips notebook 07)."""
        spec = self.grid.get("aggregation")
        return None if spec is None else {"dataset": "fpb", "method": "lora", "dp_clip": 1.0, **spec}

    def _study_config(self, dataset: str, method: str, **overrides) -> RunConfig:
        """One federated run of notebook 07's study. ``grid.aggregation.select``, where given, is the one
        checkpoint policy of all its runs (last: every strategy, FedAvg included, at its last round, with a
        federated validation curve and the held-out set scored once; null: at its last round, with the
        held-out set scored every round; either is needed where the profile selects on validation, which
        FedSA-LoRA and FedEx-LoRA cannot go back to)."""
        spec = self.aggregation or {}
        policy = {"select": spec["select"]} if "select" in spec else {}
        return self.config(dataset, "federated", method, **policy, **overrides)

    def aggregation_configs(
        self,
        dataset: str | None = None,
        method: str | None = None,
        *,
        strategies=AGGREGATION_STRATEGIES,
        dp_noises=DP_NOISES,
        dp_clip: float | None = None,
    ) -> list[RunConfig]:
        """The aggregation study of one federated cell (first backbone, first seed): each strategy, then
        FedAvg with server-side DP at each noise multiplier (notebook 07). Defaults: ``grid.aggregation``."""
        spec = self.aggregation or {"dataset": "fpb", "method": "lora", "dp_clip": 1.0}
        dataset, method = dataset or spec["dataset"], method or spec["method"]
        dp_clip = spec["dp_clip"] if dp_clip is None else dp_clip
        out = [self._study_config(dataset, method, strategy=s) for s in strategies]
        return out + [
            self._study_config(dataset, method, dp={"noise": float(z), "clip": float(dp_clip)}) for z in dp_noises
        ]

    def mixed_rank_configs(self, dataset: str | None = None, method: str | None = None) -> list[RunConfig]:
        """Clients of different compute (notebook 07): the aggregation cell with every client at the method's
        rank and at the largest of ``grid.aggregation.client_ranks`` (FedAvg; ``lora_alpha`` scaled with the
        rank; one run when the two are equal), then at their own ranks with each mixed-rank strategy. Empty
        without ``client_ranks``."""
        spec = self.aggregation or {}
        if not spec.get("client_ranks"):
            return []
        dataset, method = dataset or spec["dataset"], method or spec["method"]
        ranks = tuple(spec["client_ranks"])
        mixed = [self._study_config(dataset, method, strategy=s, client_ranks=ranks) for s in MIXED_RANK_STRATEGIES]
        own = self._study_config(dataset, method)
        top = mixed[0].client_method_params()  # the largest rank, alpha scaled as the mixed runs scale it
        if top["r"] == method_params(method, own.method_params)["r"]:
            return [own, *mixed]  # the largest rank is the method's: one uniform run
        wide = self._study_config(dataset, method, method_params=dict(own.method_params, **top))
        return [own, wide, *mixed]

    def secagg_configs(self, dataset: str | None = None, method: str | None = None) -> list[RunConfig]:
        """Secure aggregation (notebook 07): the aggregation cell's FedAvg, then the same under SecAgg+ with
        ``grid.aggregation.secagg``'s settings. Empty without ``secagg``."""
        spec = self.aggregation or {}
        if spec.get("secagg") is None:
            return []
        dataset, method = dataset or spec["dataset"], method or spec["method"]
        plain = self._study_config(dataset, method)
        return [plain, self._study_config(dataset, method, secagg=dict(spec["secagg"]))]

    def study_configs(self) -> list[RunConfig]:
        """Every run of notebook 07's study (aggregation and DP, mixed ranks, SecAgg+), each once (FedAvg is
        shared by the three parts); empty for a profile without ``grid.aggregation``."""
        if self.aggregation is None:
            return []
        configs = self.aggregation_configs() + self.mixed_rank_configs() + self.secagg_configs()
        return list({c.hash(): c for c in configs}.values())

    def curve_configs(self) -> list[RunConfig]:
        """The curve runs of the profile's ``curves:`` block: centralized, to the cap, scored on the pooled
        validation split every ``every`` steps (see :mod:`fedlab.experiment.curves`). A (backbone, dataset,
        method) that ``grid.exclude`` cuts (an entry without a ``setting``) gets no curve: it has no budget to
        set."""
        c = self.curves
        if c is None:
            return []
        return [
            self.curve_config(model, d, m)
            for model in (c.models or self.models)
            for d in (c.datasets or self.grid["datasets"])
            for m in (c.methods or self.grid["methods"])
            if not self.excluded(model=model, dataset=d, method=m)
        ]

    def curve_gate(self, cfg: RunConfig) -> RunConfig | None:
        """The curve that screens curve ``cfg`` (``curves.gate``): the gate method's curve of the same backbone
        and dataset, for a dataset outside the grid and a method other than the gate; None where no gate applies
        (``cfg`` then runs unconditionally). Whether the gate's curve beat its floors is a paired test on its
        held-out rows, made where the floors are (:func:`fedlab.reporting.curves.gate_state`)."""
        c = self.curves
        if c is None or c.gate is None or cfg.method == c.gate or cfg.dataset in self.grid["datasets"]:
            return None
        return self.curve_config(cfg.model, cfg.dataset, c.gate)

    def excluded(self, **cell) -> bool:
        """True when ``grid.exclude`` leaves this cell out (an entry matches when all its fields do)."""
        return any(all(cell.get(k) == v for k, v in rule.items()) for rule in self.grid.get("exclude") or [])


def profile_names() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def load_profile(name_or_path: str) -> Profile:
    path = Path(name_or_path)
    if not (path.suffix in (".yaml", ".yml") and path.is_file()):
        if name_or_path not in profile_names():
            raise ConfigError(
                f"Unknown profile {name_or_path!r}. {did_you_mean(name_or_path, profile_names())} "
                f"Or pass the path of a profile YAML file."
            )
        path = PROFILE_DIR / f"{name_or_path}.yaml"
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(
            f"Profile {path} is not valid YAML ({where.strip() or 'see below'}): "
            f"{getattr(exc, 'problem', exc)}. Fix the file (compare fedlab/configs/profiles/quick.yaml)."
        ) from exc
    if not isinstance(data, dict) or not isinstance(data.get("defaults"), dict):
        raise ConfigError(f"Profile {path} needs a 'defaults:' mapping (see fedlab/configs/profiles/quick.yaml).")
    unknown = sorted(set(data) - {"description", "defaults", "grid", "resources", "analysis", "curves"})
    if unknown:
        raise ConfigError(
            f"Profile {path}: unknown top-level keys {unknown}; allowed: description, defaults, grid, "
            f"resources, analysis, curves."
        )
    fields = {f.name for f in dataclasses.fields(RunConfig)} - {"dataset", "setting", "method"}
    bad = sorted(set(data["defaults"]) - fields)
    if bad:
        raise ConfigError(f"Profile {path}: unknown run setting(s) {bad}. {did_you_mean(bad[0], fields)}")
    grid = dict(data.get("grid") or {})
    bad = sorted(set(grid) - GRID_KEYS)
    if bad:
        hint = (
            " A domain's datasets come from the dataset registry: list them in grid.datasets."
            if "domains" in bad
            else ""
        )
        raise ConfigError(f"Profile {path}: unknown grid key(s) {bad}; allowed: {sorted(GRID_KEYS)}.{hint}")
    grid.setdefault("datasets", [name for name in DATASETS if name in MAIN_DATASETS])
    grid.setdefault("methods", list(METHODS))
    grid.setdefault("settings", list(TRAINING_SETTINGS))
    models = grid.get("models")
    if models is not None and (
        not isinstance(models, list)
        or not models
        or not all(isinstance(x, str) for x in models)
        or len(set(models)) != len(models)
    ):
        raise ConfigError(
            f"Profile {path}: grid.models must be a list of distinct backbone names, e.g. "
            f"[smollm2-135m, gemma3-270m]; got {models!r}."
        )
    agg = grid.get("aggregation")
    if agg is not None and (
        not isinstance(agg, dict)
        or set(agg) - {"dataset", "method", "dp_clip", "client_ranks", "secagg", "select"}
        or agg.get("select") not in SELECTS
    ):
        raise ConfigError(
            f"Profile {path}: grid.aggregation must be a mapping with dataset, method and dp_clip (and, for "
            f"the mixed-rank comparison, client_ranks; for secure aggregation, secagg settings; select: last, "
            f"null or validation, the checkpoint policy of all its runs), e.g. {{dataset: fpb, method: lora, "
            f"dp_clip: 1.0, client_ranks: [4, 8, 16, 16], secagg: {{}}}}; got {agg!r}."
        )
    ranks = (agg or {}).get("client_ranks")
    if ranks is not None and (
        not isinstance(ranks, list) or not ranks or any(isinstance(r, bool) or not isinstance(r, int) for r in ranks)
    ):
        raise ConfigError(
            f"Profile {path}: grid.aggregation.client_ranks must be a list of integer LoRA ranks, one per "
            f"client, e.g. [4, 8, 16, 16]; got {ranks!r}."
        )
    exclude = grid.get("exclude") or []
    if not isinstance(exclude, list) or not all(isinstance(e, dict) and e and set(e) <= EXCLUDE_KEYS for e in exclude):
        raise ConfigError(
            f"Profile {path}: grid.exclude must be a list of mappings over {sorted(EXCLUDE_KEYS)}, e.g. "
            f"[{{model: mistralai/Mistral-7B-v0.3, method: lora}}]; got {exclude!r}."
        )
    for key in ("model_overrides", "dataset_overrides", "method_overrides"):
        for name, extra in (grid.get(key) or {}).items():
            bad = sorted(set(extra) - fields) if isinstance(extra, dict) else ["(not a mapping)"]
            if bad:
                raise ConfigError(f"Profile {path}: {key}.{name} has unknown setting(s) {bad}.")
    seeds = grid.get("seeds")
    if seeds is not None and (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(x, int) for x in seeds)
        or len(set(seeds)) != len(seeds)
    ):
        raise ConfigError(
            f"Profile {path}: grid.seeds must be a list of distinct integers, e.g. [0, 1, 2]; got {seeds!r}."
        )
    for cell, extra in (grid.get("extra_seeds") or {}).items():
        parts = str(cell).split("/")
        if len(parts) != 3 or parts[1] not in grid["datasets"] or parts[2] not in grid["methods"]:
            raise ConfigError(
                f"Profile {path}: grid.extra_seeds key {cell!r} must be '<backbone>/<dataset>/<method>' of the grid."
            )
        seeds_, settings_ = (extra.get("seeds"), extra.get("settings")) if isinstance(extra, dict) else (extra, [])
        if (
            not isinstance(seeds_, list)
            or not all(isinstance(x, int) for x in seeds_)
            or (isinstance(extra, dict) and set(extra) != {"seeds", "settings"})
            or not isinstance(settings_, list)
            or not set(settings_) <= set(grid["settings"])
        ):
            raise ConfigError(
                f"Profile {path}: grid.extra_seeds.{cell} must be a list of integers (every setting) or "
                f"{{seeds: [...], settings: [...]}} with settings of the grid {grid['settings']}; got {extra!r}."
            )
    margins = (data.get("analysis") or {}).get("margins") or {}
    bad = sorted(set(margins) - set(DATASETS))
    if bad:
        raise ConfigError(
            f"Profile {path}: analysis.margins names unknown dataset(s) {bad}. {did_you_mean(bad[0], DATASETS)}"
        )
    for s in grid["settings"]:
        if s not in SETTINGS:
            raise ConfigError(f"Profile {path}: unknown setting {s!r} in grid. {did_you_mean(s, SETTINGS)}")
    profile = Profile(
        path.stem,
        str(data.get("description", "")),
        dict(data["defaults"]),
        grid,
        path,
        Resources.from_dict(data.get("resources")),
        Analysis.from_dict(data.get("analysis")),
        Curves.from_dict(data.get("curves")),
    )
    for cfg in profile.zeroshots() + profile.cells() + profile.curve_configs():
        cfg.validate()
    curves = profile.curves
    if curves is not None and curves.gate is not None:
        methods = list(curves.methods or profile.grid["methods"])
        if curves.gate not in methods:
            raise ConfigError(
                f"Profile {profile.name!r}: curves.gate {curves.gate!r} is not one of the curves' methods {methods}. "
                f"{did_you_mean(curves.gate, methods)} Fix: name one of them, or drop curves.gate."
            )
    return profile
