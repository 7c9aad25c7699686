"""Peak memory of the process that trains, measured while it trains (not the process's lifetime high).

``ru_maxrss`` is a lifetime maximum: in a notebook kernel or a Ray worker that lives across many runs
it only grows, so it cannot say what one run needed. :class:`PeakRSS` samples this process's resident
memory in a background thread while a block runs and reports the largest value seen.
"""

from __future__ import annotations

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
    """``with PeakRSS() as mem: ...`` then ``mem.peak_mb`` (resident set size, sampled every ``interval`` s)."""

    thread_name = "fedlab-peak-rss"

    def __init__(self, interval: float = 0.05):
        super().__init__(interval)
        self.peak_mb = 0.0
        self._proc = psutil.Process()

    def _sample(self) -> None:
        self.peak_mb = max(self.peak_mb, self._proc.memory_info().rss / 2**20)

    def _finish(self) -> None:
        self.peak_mb = round(self.peak_mb, 1)
