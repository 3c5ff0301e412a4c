"""Peak memory and CPU time of a process tree, sampled in a background thread.

One sampler for every benchmark and the soak test. Ray workers are descendants of the driver that
started a local Ray; psutil reports their title (`ray::MapBatches(_stage_units)`,
`ray::HashShuffleAggregator`, `ray::IDLE`) as their name, so peaks are kept per task name too.
"Private" is RSS minus shared pages: the object store (shared memory) counts only in RSS.
"""

from __future__ import annotations

import os
import threading

import psutil


class TreeSampler:
    """`with TreeSampler(pid) as s: ...`; then `s.peak[pid]` holds cmd, name, rss, private, cpu_s,
    peak_during (task name at the private peak), by_task / by_task_rss (peaks per task name) and
    ran_task. CPU seconds are the load-independent cost: on a busy machine wall time also counts
    waiting for a core."""

    def __init__(self, pid: int | None = None, every: float = 0.25):
        self.root, self.every = pid or os.getpid(), every
        self.peak: dict[int, dict] = {}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeSampler:
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                root = psutil.Process(self.root)
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                procs = []
            for p in procs:
                try:
                    self._sample(p)
                except psutil.Error:
                    pass
            self._stop.wait(self.every)

    def _sample(self, p: psutil.Process) -> None:
        m, t, name = p.memory_info(), p.cpu_times(), p.name()
        if p.pid not in self.peak:
            self.peak[p.pid] = {"cmd": " ".join(p.cmdline())[:200], "name": name, "ppid": p.ppid(), "rss": 0, "private": 0}
        rec = self.peak[p.pid]
        rec["cpu_s"] = t.user + t.system
        rec["rss"] = max(rec["rss"], m.rss)
        private = m.rss - m.shared
        if private > rec["private"]:
            rec["private"], rec["peak_during"] = private, name
        by_task, by_task_rss = rec.setdefault("by_task", {}), rec.setdefault("by_task_rss", {})
        by_task[name] = max(by_task.get(name, 0), private)
        by_task_rss[name] = max(by_task_rss.get(name, 0), m.rss)
        # Ray names a worker ray::<task> while it runs one, ray::IDLE between tasks.
        rec["name"] = name
        rec["ran_task"] = rec.get("ran_task", False) or (name.startswith("ray::") and "IDLE" not in name)

    def ray_workers(self) -> list[dict]:
        return [v for v in self.peak.values() if any(n.startswith("ray::") for n in v.get("by_task", {})) or "default_worker" in v["cmd"]]

    @property
    def peak_mb(self) -> float:
        """Largest RSS of any Ray worker."""
        return max((v["rss"] for v in self.ray_workers()), default=0) / 2**20

    def peak_mb_of(self, *needles: str) -> float:
        """Largest RSS of a Ray worker while running a task whose name contains one of `needles`."""
        return max((rss for v in self.ray_workers() for t, rss in v["by_task_rss"].items() if any(n in t for n in needles)), default=0) / 2**20
