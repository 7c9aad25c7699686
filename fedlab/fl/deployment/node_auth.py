"""SuperNode authentication keys: one NIST P-384 key pair per SuperNode, in the OpenSSH formats Flower
reads (the private key for ``flower-supernode --auth-supernode-private-key``, the public key for
``flwr supernode register``). A SuperLink started with ``--enable-supernode-auth`` admits only the
nodes whose public keys were registered with it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


@dataclass(frozen=True)
class NodeKey:
    private: Path
    public: Path


def make_node_key(folder: Path, name: str) -> NodeKey:
    """A fresh key pair ``<name>`` / ``<name>.pub`` in ``folder`` (the private key readable by its owner only)."""
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP384R1())
    private, public = folder / name, folder / f"{name}.pub"
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
    )
    private.chmod(0o600)
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        + f" fedlab-{name}\n".encode()
    )
    return NodeKey(private, public)
