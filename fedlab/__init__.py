"""fedlab: federated parameter-efficient fine-tuning of LLMs on private domain data.

Layers, each importing only from those below it (``tests/unit/test_layers.py`` enforces this):
``core`` (models, PEFT, prompts, training, evaluation, metrics, energy) <- ``data`` (records,
registry, splits, partitions) <- ``experiment`` (configs, profiles, results, baselines) <-
``fl`` (Flower apps, strategies, simulation, deployment) <- ``runs`` (the runner over every setting,
learning-rate sweeps) and, beside it, ``reporting`` (tables, claims, figures) <- ``study`` (what the
notebooks call) <- ``pipeline`` (papermill, HTML reports, ``make figures``)
<- ``cli`` (the ``fedlab`` command). ``errors``, ``paths`` and ``io`` sit below them all.
"""

__version__ = "0.1.0"
