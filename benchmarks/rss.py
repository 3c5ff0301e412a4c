"""Peak resident memory of Ray worker processes, sampled in a background thread.

Ray workers are processes whose command line starts with `ray::` (their title names the task or
actor they run). Peak RSS per worker pid is what "memory per worker" means in our benchmarks and
soak test; the object store (shared memory) is counted only for pages a worker touched.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psutil


def _ray_workers() -> list[tuple[psutil.Process, str]]:
    """(process, what it runs now), e.g. `ray::MapBatches(_stage_units)` or `ray::HashShuffleAggregator`."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes()
                if cmd.startswith(b"ray::"):
                    out.append((psutil.Process(int(d.name)), cmd.split(b"\0")[0].decode(errors="replace")))
            except (OSError, psutil.Error):
                continue
    return out


class WorkerRSS:
    """`with WorkerRSS() as m: ...` then `m.peak_mb` (largest single worker) and `m.samples`."""

    def __init__(self, interval_s: float = 0.25):
        self.interval_s = interval_s
        self.peak_by_pid: dict[int, int] = {}
        self.peak_by_title: dict[str, int] = {}  # largest RSS of any worker while running that title
        self.samples: list[tuple[float, int]] = []  # (time since start, largest worker RSS then)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        t0 = time.time()
        while not self._stop.is_set():
            largest = 0
            for p, title in _ray_workers():
                try:
                    rss = p.memory_info().rss
                except psutil.Error:
                    continue
                self.peak_by_pid[p.pid] = max(self.peak_by_pid.get(p.pid, 0), rss)
                self.peak_by_title[title] = max(self.peak_by_title.get(title, 0), rss)
                largest = max(largest, rss)
            self.samples.append((time.time() - t0, largest))
            self._stop.wait(self.interval_s)

    def __enter__(self) -> "WorkerRSS":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)

    @property
    def peak_mb(self) -> float:
        return max(self.peak_by_pid.values(), default=0) / 2**20

    def peak_mb_of(self, *needles: str) -> float:
        """Peak RSS of workers while running a task/actor whose title contains one of `needles`."""
        return max((v for t, v in self.peak_by_title.items() if any(n in t for n in needles)), default=0) / 2**20
