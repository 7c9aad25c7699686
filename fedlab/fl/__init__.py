"""Flower apps of fedlab: the ClientApp and ServerApp (Message API) and the simulation wrapper.

Notebooks and the runner call :func:`fedlab.fl.simulation.run_federated`; nothing else touches
Flower's simulation API. The same ``client_app.app`` / ``server_app.app`` run on Flower's
Deployment Engine (``flwr run``) as separate processes.
"""
