"""Experiments: run configs, profiles, run data, typed results and their store, provenance, baselines.

``config`` declares what a run may be (settings, strategies, faults) and hashes it; ``profiles``
load the YAML scales of the study; ``rundata`` builds a run's eval rows and client partitions;
``store`` holds :class:`RunResult` files and ``migrate`` rewrites older ones; ``provenance`` says
what produced them; ``steps`` are a run's calls into the core; ``baselines`` are the zero-shot,
centralized and isolated settings. Running a config is :mod:`fedlab.runs`.
"""
