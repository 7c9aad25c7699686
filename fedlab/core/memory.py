"""Peak memory of the process that trains, measured while it trains (not the process's lifetime high).

``ru_maxrss`` is a lifetime maximum: in a notebook kernel or a Ray worker that lives across many runs
it only grows, so it cannot say what one run needed. :class:`PeakRSS` samples this process's resident
memory in a background thread while a block runs and reports the largest value seen.
"""

from __future__ import annotations

import threading

import psutil


class PeakRSS:
    """``with PeakRSS() as mem: ...`` then ``mem.peak_mb`` (resident set size, sampled every ``interval`` s)."""

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.peak_mb = 0.0
        self._proc = psutil.Process()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        self.peak_mb = max(self.peak_mb, self._proc.memory_info().rss / 2**20)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> "PeakRSS":
        self._sample()
        self._thread = threading.Thread(target=self._loop, name="fedlab-peak-rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        self.peak_mb = round(self.peak_mb, 1)
