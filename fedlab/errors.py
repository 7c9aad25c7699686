"""Errors a user can cause: each message names what is wrong and the fix.

Every error raised for bad input is a :class:`FedlabError` whose message says what is wrong *and*
what to do about it. Library code never silently drops input: it either raises one of these or
counts and reports what it skipped.
"""

from __future__ import annotations

import dataclasses
import difflib


class FedlabError(Exception):
    """Base class of every user-facing fedlab error (message names the fix)."""


class DataError(FedlabError, ValueError):
    """Missing, malformed or inconsistent benchmark data."""


class ConfigError(FedlabError, ValueError):
    """Unknown names or impossible values in a run configuration."""


class ModelError(FedlabError, ValueError):
    """A backbone or adapter that cannot be found or does not fit."""


def did_you_mean(name: str, choices) -> str:
    """A short hint listing the valid names (closest first)."""
    choices = sorted(choices)
    close = difflib.get_close_matches(str(name), choices, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"Valid names: {', '.join(choices)}.{hint}"


def dataclass_from_mapping(cls, data: dict | None, what: str):
    """``cls(**data)`` for a settings dataclass, with unknown keys named in a ConfigError (and a guess)."""
    data = dict(data or {})
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"Unknown {what} setting(s) {unknown}. {did_you_mean(unknown[0], names)}")
    return cls(**data)
