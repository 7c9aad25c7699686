"""Is the GPU this machine has usable by the installed torch? A clear answer instead of a silent CPU run.

``nvidia-smi`` says whether an NVIDIA GPU and driver are present, and the newest CUDA that driver
supports; ``torch.version.cuda`` says which CUDA the installed torch was built for (``None``: a CPU
build). Three outcomes: no GPU (nothing to say), a GPU that torch uses, or a GPU torch cannot use,
either because torch is a CPU build (a warning: a CPU run may be what you want) or because its CUDA is
newer than the driver supports (an error naming the build to install instead).
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass

from fedlab.errors import ModelError

#: the index of PyTorch's CUDA builds; ``cuXYZ`` is appended (e.g. cu126 for CUDA 12.6)
TORCH_INDEX = "https://download.pytorch.org/whl/"


@dataclass(frozen=True)
class GpuReport:
    gpu: str | None  # the first GPU's name, None without an NVIDIA GPU
    driver: str | None
    driver_cuda: str | None  # the newest CUDA the driver supports ("12.4")
    torch_cuda: str | None  # the CUDA torch was built for (None: CPU build)
    torch_sees_gpu: bool

    @property
    def problem(self) -> str | None:
        """Why torch does not use the GPU, or None (no GPU, or torch uses it)."""
        if self.gpu is None or self.torch_sees_gpu:
            return None
        if self.torch_cuda is None:
            return (
                f"this machine has an NVIDIA GPU ({self.gpu}, driver {self.driver}) but the installed torch is a "
                f"CPU build, so every run trains on the CPU. Fix: reinstall torch from a CUDA index that the "
                f"driver supports, e.g. pip install --force-reinstall torch==<pin> --index-url "
                f"{TORCH_INDEX}{suggested_build(self.driver_cuda)} (or make setup TORCH_INDEX=...)."
            )
        return (
            f"torch was built for CUDA {self.torch_cuda}, but the driver ({self.driver}) of {self.gpu} supports "
            f"CUDA up to {self.driver_cuda or 'an unknown version'}, so torch cannot use the GPU. Fix: update the "
            f"NVIDIA driver, or install the torch build for the driver's CUDA: pip install --force-reinstall "
            f"torch==<pin> --index-url {TORCH_INDEX}{suggested_build(self.driver_cuda)}."
        )


def suggested_build(driver_cuda: str | None) -> str:
    """The ``cuXYZ`` index name of the driver's CUDA (``12.4`` -> ``cu124``); pick the nearest build at or
    below it that PyTorch publishes for the pinned torch (its install page lists them)."""
    if not driver_cuda:
        return "cu<XY>"
    major, _, minor = driver_cuda.partition(".")
    return f"cu{major}{minor or '0'}"


def parse_nvidia_smi(text: str) -> tuple[str | None, str | None, str | None]:
    """(first GPU name, driver version, driver CUDA) from ``nvidia-smi``'s default output."""
    driver = re.search(r"Driver Version:\s*([\d.]+)", text)
    cuda = re.search(r"CUDA Version:\s*([\d.]+)", text)
    name = re.search(r"^\|\s+\d+\s+(.+?)\s{2,}", text, re.M)
    return (
        name.group(1).strip() if name else ("NVIDIA GPU" if driver else None),
        driver.group(1) if driver else None,
        cuda.group(1) if cuda else None,
    )


@functools.lru_cache(maxsize=1)
def report() -> GpuReport:
    """This machine's :class:`GpuReport` (``nvidia-smi`` runs once per process)."""
    import torch

    text = ""
    if shutil.which("nvidia-smi"):
        try:
            text = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=20).stdout
        except (OSError, subprocess.SubprocessError):
            text = ""
    gpu, driver, driver_cuda = parse_nvidia_smi(text) if text else (None, None, None)
    return GpuReport(gpu, driver, driver_cuda, torch.version.cuda, torch.cuda.is_available())


def check(report_: GpuReport | None = None) -> None:
    """Raise for a torch CUDA build the driver cannot run; warn (once, on stderr) for a CPU build on a
    GPU machine; nothing otherwise."""
    rep = report_ or report()
    problem = rep.problem
    if problem is None:
        return
    if rep.torch_cuda is not None:
        raise ModelError(problem)
    print(f"[fedlab] warning: {problem}", file=sys.stderr, flush=True)


def main() -> int:
    """``python -m fedlab.core.accelerator``: what ``make setup`` prints after installing."""
    rep = report()
    if rep.gpu is None:
        print("no NVIDIA GPU found: runs train on the CPU")
        return 0
    if rep.problem is None:
        print(
            f"GPU ready: {rep.gpu} (driver {rep.driver}, CUDA {rep.driver_cuda}); torch built for CUDA {rep.torch_cuda}"
        )
        return 0
    print(rep.problem, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
