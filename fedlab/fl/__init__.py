"""Flower: ClientApp and ServerApp (Message API), round loop, strategies, checkpoints, simulation, deployment.

Importing this package registers the federated executor with :mod:`fedlab.experiment.runner`, so
``run(config)`` handles the ``federated`` setting; the same ``client_app.app`` / ``server_app.app``
run on Flower's Deployment Engine (``flwr run``) as separate processes.
"""

from . import simulation  # noqa: F401  (registers the federated executor)
