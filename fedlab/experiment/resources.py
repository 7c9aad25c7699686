"""How a run uses the machine: outside the config and its hash, because it does not change the result."""

from __future__ import annotations

from dataclasses import dataclass

from fedlab.errors import ConfigError, dataclass_from_mapping


@dataclass(frozen=True)
class Resources:
    """What each simulated Flower client gets (Ray resources).

    Attributes:
        client_gpus: share of a GPU per simulated client when there is one (Ray ``num_gpus``):
            1.0 runs clients one after another on the whole GPU, 0.5 two at a time, ... LoRA,
            QLoRA and IA3 all train on that GPU.
        client_cpus: CPU cores per simulated client (``None``: all cores, clients one at a time).
    """

    client_gpus: float = 1.0
    client_cpus: int | None = None
    #: share of GPU 0 the ServerApp's own model copy may use (aggregation, federated evaluation): taken
    #: out of the clients' slots on that GPU, and a cap on the driver's allocations there
    server_gpu: float = 0.25

    @classmethod
    def from_dict(cls, data: dict | None) -> Resources:
        out = dataclass_from_mapping(cls, data, "resource")
        if not 0 < out.client_gpus <= 1:
            raise ConfigError(
                f"client_gpus must be in (0, 1], got {out.client_gpus}. Fix: e.g. 0.5 for two clients per GPU."
            )
        if not 0 <= out.server_gpu < 1:
            raise ConfigError(f"server_gpu must be in [0, 1), got {out.server_gpu}. Fix: e.g. 0.25.")
        if out.client_cpus is not None and out.client_cpus < 1:
            raise ConfigError(f"client_cpus must be a positive integer or null, got {out.client_cpus}.")
        return out


DEFAULT_RESOURCES = Resources()


@dataclass(frozen=True)
class Placement:
    """Where a federated simulation's clients run: Ray's ``num_cpus`` / ``num_gpus`` per client and how
    many train at once."""

    num_cpus: int
    num_gpus: float
    at_once: int
    server_gpu: float
    why: str

    def describe(self, n_clients: int) -> str:
        return (
            f"{self.at_once} of {n_clients} clients train at once ({self.num_cpus} CPU core(s)"
            + (
                f", {self.num_gpus:g} GPU each; the ServerApp's model keeps {self.server_gpu:g} of GPU 0"
                if self.num_gpus
                else ""
            )
            + f"): {self.why}"
        )


def placement(resources: Resources, n_clients: int, cpus: int, gpus: int) -> Placement:
    """How the clients of a simulation share the machine.

    Without a GPU each client gets ``client_cpus`` cores (default all: one at a time, each using every
    core). With GPUs, ``client_gpus`` packs ``floor(1 / client_gpus)`` clients per GPU, less the share
    ``server_gpu`` of GPU 0 that the ServerApp's model uses; unless ``client_cpus`` is given the cores are
    divided among the clients that fit, so that Ray really starts that many (a client asking for every
    core would otherwise run alone, whatever its GPU share).
    """
    n_clients = max(1, int(n_clients))
    if not gpus:
        per = min(resources.client_cpus or cpus, cpus)
        at_once = max(1, min(n_clients, cpus // per))
        why = "no GPU; each client gets " + ("all cores" if resources.client_cpus is None else f"client_cpus={per}")
        return Placement(per, 0.0, at_once, 0.0, why)
    share = resources.client_gpus
    slots = max(1, int((gpus - resources.server_gpu) / share + 1e-9))
    at_once = min(n_clients, slots)
    per = min(resources.client_cpus or max(1, cpus // at_once), cpus)
    at_once = max(1, min(at_once, cpus // per))
    why = (
        f"{gpus} GPU(s) x {share:g} per client = {slots} slot(s) after the server's {resources.server_gpu:g}, "
        f"{cpus} cores / {per} per client"
    )
    return Placement(per, share, at_once, resources.server_gpu, why)
