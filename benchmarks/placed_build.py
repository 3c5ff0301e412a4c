"""What stage placement costs: the demo build placed by a node-label selector vs unplaced, same run.

    .venv/bin/python benchmarks/placed_build.py                 # 4 variants x 2 repetitions + a warm-up (2 cores: ~10 min)
    .venv/bin/python benchmarks/placed_build.py --reps 1 --json benchmarks/results/placed_build.json

A placed build (`placement.curation` set) differs from an unplaced one in two settings that
sft_ray/placement.py changes to make placement hold on Ray Data 2.60: HASH_SHUFFLE instead of the
default SHUFFLE_V2 (which ignores label selectors) and a label selector on every task and actor.
(Both use the v1 Parquet reader.) On one node the selector is this node's own id
(`ray.io/node-id`), so both variants run the same work on the same CPUs and the difference is the
shuffle implementation plus the scheduling path. The peer is the unplaced build: Ray Data's
defaults. A third variant is unplaced with HASH_SHUFFLE, which separates the shuffle's cost from
the selector's; a fourth is placed with `placement.strict_shuffle: false` (selector, default
shuffle, whose reduce tasks then ignore the selector). (Capping HASH_SHUFFLE's aggregator actors at the CPU count,
`DataContext.max_hash_shuffle_aggregators`, changed nothing: 41.7 vs 41.8 s total, 2026-11-29.)
Wall time per phase comes from the build's manifest (`timings`); outputs are compared (curated
ids, SFT example ids) so a faster variant cannot be a variant that did less.

Ray is started once and one unmeasured build warms it up (worker processes, model files, page
cache); the variants then run in it, in a rotating order per repetition.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PHASES = ("read_clean_dedup_s", "write_curated_rejects_s", "format_write_sft_s", "total_s")


def _ids(out: str, sub: str) -> list[str]:
    import pyarrow.parquet as pq

    return sorted(pq.read_table(f"{out}/{sub}", columns=["id"])["id"].to_pylist())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "jobs" / "configs" / "demo.yaml"))
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()

    import ray
    from ray.data.context import ShuffleStrategy

    from sft_ray.build import build_sft_data
    from sft_ray.config import PlacementConfig, load_config
    from sft_ray.runtime import init_ray

    init_ray()
    node = ray.get_runtime_context().get_node_id()
    here = PlacementConfig(curation={"ray.io/node-id": node})
    ctx = ray.data.DataContext.get_current()
    default_shuffle = ctx.shuffle_strategy
    variants = {"unplaced (Ray Data defaults)": (PlacementConfig(), default_shuffle),
                "placed (selector + HASH_SHUFFLE)": (here, default_shuffle),  # placement.py switches the shuffle
                "unplaced + HASH_SHUFFLE": (PlacementConfig(), ShuffleStrategy.HASH_SHUFFLE),
                "placed, strict_shuffle off": (here.model_copy(update={"strict_shuffle": False}), default_shuffle)}
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    outputs: dict[str, tuple] = {}
    with tempfile.TemporaryDirectory(prefix="placed-build-") as tmp:
        t0 = time.time()
        build_sft_data(load_config(args.config, [f"output={tmp}/warm-up"]))
        print(f"warm-up build (not measured): {time.time() - t0:.1f} s", flush=True)
        for rep in range(args.reps):
            names = list(variants)
            for name in names[rep % len(names):] + names[:rep % len(names)]:
                out = f"{tmp}/{names.index(name)}-{rep}"
                placement, shuffle = variants[name]
                cfg = load_config(args.config, [f"output={out}"]).model_copy(update={"placement": placement})
                ctx.shuffle_strategy = shuffle
                t0 = time.time()
                result = build_sft_data(cfg)
                wall = time.time() - t0
                ctx.shuffle_strategy = default_shuffle
                timings = result.manifest.get("timings", {})
                runs[name].append({**{p: timings.get(p) for p in PHASES}, "wall_s": round(wall, 2)})
                ids = (tuple(_ids(out, "curated")), tuple(_ids(out, "sft/train")), tuple(_ids(out, "sft/validation")))
                outputs.setdefault(name, ids)
                if outputs[name] != ids:
                    raise SystemExit(f"{name}: repetition {rep} wrote different ids than repetition 0")
                print(f"rep {rep} {name}: {wall:.1f} s {timings}", flush=True)
    same = len(set(outputs.values())) == 1

    med = {name: {p: statistics.median(r[p] for r in rs if r[p] is not None) for p in (*PHASES, "wall_s")}
           for name, rs in runs.items()}
    base, *placed = list(variants)
    print(f"\nDemo build ({args.config}), {args.reps} repetition(s) each, median seconds; ratio = unplaced / placed "
          "(> 1: placed is faster)\n")
    print(f"| phase | {base} | " + " | ".join(f"{p} | ratio" for p in placed) + " |")
    print("|---|---|" + "---|---|" * len(placed))
    for p in (*PHASES, "wall_s"):
        print(f"| {p} | {med[base][p]:.1f} | " + " | ".join(f"{med[v][p]:.1f} | {med[base][p] / med[v][p]:.2f}x" for v in placed) + " |")
    print(f"\noutputs identical (curated, sft/train, sft/validation ids): {same}")
    if args.json:
        Path(args.json).write_text(json.dumps({"config": args.config, "reps": args.reps, "runs": runs, "median": med,
                                               "identical_outputs": same}, indent=1))
    if not same:
        raise SystemExit("placed and unplaced builds wrote different ids")


if __name__ == "__main__":
    main()
