"""Peak memory of the process that trains, measured while it trains (not the process's lifetime high).

``ru_maxrss`` is a lifetime maximum: in a notebook kernel or a Ray worker that lives across many runs
it only grows, so it cannot say what one run needed. :class:`PeakRSS` samples this process's resident
memory in a background thread while a block runs and reports the largest value seen.
"""

from __future__ import annotations

import gc
import sys
import threading

import psutil


class PeriodicSampler:
    """A context manager that calls :meth:`_sample` on entry, every ``interval`` s in a background thread
    while the block runs, and on exit; subclasses add :meth:`_begin` and :meth:`_finish`."""

    thread_name = "fedlab-sampler"

    def __init__(self, interval: float):
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _begin(self) -> None:
        pass

    def _sample(self) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        pass

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self):
        self._begin()
        self._sample()
        self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        self._finish()


class PeakRSS(PeriodicSampler):
    """``with PeakRSS() as mem: ...`` then ``mem.peak_mb`` (resident set size, sampled every ``interval`` s);
    with ``descendants=True``, of this process and all its children together (e.g. Ray's workers)."""

    thread_name = "fedlab-peak-rss"

    def __init__(self, interval: float = 0.05, *, descendants: bool = False):
        super().__init__(interval)
        self.peak_mb = 0.0
        self.descendants = descendants
        self._proc = psutil.Process()

    def _rss(self) -> int:
        total = self._proc.memory_info().rss
        for child in self._proc.children(recursive=True) if self.descendants else ():
            try:
                total += child.memory_info().rss
            except psutil.Error:  # a child that ended between listing and reading
                pass
        return total

    def _sample(self) -> None:
        self.peak_mb = max(self.peak_mb, self._rss() / 2**20)

    def _finish(self) -> None:
        self.peak_mb = round(self.peak_mb, 1)


def _cuda():
    """torch.cuda when torch is already imported and CUDA is in use in this process, else None (never
    imports torch or initialises CUDA for a measurement)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    return torch.cuda


class CudaPeak:
    """``with CudaPeak() as gpu: ...`` then ``gpu.result``: the peak GPU memory allocated and reserved
    by this process's tensors while the block ran (``torch.cuda.max_memory_allocated`` /
    ``max_memory_reserved`` after a reset on entry), in MB, per device; ``None`` when no CUDA was used.
    What the QLoRA-vs-LoRA memory claim needs on a GPU: host RSS does not see device memory."""

    def __init__(self):
        self.result: dict | None = None

    def __enter__(self):
        cuda = _cuda()
        if cuda is not None:
            for d in range(cuda.device_count()):
                cuda.reset_peak_memory_stats(d)
        return self

    def __exit__(self, *exc) -> None:
        cuda = _cuda()  # a run may have initialised CUDA inside the block
        if cuda is None:
            return
        per = [
            {
                "device": d,
                "name": cuda.get_device_name(d),
                "peak_allocated_mb": round(cuda.max_memory_allocated(d) / 2**20, 1),
                "peak_reserved_mb": round(cuda.max_memory_reserved(d) / 2**20, 1),
            }
            for d in range(cuda.device_count())
        ]
        self.result = {
            "peak_allocated_mb": max(p["peak_allocated_mb"] for p in per),
            "peak_reserved_mb": max(p["peak_reserved_mb"] for p in per),
            "devices": per,
        }


def free_accelerator_memory() -> None:
    """After a run: collect the objects it left (its model among them) and give the CUDA caching
    allocator's free blocks back, so the next run (or notebook cell) starts from an empty GPU."""
    gc.collect()
    cuda = _cuda()
    if cuda is not None:
        cuda.empty_cache()


class gpu_memory_cap:
    """``with gpu_memory_cap(0.25): ...``: this process may allocate at most that share of GPU 0 inside
    the block (``torch.cuda.set_per_process_memory_fraction``; an allocation beyond it fails with an
    out-of-memory error naming the cap), restored to the whole GPU after it. A no-op without CUDA or
    with ``fraction`` 0 / None. The simulation's ServerApp model runs under it, beside the clients."""

    def __init__(self, fraction: float | None):
        self.fraction = fraction
        self.applied = False

    def __enter__(self):
        torch = sys.modules.get("torch")
        if self.fraction and torch is not None and torch.cuda.is_available():
            torch.cuda.set_per_process_memory_fraction(float(self.fraction), 0)
            self.applied = True
        return self

    def __exit__(self, *exc) -> None:
        if self.applied:
            sys.modules["torch"].cuda.set_per_process_memory_fraction(1.0, 0)
