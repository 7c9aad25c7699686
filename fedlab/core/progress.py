"""Progress bars that suit where they are drawn: a terminal, a notebook with widgets, or one without.

``tqdm.auto`` picks tqdm's widget bar in any Jupyter kernel; without ``ipywidgets`` that bar warns
"IProgress not found" on stderr, and every rendered report opened with a red box. ipywidgets is now
among the pins (other libraries' bars need it too), and :func:`bar` still gives the widget bar only where
ipywidgets can draw it, a plain text bar on stdout in any other kernel (nbconvert keeps only its last
state, after the carriage returns), and tqdm's usual stderr bar in a terminal. The kernels that render
reports run with ``TQDM_DISABLE=1`` (``pipeline.report_kernel_env``): no bar there at all.
"""

from __future__ import annotations

import importlib.util
import os
import sys

from tqdm import std


def in_kernel() -> bool:
    """True inside a Jupyter (IPython) kernel: papermill, JupyterLab, Colab."""
    shell = sys.modules.get("IPython")
    get = getattr(shell, "get_ipython", None)
    return bool(get and get() is not None and "IPKernelApp" in getattr(get(), "config", {}))


def bar_class():
    """The tqdm class for this process (see the module docstring)."""
    if in_kernel():
        if importlib.util.find_spec("ipywidgets") is not None:
            from tqdm.notebook import tqdm as widget_bar

            return widget_bar
        return _StdoutBar
    return std.tqdm


class _StdoutBar(std.tqdm):
    """tqdm's text bar written to stdout (a kernel's stderr is drawn as an error box)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("file", sys.stdout)
        super().__init__(*args, **kwargs)


def bar(*args, **kwargs):
    """A progress bar: ``tqdm``'s arguments, the class of :func:`bar_class`. ``TQDM_DISABLE=1`` (set for
    the kernels that render reports) turns it off even where the caller asked for progress."""
    if os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true", "yes"):
        kwargs["disable"] = True
    return bar_class()(*args, **kwargs)
