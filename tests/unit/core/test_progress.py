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


def test_tqdm_disable_turns_our_bars_off_even_when_progress_was_asked_for(monkeypatch, capsys):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    for _ in progress.bar(range(3), desc="scoring", disable=False, mininterval=0):
        pass
    out, err = capsys.readouterr()
    assert out == "" and err == ""


def test_report_kernels_run_without_bars(monkeypatch):
    import os

    from fedlab import pipeline

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "0")
    with pipeline.report_kernel_env():
        assert os.environ["TQDM_DISABLE"] == "1" and os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
    assert "TQDM_DISABLE" not in os.environ and os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "0"  # given back
    # results-only reports: the kernels train nothing, and the switch is given back with the others
    from fedlab.runs.runner import RESULTS_ONLY_ENV, results_only_mode

    monkeypatch.delenv(RESULTS_ONLY_ENV, raising=False)
    with pipeline.report_kernel_env(results_only=True):
        assert results_only_mode()
    assert not results_only_mode()
    with pipeline.report_kernel_env():
        assert not results_only_mode()


def test_results_only_reproduce_refuses_force_before_it_renders_anything(tmp_path):
    import pytest

    from fedlab import pipeline
    from fedlab.errors import ConfigError

    with pytest.raises(ConfigError, match="cannot --force"):
        pipeline.reproduce("smoke", force=True, results_only=True, out=tmp_path / "reports")
    assert not (tmp_path / "reports").exists()


def test_library_notices_are_kept_with_the_run_not_printed(capsys):
    import logging

    from fedlab.core.peft_methods import library_notices

    with library_notices("bitsandbytes") as notices:
        logging.getLogger("bitsandbytes.backends.cpu.ops").warning("Failed to load CPU gemm_4bit_forward")
    assert [r.getMessage() for r in notices] == ["Failed to load CPU gemm_4bit_forward"]
    assert "gemm" not in capsys.readouterr().err
    assert logging.getLogger("bitsandbytes").propagate is True  # restored
