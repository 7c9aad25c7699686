"""How a profile's results are judged, fixed in the profile before any number is seen."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from fedlab.errors import ConfigError, dataclass_from_mapping


@dataclass(frozen=True)
class Analysis:
    """The pre-registered analysis of a profile (the ``analysis:`` block of its YAML).

    Attributes:
        margin: equivalence margin on the primary metric (macro-F1 for sentiment, accuracy for
            multiple choice): federated and centralized are *equivalent* when the 90 % CI of their
            paired difference lies inside ``[-margin, margin]`` (TOST at ``alpha``).
        alpha: significance level of every test, after Holm correction across the profile's cells.
        n_boot: paired bootstrap resamples of the evaluation rows.
        seed: seed of the resampling.
        margins: a margin per dataset, where the power of its eval set calls for its own (others: ``margin``).
        random_seeds: seeds as a random effect (hierarchical bootstrap over seeds and rows) instead of fixed
            repeats (rows only).
        precision_cap: the precision rule (0: off). A federated - centralized verdict whose 90 % CI (the one
            TOST decides with) is wider than the margin on each side, once its cell has the seeds the seed rule
            asks for, asks for one more seed of federated and centralized, until the CI fits or each side has
            this many seeds. The rule looks at the CI's width only, never at where it lies or at the verdict.
    """

    margin: float = 0.03
    alpha: float = 0.05
    n_boot: int = 2000
    seed: int = 0
    margins: dict = dataclasses.field(default_factory=dict)
    random_seeds: bool = False
    precision_cap: int = 0

    def margin_for(self, dataset: str) -> float:
        """The pre-registered margin of ``dataset``."""
        return float(self.margins.get(dataset, self.margin))

    @classmethod
    def from_dict(cls, data: dict | None) -> Analysis:
        out = dataclass_from_mapping(cls, data, "analysis")
        if not 0 < out.margin < 1:
            raise ConfigError(
                f"analysis.margin must be in (0, 1), got {out.margin}. Fix: e.g. 0.03 (three points of macro-F1)."
            )
        if not 0 < out.alpha < 0.5:
            raise ConfigError(f"analysis.alpha must be in (0, 0.5), got {out.alpha}. Fix: e.g. 0.05.")
        for name, m in out.margins.items():
            if not 0 < float(m) < 1:
                raise ConfigError(f"analysis.margins.{name} must be in (0, 1), got {m}. Fix: e.g. 0.05.")
        if out.precision_cap and out.precision_cap < 3:
            raise ConfigError(
                f"analysis.precision_cap must be 0 (off) or at least 3 seeds, got {out.precision_cap}. "
                "Fix: e.g. 9 (the most seeds a side the precision rule may ask for)."
            )
        if out.n_boot < 200:
            raise ConfigError(f"analysis.n_boot must be at least 200, got {out.n_boot}. Fix: e.g. 2000.")
        return out

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
