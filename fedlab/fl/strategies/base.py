"""What every fedlab strategy adds to a Flower strategy, and the client-side part it comes with.

A fedlab strategy is a Flower ``Strategy`` subclass (Message API) that also owns:

* what travels: :meth:`FedlabStrategy.sent` (the adapter arrays sent both ways), what each client
  receives of them (:meth:`~FedlabStrategy.sent_to`, where :attr:`~FedlabStrategy.per_client`: a
  mixed-rank strategy sends each client an adapter of its own rank) and
  :meth:`~FedlabStrategy.records` (extra array records beside them, e.g. FedEx-LoRA's residuals);
* the aggregation step around Flower's own ``aggregate_train``: :meth:`~FedlabStrategy.aggregate`
  updates the global adapter, measures what averaging the factors separately misses, and lets a
  subclass act after averaging (:meth:`~FedlabStrategy.after_aggregate`);
* its checkpoint state (:attr:`~FedlabStrategy.STATE`, :meth:`~FedlabStrategy.state`,
  :meth:`~FedlabStrategy.restore`);
* its client side (:attr:`~FedlabStrategy.client`): a :class:`ClientSide` subclass the ClientApp
  instantiates once per run and worker.

The round loop (:mod:`fedlab.fl.rounds`) talks to a strategy through these methods only, so it
names no aggregation variant.
"""

from __future__ import annotations

import numpy as np
from flwr.app import ArrayRecord

from fedlab.core import lora_aggregation as lora
from fedlab.core.peft_methods import adapter_state, load_adapter_state

from ..adapter import GlobalAdapter
from ..codec import arrays_to_dict, dict_to_arrays, to_float32


class ClientSide:
    """A strategy's part on a client: what the client loads from a message, what it trains, what it sends
    back and what it keeps. One instance per run and worker (its state lives as long as the run)."""

    #: whether this run needs a model of its own (not shared with other runs of the same backbone): True
    #: where the strategy relies on the run's seeded initialisation or changes the base weights
    private_model = False
    #: whether each client holds a personalised model that also scores the shared eval set
    personalised = False

    def __init__(self, model):
        self.model = model

    def receive(self, content, context) -> None:
        """Load the arrays the server sent over this model's adapter (what did not travel stays as it is)."""
        load_adapter_state(self.model, dict(adapter_state(self.model), **arrays_to_dict(content["arrays"])))

    def reply(self, context) -> dict:
        """The trained adapter arrays sent back to the server."""
        return dict(adapter_state(self.model))


class FedlabStrategy:
    """Mixin of the fedlab hooks; the concrete strategies put it before a Flower strategy class.

    Flower's ``aggregate_train`` is left as Flower wrote it (its DP accountant checks for FedAvg's own);
    fedlab calls it from :meth:`aggregate`."""

    #: strategy attributes carried across rounds (checkpointed), where the Flower class keeps them
    STATE: tuple[str, ...] = ()
    #: those of them Flower keeps as an ``ArrayRecord`` (checkpointed as numpy arrays)
    RECORD_STATE: tuple[str, ...] = ()
    #: no global model each round (each client keeps part of it): scored per client at the end
    personalised = False
    #: whether clients receive different arrays (then :meth:`sent_to` gives each client's)
    per_client = False
    #: whether the round runs under secure aggregation (the federation hands :meth:`aggregate` the mean only)
    secure = False
    client: type[ClientSide] = ClientSide

    @classmethod
    def options(cls, cfg) -> dict:
        """Constructor arguments this strategy takes from the run config (none by default)."""
        return {}

    def __init__(self, *args, scaling: float = 1.0, **kwargs):
        self.scaling = scaling  # LoRA's alpha / r: the aggregation error is measured on s * B @ A
        super().__init__(*args, **kwargs)

    # --- what travels
    def sent(self, arrays: dict) -> dict:
        """The adapter arrays that travel (both ways) under this strategy."""
        return dict(arrays)

    def sent_to(self, arrays: dict, client: int) -> dict:
        """What client ``client`` (a partition id) receives of the arrays :meth:`sent` gives: all of them
        unless the strategy is :attr:`per_client`."""
        return arrays

    def records(self) -> dict[str, ArrayRecord]:
        """Array records sent beside the adapter, by record name (none by default)."""
        return {}

    # --- aggregation
    def aggregate(self, rnd: int, replies: list, adapter: GlobalAdapter) -> dict:
        """Aggregate the round's successful replies into ``adapter``; returns what the round records."""
        arrays = [dict(adapter.arrays, **arrays_to_dict(r.content["arrays"])) for r in replies]
        weights = [r.content["metrics"]["num-examples"] for r in replies]
        error = self.aggregation_error(arrays, weights)
        new, _ = self.aggregate_train(rnd, replies)
        adapter.update(to_float32(new))
        self.after_aggregate(arrays, weights, adapter)
        return {"aggregation_error": error, "privacy": self.privacy_spent_now()}

    def aggregation_error(self, arrays: list[dict], weights) -> dict | None:
        """What averaging A and B separately misses (0 for IA3, and when A is shared)."""
        return lora.aggregation_error(arrays, weights, self.scaling)

    def after_aggregate(self, arrays: list[dict], weights, adapter: GlobalAdapter) -> None:
        """Called after each aggregation with the clients' full adapters (nothing by default)."""

    def privacy_spent_now(self) -> dict | None:
        """Cumulative (epsilon, delta) after the last release; None without DP."""
        return None

    # --- checkpoint state
    def state(self) -> dict:
        """The strategy's state across rounds (server optimizer moments, momentum, current arrays)."""
        return {k: getattr(self, k) for k in self.STATE if getattr(self, k, None) is not None}

    def restore(self, state: dict, adapter: GlobalAdapter) -> None:
        """Set the state a checkpoint kept (``adapter``: the global adapter it was saved with)."""
        for name, value in state.items():
            if name in self.RECORD_STATE and isinstance(value, dict):
                value = dict_to_arrays({k: np.asarray(v) for k, v in value.items()})
            setattr(self, name, value)
