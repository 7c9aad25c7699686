"""Progress bars: stderr in a terminal, stdout text in a kernel without widgets (#20: no stderr in reports)."""

import importlib.util

from tqdm import std

from fedlab.core import progress


def test_a_terminal_gets_tqdms_stderr_bar():
    assert not progress.in_kernel()
    assert progress.bar_class() is std.tqdm


def test_a_kernel_without_widgets_gets_a_text_bar_on_stdout(monkeypatch, capsys):
    monkeypatch.setattr(progress, "in_kernel", lambda: True)
    real = importlib.util.find_spec
    monkeypatch.setattr(progress.importlib.util, "find_spec", lambda name: None if name == "ipywidgets" else real(name))
    cls = progress.bar_class()
    assert cls is progress._StdoutBar
    for _ in progress.bar(range(3), desc="scoring", mininterval=0):
        pass
    out, err = capsys.readouterr()
    assert "scoring" in out and "3/3" in out and err == ""
