"""Checkpoints of a federated run: global adapter, strategy state and history after each round."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fedlab.errors import FedlabError
from fedlab.io import atomic_write_text


class Checkpoint:
    """Global adapter, strategy state and history after each completed round (atomic writes)."""

    def __init__(self, folder: Path, config_hash: str):
        self.folder, self.config_hash = Path(folder), config_hash

    def save(self, rnd: int, arrays: dict, history: list, strategy, best: dict | None = None) -> None:
        """``best`` (select=validation): the best checkpoint so far, ``{"round", "score", "arrays"}``."""
        self.folder.mkdir(parents=True, exist_ok=True)
        state = strategy.state()
        blobs = {f"adapter/{k}": v for k, v in arrays.items()}
        if best:
            blobs.update({f"best/{k}": v for k, v in best["arrays"].items()})
        for name, value in state.items():
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for k, v in items:
                blobs[f"strategy/{name}/{k}"] = np.asarray(v.numpy() if hasattr(v, "numpy") else v)
        tmp = self.folder / f".round_{rnd}.npz.tmp"
        with open(tmp, "wb") as fh:
            np.savez(fh, **blobs)
        tmp.replace(self.folder / f"round_{rnd}.npz")
        meta = {
            "config_hash": self.config_hash,
            "round": rnd,
            "history": history,
            "strategy_state": {k: ("dict" if isinstance(v, dict) else "list") for k, v in state.items()},
            "best": {"round": best["round"], "score": best["score"]} if best else None,
        }
        atomic_write_text(self.folder / "state.json", json.dumps(meta, default=str))
        for old in self.folder.glob("round_*.npz"):
            if old.name != f"round_{rnd}.npz":
                old.unlink()

    def last_round(self) -> int:
        """The last completed round (0 when there is no checkpoint yet)."""
        path = self.folder / "state.json"
        try:
            return int(json.loads(path.read_text())["round"])
        except (OSError, ValueError, KeyError):
            return 0

    def load_best(self) -> dict | None:
        """The best checkpoint saved beside the last round (select=validation), or None."""
        path = self.folder / "state.json"
        if not path.is_file():
            return None
        meta = json.loads(path.read_text())
        if not meta.get("best"):
            return None
        blobs = np.load(self.folder / f"round_{int(meta['round'])}.npz")
        arrays = {k.split("/", 1)[1]: blobs[k] for k in blobs.files if k.startswith("best/")}
        return dict(meta["best"], arrays=arrays)

    def load(self):
        """``(round, arrays, history, strategy_state)`` of the last completed round, or None."""
        path = self.folder / "state.json"
        if not path.is_file():
            return None
        meta = json.loads(path.read_text())
        if meta.get("config_hash") != self.config_hash:
            raise FedlabError(
                f"checkpoint {self.folder} belongs to another config (hash {meta.get('config_hash', '?')[:10]}). "
                f"Fix: delete the folder, or rerun with the config that wrote it."
            )
        rnd = int(meta["round"])
        blobs = np.load(self.folder / f"round_{rnd}.npz")
        arrays = {k.split("/", 1)[1]: blobs[k] for k in blobs.files if k.startswith("adapter/")}
        state = {}
        for name, kind in meta.get("strategy_state", {}).items():
            keys = [k for k in blobs.files if k.startswith(f"strategy/{name}/")]
            items = {k.split("/", 2)[2]: blobs[k] for k in keys}
            state[name] = items if kind == "dict" else [items[str(i)] for i in range(len(items))]
        return rnd, arrays, meta["history"], state
