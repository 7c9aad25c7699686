"""Atomic file writing (temporary sibling, fsync, rename): a kill never leaves half a file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .errors import FedlabError


def atomic_write_text(path: Path, text: str) -> Path:
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise FedlabError(
            f"Cannot write {path}: {exc.strerror or exc}. Fix: free disk space or choose a writable "
            f"folder (results: set FEDLAB_RESULTS_DIR)."
        ) from exc
    return path


def write_json(path: Path, obj, *, indent: int = 2, sort_keys: bool = False) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=sort_keys, default=str) + "\n")


def write_jsonl(path: Path, rows) -> Path:
    return atomic_write_text(path, "".join(json.dumps(r, default=str) + "\n" for r in rows))
