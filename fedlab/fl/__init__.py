"""Flower: ClientApp and ServerApp (Message API), round loop, strategies, checkpoints, simulation, deployment.

:func:`.simulation.run_federated` is the federated executor :mod:`fedlab.runs.runner` dispatches to;
the same ``client_app.app`` / ``server_app.app`` run on Flower's Deployment Engine (``flwr run``) as
separate processes.
"""
