"""The global adapter on the server: one object for its arrays and the server's model they belong in.

The arrays (float32 numpy, by peft parameter name) are what travels, what is checkpointed and what is
hashed; the model is where they are scored and generated with. :class:`GlobalAdapter` keeps the two
in step: an update replaces the arrays, and the model is brought up to date when it is next used.
"""

from __future__ import annotations

import numpy as np

from fedlab.core.peft_methods import AdapterSnapshot, adapter_hash, adapter_nbytes, adapter_state, load_adapter_state


class GlobalAdapter:
    def __init__(self, model):
        self._model = model
        self._arrays = dict(adapter_state(model))
        self._stale = False

    @property
    def arrays(self) -> dict:
        """The current arrays (read them; change them through :meth:`update`)."""
        return self._arrays

    def update(self, arrays: dict) -> None:
        """Replace the named arrays (the others stay, e.g. FFA-LoRA's frozen A)."""
        self._arrays = dict(self._arrays, **{k: np.asarray(v, np.float32) for k, v in arrays.items()})
        self._stale = True

    @property
    def model(self):
        """The server's model with the current arrays loaded."""
        if self._stale:
            load_adapter_state(self._model, self._arrays)
            self._stale = False
        return self._model

    def copy(self) -> dict:
        """An independent copy of the arrays (a checkpoint to go back to)."""
        return {k: np.array(v, copy=True) for k, v in self._arrays.items()}

    def hash(self) -> str:
        return adapter_hash(self._arrays)

    def nbytes(self) -> int:
        return adapter_nbytes(self._arrays)

    def snapshot(self) -> AdapterSnapshot:
        return AdapterSnapshot.of(self.model)
