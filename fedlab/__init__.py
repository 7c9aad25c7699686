"""fedlab: federated parameter-efficient fine-tuning of LLMs on private domain data.

Main entry points: :func:`fedlab.runner.run` (one cell of the study grid, cached by config hash),
:func:`fedlab.profiles.load_profile` (smoke / quick / paper), :mod:`fedlab.study` (what the
notebooks call) and the ``fedlab`` command line (:mod:`fedlab.cli`).
"""

__version__ = "0.1.0"
