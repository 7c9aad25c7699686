"""Experiments: run configs, profiles, run data, typed results and their store, provenance, runner, baselines.

``config`` declares what a run may be (settings, strategies, faults) and hashes it; ``profiles``
load the YAML scales of the study; ``rundata`` builds a run's eval rows and client partitions;
``store`` holds :class:`RunResult` files; ``provenance`` says what produced them; ``runner`` runs or
loads a config; ``baselines`` are the zero-shot, centralized and isolated settings.
"""
