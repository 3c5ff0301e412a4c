"""Where the job runs: join the cluster (ray job submit / RAY_ADDRESS) or start Ray locally.

Kept apart from what the stages do (where a pipeline runs is kept apart from what
it does, as DataTrove's executors are), so the same spine runs on a laptop, under `ray job submit` and on an autoscaling cluster.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

import ray

log = logging.getLogger("sft_ray")

# A local run reserves CPUs for training workers *and* for the Ray Data tasks that feed them; on a
# 2-core laptop that would deadlock (2 workers x 1 CPU leave nothing for the readers), so a local
# ray.init() advertises at least this many logical CPUs. Clusters report their real resources.
MIN_LOCAL_CPUS = 4
# A local build of less input than this starts Ray without its dashboard: the dashboard's start is
# 1.2-1.4 s of a ~4 s ray.init() here (5.2-5.3 s with it, 3.9-4.0 s without, 2 runs each), a fixed
# cost a small build feels and a large one, which a user may want to watch, does not.
DASHBOARD_MIN_INPUT_BYTES = 1 << 30


def init_ray(address: str | None = None, dashboard: bool = True) -> None:
    """Connect to `address`, to the cluster named by RAY_ADDRESS (as `ray job submit` sets it), or
    start a local Ray, with its dashboard when `dashboard` (Ray Train and the State API need it; a
    cluster's own settings decide there). Idempotent."""
    from sft_ray import ray_fixes

    ray_fixes.install()  # before any plan is built
    if ray.is_initialized():
        return
    # Job logs are read by people and CI: no carriage-return progress bars (Ray Data, HF hub/GGUF).
    quiet = {"RAY_DATA_DISABLE_PROGRESS_BARS": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TOKENIZERS_PARALLELISM": "false"}
    for k, v in quiet.items():
        os.environ.setdefault(k, v)
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        # The job's runtime env (cluster/runtime_env.yaml) already applies; passing another one
        # here would conflict with it and Ray refuses to merge the two.
        ray.init(address=address, log_to_driver=True)
    else:
        num_cpus = max(MIN_LOCAL_CPUS, os.cpu_count() or 1)
        # The workers get these settings by inheritance (the local raylet is a child of this
        # process, and its workers are its children), not as a job runtime env: Ray prestarts
        # num_cpus workers for the first driver without one, and a task that carries a runtime env
        # cannot run on them. Measured on a 100k-document build (benchmarks/near_dedup.py --build):
        # with a runtime env, the 4 prestarted workers stayed idle all build and 4 more started.
        # RAY_DATA_LOG_LEVEL: Ray Data executions inside workers (the training data's
        # SplitCoordinator) print their "execution finished" and "Progress bars disabled" lines
        # where the driver's console filter (console.py) cannot reach: errors only there. This
        # process's own level was set when ray.data was imported (ray_fixes above), and its lines
        # are filtered.
        with _environ(RAY_DATA_LOG_LEVEL="ERROR"):
            ray.init(
                address="local",
                num_cpus=num_cpus,
                # The dashboard serves the State API, which Ray Train's placement-group cleaner polls;
                # without it every training run logs a warning per second.
                include_dashboard=dashboard,
                dashboard_host="127.0.0.1",
                # Ray Data's shuffle map tasks run in their own runtime env, so map -> shuffle -> map keeps
                # two worker pools; past the default soft limit idle workers die after 1 s and re-spawn
                # (measured: 2 shuffles 50-60 s with the default, 1.3-2.9 s with this; benchmarks/near_dedup.py).
                # The raylet warns ("N PYTHON worker processes ... Nx the maximum expected startup
                # concurrency") once more workers start than the machine's physical cores; a build's
                # actor pools plus the training workers exceed that on a laptop by design: count the
                # logical CPUs we advertise instead.
                _system_config={"num_workers_soft_limit": 4 * num_cpus + 4, "idle_worker_killing_time_threshold_ms": 600_000,
                                "worker_maximum_startup_concurrency": num_cpus},
            )
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    """`values` in os.environ while the block runs (what processes started in it inherit), only
    those keys put back after: not `unittest.mock.patch.dict`, which restores the whole environment
    and would drop what ray.init sets in it (RAY_AUTH_MODE=token, seen here)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
