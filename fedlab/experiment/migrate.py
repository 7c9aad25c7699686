"""Result files of older schemas, rewritten as today's: the same runs, described with today's config fields.

``fedlab migrate`` calls :func:`migrate_store`; a migrated file records the schema it came from and its
old config hash (``migrated``).
"""

from __future__ import annotations

import json
from pathlib import Path

from fedlab.io import write_json

from .config import RunConfig
from .store import SCHEMA_VERSION, ResultStore, RunResult


# the schemas:
#   1 -> 2: no `extra`; fault injection under `faults`
#   2 -> 3: `system_prompt` (those runs used the chat template's default: None) and
#           `group_by_length` (those runs drew batches in plain seeded order: False)
#   3 -> 4: `split_seed` (the split was drawn with `seed`), `truncation` (long inputs lost their end)
#           `client_test_fraction` (0: clients trained on all their rows; "own data" was training rows)
#           `val_size` (0: no validation split carved from the training pool) and `early_stopping`
#           (False: isolated clients kept their last adapter)
def upgrade_config(config: dict, schema: int) -> RunConfig:
    """The config a result of ``schema`` belongs to today (same run, same numbers)."""
    old = dict(config)
    if schema < 2:
        old.pop("extra", None)
        if "fail_clients" in old:
            old["faults"] = {"fail_clients": list(old.pop("fail_clients"))}
    if schema < 3:
        old.setdefault("system_prompt", None)
        if old.get("setting") != "zeroshot":
            old.setdefault("group_by_length", False)
    if schema < 4:
        old.setdefault("split_seed", old.get("seed", 0))  # the one seed also drew the split
        old.setdefault("truncation", "end")  # long inputs lost their end
        old.setdefault("val_size", 0)  # no validation split: the whole pool was partitioned
        old.setdefault("eval_on", "eval")
        if old.get("setting") != "zeroshot":
            old.setdefault("client_test_fraction", 0.0)  # clients trained on all their rows
            old.setdefault("early_stopping", False)  # isolated clients kept their last adapter
    return RunConfig.from_dict(old)


def migrate_result(data: dict) -> tuple[dict, RunConfig]:
    """A result dict of an older schema as today's, and the config it now belongs to."""
    schema = int(data.get("schema_version", 1))
    cfg = upgrade_config(data["config"], schema)
    out = dict(data)
    out.pop("cached", None)
    out.pop("path", None)
    before = data.get("migrated") or {}
    out["migrated"] = {
        "from_schema": before.get("from_schema", schema),
        "old_config_hash": before.get("old_config_hash", data["config_hash"]),
    }
    out["config"], out["config_hash"], out["schema_version"] = cfg.to_dict(), cfg.hash(), SCHEMA_VERSION
    if cfg.setting == "federated":
        out.setdefault("engine", "simulation")
    return out, cfg


def migrate_store(root: str | Path | None = None) -> list[tuple[Path, Path]]:
    """Rewrite every result file of an older schema under ``root`` (with its predictions) under its new name."""
    store = ResultStore(root)
    moved = []
    for path in sorted(store.root.glob("**/*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or "config" not in data or data.get("schema_version", 1) >= SCHEMA_VERSION:
            continue
        new, cfg = migrate_result(data)
        target = path.parent / f"{cfg.stem()}.json"
        old_pred = path.with_suffix(".predictions.jsonl")
        if old_pred.is_file():
            new_pred = target.with_suffix(".predictions.jsonl")
            old_pred.rename(new_pred)
            new["predictions_file"] = new_pred.name
        old_adapter = path.with_suffix(".adapter")
        if old_adapter.is_dir():
            old_adapter.rename(target.with_suffix(".adapter"))
            new["adapter_dir"] = target.with_suffix(".adapter").name
        RunResult.from_json(new)  # the migrated file must read back as a typed result
        write_json(target, new)
        if target != path:
            path.unlink()
        moved.append((path, target))
    return moved
