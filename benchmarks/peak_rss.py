"""Peak resident memory (RSS) of a block of code in this process, in bytes (Linux /proc).

``ru_maxrss`` only ever grows, so it keeps the peak reached while importing torch. Instead, the
kernel's high-water mark (VmHWM) is reset by writing "5" to /proc/self/clear_refs before the block
and read after it: an exact peak, however short-lived the allocation. Where that reset is not
allowed, a thread samples VmRSS every ``interval_s`` seconds instead (a lower bound on the peak).

For freed memory to leave RSS at all, large allocations must go through mmap: start the process
with ``MALLOC_MMAP_THRESHOLD_=65536`` in its environment (see :data:`MMAP_ENV`).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

# Environment for a measuring subprocess: glibc serves allocations >= 64 KiB with mmap and returns
# them to the kernel on free, so RSS follows the tensors alive at each moment.
MMAP_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536"}

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(field: str) -> int:
    """Return one "Vm..." field of /proc/self/status, in KiB."""
    for line in _STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not found in {_STATUS}")


def rss_bytes() -> int:
    """Return the current resident set size, in bytes."""
    return _status_kib("VmRSS") * 1024


def _reset_high_water_mark() -> bool:
    """Reset VmHWM to the current RSS; return False where the kernel refuses."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


class PeakRSS:
    """Context manager: peak RSS above the RSS at entry, in bytes (``extra_bytes``)."""

    def __init__(self, interval_s: float = 0.0005) -> None:
        self.interval_s = interval_s
        self.baseline = 0
        self.peak = 0
        self.method = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(self.interval_s)

    def __enter__(self) -> "PeakRSS":
        """Record the baseline RSS and start tracking the peak."""
        self.baseline = rss_bytes()
        self.peak = self.baseline
        if _reset_high_water_mark():
            self.method = "VmHWM"
        else:
            self.method = "sampled"
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stop tracking and record the peak RSS."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        else:
            self.peak = _status_kib("VmHWM") * 1024
        self.peak = max(self.peak, rss_bytes())

    @property
    def extra_bytes(self) -> int:
        """Peak RSS during the block minus the RSS at its start, in bytes."""
        return self.peak - self.baseline
