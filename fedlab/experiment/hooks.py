"""Test and demonstration hooks of a run: outside the config and its hash, unused in production runs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RunHooks:
    """What a test may ask of a run besides its config.

    Attributes:
        spy: a list that receives, per federated round, every message the ServerApp sent and received.
        stop_after: stop a federated run after this round as an interruption would (the checkpoint
            stays; the result is written with status ``partial`` and never served from the cache).
        kill_node_after_round: ``(node, round)``: on the Deployment Engine, SIGKILL that SuperNode
            once the round's checkpoint exists.
    """

    spy: list | None = None
    stop_after: int | None = None
    kill_node_after_round: tuple[int, int] | None = None


NO_HOOKS = RunHooks()
