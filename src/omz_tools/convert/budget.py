"""A memory budget for -j: conversions start only while their estimated peaks fit in free memory."""

from __future__ import annotations

import threading
from typing import Optional

from omz_tools.registry import Model


def _available_memory() -> int:
    try:
        with open("/proc/meminfo") as stream:
            for line in stream:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 << 30


def estimate_peak(model: Model) -> int:
    # MO on a Caffe model peaks near 4.5x the caffemodel's size (0.9 GB for se-resnet-101's 198 MB).
    return 300 * (1 << 20) + int(4.5 * sum(f.size for f in model.files))


class MemoryBudget:
    """Lets a conversion start only while the estimated peaks of running ones fit in free memory;
    one conversion always may run, however large."""

    def __init__(self, total: Optional[int] = None):
        self.total = int((total or _available_memory()) * 0.85)
        self.used = 0
        self.running = 0
        self._cond = threading.Condition()

    def acquire(self, amount: int) -> None:
        with self._cond:
            while self.running and self.used + amount > self.total:
                self._cond.wait()
            self.used += amount
            self.running += 1

    def release(self, amount: int) -> None:
        with self._cond:
            self.used -= amount
            self.running -= 1
            self._cond.notify_all()
