"""One module per benchmark: its original-file loader, hub loader, hub-row converter and ``SPEC``.

These are declarative dataset specifications (what the registry in :mod:`fedlab.data.registry`
lists); everything they share lives in :mod:`fedlab.data.base`.
"""
