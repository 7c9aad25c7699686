"""Result files: one JSON per run, named from its config, written atomically, cached by config hash."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .io import atomic_write_text, write_json, write_jsonl  # noqa: F401  (re-exported)

REPO = Path(__file__).resolve().parent.parent
SCHEMA_VERSION = 1


def results_dir() -> Path:
    """``$FEDLAB_RESULTS_DIR`` or ``<repo>/results``."""
    return Path(os.environ.get("FEDLAB_RESULTS_DIR", REPO / "results")).expanduser()


def config_hash(config: dict) -> str:
    """Stable hash of a config dict (sorted keys, no whitespace)."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def load_result(path: Path) -> dict | None:
    """A finished result at ``path``, or None if it is absent, unreadable or not a success."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if data.get("status") == "success" else None


def cached(path: Path, chash: str) -> dict | None:
    """The result at ``path`` if it finished successfully with the same config hash."""
    data = load_result(path)
    if data is not None and data.get("config_hash") == chash:
        return data
    return None


def iter_results(root: Path | None = None, pattern: str = "**/*.json"):
    """All successful result files under ``root`` (default: the results folder)."""
    root = Path(root) if root else results_dir()
    for path in sorted(root.glob(pattern)):
        data = load_result(path)
        if data is not None and "config" in data:
            yield path, data
