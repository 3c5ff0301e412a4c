"""Where a build's time went: start-up, the stages, and every Ray Data execution and operator.

A build records, in `manifest.json` ("profile") and in the log's last lines:

    startup_s        process start -> the build's first step (imports, checks, input listing, and
                     Ray's start unless the build starts Ray itself: then ray_start_s)
    ray_start_s      how long a build that starts a local Ray itself (`sft-ray build`) waited for
                     it: the driver stages units meanwhile (staging.DriverUnits); else None
    first_output_s   process start -> the first block a Ray Data task of the build produced
    first_record_s   process start -> the first block of input records read and cleaned: in a
                     staged build, a unit task's first block (staging.py: the task itself returns
                     only when its unit is done); streamed, the first block out
    stages           the driver's wall time per build stage (the manifest's "timings")
    executions       Ray Data executions (each `materialize`, count, write or iteration of a lazy
                     Dataset runs its whole plan again: fewer is faster), and `scans`, the ones
                     that read files (the input, the staged records or the written outputs)
    operators        per operator name, over all executions: tasks, the tasks' summed wall and CPU
                     seconds (as Ray Data measures them per block, `BlockExecStats`), rows out and
                     bytes in; sorted by CPU, the largest first

The numbers come from Ray Data itself: an `ExecutionCallback` (Ray 2.60: DataContext
`custom_execution_callback_classes`, instantiated by the planner for every execution of a Dataset
created while the build runs) reads each finished execution's operators and their block stats.
Nothing is sampled or timed twice, so profiling is always on; its cost is a few dictionary
updates per execution on the driver.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from ray.data._internal.execution.execution_callback import ExecutionCallback

log = logging.getLogger("sft_ray")
_ACTIVE: list[TimeProfile] = []  # the profiles being recorded on this driver (innermost last)
SCAN_NAMES = ("Read", "_stage_units")  # Read* operators (input, staged or written files); staging.py's read+clean task
TOP_OPERATORS = 12  # operators listed in the log summary; the manifest keeps them all


@dataclass
class TimeProfile:
    """What one build's Ray Data executions did; `started`: the process's start (epoch seconds)."""

    started: float
    build_start: float = field(default_factory=time.time)
    first_output: float | None = None
    first_record: float | None = None  # set by the build from its staging tasks (staging.Staged)
    ray_start: float | None = None  # seconds the build waited for the local Ray it started
    executions: list[dict] = field(default_factory=list)

    def add(self, executor, ok: bool) -> None:
        ops = [_operator(op) for op in _operators(executor)]
        self.executions.append({"ok": ok, "operators": ops, "scan": any(name in o["name"] for o in ops for name in SCAN_NAMES)})

    def step(self, executor) -> None:
        """Until the first block exists: is there one now? (One attribute read per operator per step.)"""
        if self.first_output is None and any(op.metrics.num_task_outputs_generated for op in _operators(executor)):
            self.first_output = time.time()

    def summary(self, stages: dict[str, float]) -> dict:
        """The manifest's "profile": see the module docstring."""
        by_name: dict[str, dict] = {}
        for ex in self.executions:
            for o in ex["operators"]:
                agg = by_name.setdefault(o["name"], {"name": o["name"], "executions": 0, "tasks": 0, "wall_s": 0.0, "cpu_s": 0.0, "rows_out": 0, "bytes_in": 0})
                agg["executions"] += 1
                for k in ("tasks", "wall_s", "cpu_s", "rows_out", "bytes_in"):
                    agg[k] += o[k]
        operators = sorted(by_name.values(), key=lambda a: -a["cpu_s"])
        for a in operators:
            a["wall_s"], a["cpu_s"] = round(a["wall_s"], 2), round(a["cpu_s"], 2)
        return {
            "startup_s": round(self.build_start - self.started, 2),
            "ray_start_s": round(self.ray_start, 2) if self.ray_start is not None else None,
            "first_output_s": _since(self.first_output, self.started),
            "first_record_s": _since(self.first_record if self.first_record is not None else self.first_output, self.started),
            "stages": stages,
            "executions": len(self.executions),
            "failed_executions": sum(1 for ex in self.executions if not ex["ok"]),
            "scans": sum(1 for ex in self.executions if ex["scan"]),
            "task_cpu_s": round(sum(a["cpu_s"] for a in operators), 2),
            "operators": operators,
        }


def _since(t: float | None, started: float) -> float | None:
    return round(t - started, 2) if t is not None else None


def _operators(executor) -> list:
    """The execution's operators, less the buffer that feeds it its input blocks."""
    return [op for op in executor._topology if type(op).__name__ != "InputDataBuffer"]


def _operator(op) -> dict:
    """One operator of a finished execution: wall and CPU summed over the blocks it produced (Ray
    Data times each output block's generation in its task), its task and row counts."""
    stats = [b.exec_stats for blocks in (op.get_stats() or {}).values() for b in blocks if getattr(b, "exec_stats", None) is not None]
    m = op.metrics
    return {"name": op.name, "tasks": int(m.num_tasks_finished or 0),
            "wall_s": sum(s.wall_time_s or 0.0 for s in stats), "cpu_s": sum(s.cpu_time_s or 0.0 for s in stats),
            "rows_out": int(m.row_outputs_taken or 0), "bytes_in": int(m.bytes_inputs_received or 0)}


class _Recorder(ExecutionCallback):
    """Ray Data makes one per execution, without arguments: it reports to the innermost profile."""

    def on_execution_step(self, executor) -> None:
        if _ACTIVE:
            try:
                _ACTIVE[-1].step(executor)
            except Exception as e:  # see _record
                log.debug("profile: could not read an execution's metrics: %s", e)

    def after_execution_succeeds(self, executor) -> None:
        self._record(executor, True)

    def after_execution_fails(self, executor, error: Exception) -> None:
        self._record(executor, False)

    @staticmethod
    def _record(executor, ok: bool) -> None:
        if not _ACTIVE:
            return
        try:
            _ACTIVE[-1].add(executor, ok)
        except Exception as e:  # Ray-internal attributes (Ray 2.60): a profile is never worth a failed build
            log.debug("profile: could not read an execution's stats: %s", e)


def process_start() -> float:
    """This process's start time (epoch seconds): the command's start for `sft-ray build`.

    Not psutil's create_time() on Linux: it adds the start's clock ticks since boot to the boot time
    in /proc/stat, which the kernel rounds down to whole seconds, so every start-up figure came out
    up to 1 s long (0.99-1.04 s on this project's 2-core machine: a `python -c` that printed
    time.time() - create_time() at once). Boot time as now - /proc/uptime (10 ms) fixes that."""
    try:
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        with open("/proc/self/stat") as f:  # field 22, starttime; the command name (field 2) may hold spaces
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        return time.time() - uptime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):  # not Linux
        import psutil

        return psutil.Process().create_time()


@contextlib.contextmanager
def recording() -> Iterator[TimeProfile]:
    """Record the Ray Data executions of Datasets created within the block (a Dataset made from a
    source copies the current DataContext, and one derived from it keeps that copy, so the callback
    class rides with every Dataset of the build)."""
    import ray

    ctx = ray.data.DataContext.get_current()
    profile = TimeProfile(started=process_start())
    added = _Recorder not in ctx.custom_execution_callback_classes
    if added:
        ctx.custom_execution_callback_classes.append(_Recorder)
    _ACTIVE.append(profile)
    try:
        yield profile
    finally:
        _ACTIVE.remove(profile)
        if added:
            ctx.custom_execution_callback_classes.remove(_Recorder)


def log_summary(p: dict) -> None:
    """A few lines a user reads at the end of a build: where the time went."""
    stages = ", ".join(f"{k.removesuffix('_s')} {v:.1f} s" for k, v in p["stages"].items() if k != "total_s")
    def at(v: float | None) -> str:
        return f"{v:.1f} s" if v is not None else "-"

    log.info("profile: start-up %.1f s, first records cleaned at %s, first block out at %s; %d Ray Data executions (%d read files); stages: %s",
             p["startup_s"], at(p["first_record_s"]), at(p["first_output_s"]), p["executions"], p["scans"], stages)
    log.info("profile: task CPU %.1f s; the largest operators (CPU s, wall s, tasks):", p["task_cpu_s"])
    for a in p["operators"][:TOP_OPERATORS]:
        log.info("profile:   %8.1f %8.1f %6d  %s", a["cpu_s"], a["wall_s"], a["tasks"], a["name"][:100])
