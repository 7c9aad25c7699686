"""Runs: the layer above the federation that runs (or loads) any configuration of the study.

``runner`` dispatches a config to its setting's executor (imported directly: the baselines of
:mod:`fedlab.experiment`, the federated simulation of :mod:`fedlab.fl`) and caches the result;
``sweep`` chooses a learning rate from recorded runs.
"""
