"""Flower's Deployment Engine on one machine: SuperLink + one SuperNode per client, TLS, a cached run.

``federation`` starts and stops the processes on loopback, ``tls`` makes a self-signed CA and
server certificate, ``run`` runs one federated config there; the app folder ``app/`` is what
``flwr run`` submits (its components are fedlab's installed ServerApp and ClientApp).
"""
