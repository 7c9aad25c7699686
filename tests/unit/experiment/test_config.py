"""experiment.config: the names a run may use are declared once and agree across the package."""

import pytest

from fedlab.data import DATASETS, MAIN_DATASETS, domains
from fedlab.errors import ConfigError
from fedlab.experiment.config import SETTINGS, STRATEGIES, STRATEGY_DEFAULTS, TRAINING_SETTINGS, strategy_params
from fedlab.fl.strategies import STRATEGY_CLASSES
from fedlab.reporting.frames import SETTING_ORDER


def test_names_are_declared_once_and_agree():
    assert sorted(SETTING_ORDER) == sorted(SETTINGS) and set(TRAINING_SETTINGS) == set(SETTINGS) - {"zeroshot"}
    assert set(STRATEGY_CLASSES) == set(STRATEGIES) == set(STRATEGY_DEFAULTS)
    assert MAIN_DATASETS == ("fpb", "fiqa_sa", "medqa", "medmcqa") and "pubmedqa" in DATASETS
    assert domains() == {"finance": ["fpb", "fiqa_sa"], "healthcare": ["medqa", "medmcqa"]}
    with pytest.raises(ConfigError, match="are not parameters of fedprox"):
        strategy_params("fedprox", {"mu": 1})
