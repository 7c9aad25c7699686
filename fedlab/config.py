"""Run configuration: one frozen dataclass per run, validated, hashed, and named from its content."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .errors import ConfigError, did_you_mean

SETTINGS = ("zeroshot",)


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run's result (and nothing that does not).

    ``dtype`` and ``source`` may be given as ``auto``; :meth:`resolved` pins them to what this
    machine will actually use, and the hash is taken over the resolved config, so a bf16 result is
    never served to an fp32 request.
    """

    dataset: str
    setting: str = "zeroshot"
    model: str = "smollm2-135m"
    dtype: str = "auto"
    source: str = "auto"
    seed: int = 0
    eval_fraction: float = 0.25
    max_eval: int | None = None  # evaluate on the first N rows of the fixed eval split (None = all)
    evaluator: str = "loglik"
    max_length: int = 512
    eval_batch_size: int = 8
    n_boot: int = 1000
    extra: dict = field(default_factory=dict)

    def validate(self) -> "RunConfig":
        from .data import DATASETS
        from .evaluate import EVALUATORS

        if self.dataset not in DATASETS:
            raise ConfigError(f"Unknown dataset {self.dataset!r}. {did_you_mean(self.dataset, DATASETS)}")
        if self.setting not in SETTINGS:
            raise ConfigError(f"Unknown setting {self.setting!r}. {did_you_mean(self.setting, SETTINGS)}")
        if self.evaluator not in EVALUATORS:
            raise ConfigError(f"Unknown evaluator {self.evaluator!r}. {did_you_mean(self.evaluator, EVALUATORS)}")
        if not 0 < self.eval_fraction < 1:
            raise ConfigError(f"eval_fraction must be in (0, 1), got {self.eval_fraction}. Fix: e.g. 0.25.")
        if self.max_eval is not None and self.max_eval <= 0:
            raise ConfigError(f"max_eval must be positive or None, got {self.max_eval}.")
        for name in ("max_length", "eval_batch_size"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}.")
        if self.n_boot < 0:
            raise ConfigError(f"n_boot must be >= 0, got {self.n_boot}.")
        return self

    def resolved(self) -> "RunConfig":
        """Pin ``auto`` values (dtype, data source) to what this machine uses."""
        from .data import resolve_source
        from .models import resolve_dtype

        return dataclasses.replace(
            self.validate(), dtype=resolve_dtype(self.dtype), source=resolve_source(self.source)
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def hash(self) -> str:
        from .results import config_hash

        return config_hash(self.to_dict())

    def stem(self) -> str:
        """File stem of the result: readable fields plus a short hash (no timestamps)."""
        model = self.model.replace("/", "--")
        return f"{self.setting}-{self.dataset}-{model}-{self.evaluator}-{self.hash()[:10]}"

    @classmethod
    def from_dict(cls, data: dict) -> "RunConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(
                f"Unknown config key(s) {unknown}. {did_you_mean(unknown[0], names)} "
                f"Fix: remove or rename them."
            )
        return cls(**data)
