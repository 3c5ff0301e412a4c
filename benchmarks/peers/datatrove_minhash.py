"""DataTrove side of benchmarks/near_dedup.py; runs inside DataTrove's own virtual env.

    <peer-venv>/bin/python benchmarks/peers/datatrove_minhash.py --input DIR --work DIR --output result.json

DataTrove's MinHash pipeline as in its examples/minhash_deduplication.py and PEERS.md:
MinhashDedupSignature -> MinhashDedupBuckets -> MinhashDedupCluster -> MinhashDedupFilter with
MinhashConfig(HashConfig(precision=64), num_buckets=14, hashes_per_bucket=8, n_grams=5), each stage a
LocalPipelineExecutor(tasks, workers). Its own normalisation and spaCy word tokeniser (English).
The input is split into `tasks` files in id order, so DataTrove's "keep the first document of a
cluster" keeps the smallest id, as sft_ray does. Writes {"removed": [ids], "seconds"}.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True, help="folder of *.jsonl files with {id, text}, in id order")
    ap.add_argument("--work", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--tasks", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup import MinhashDedupSignature
    from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers.jsonl import JsonlWriter
    from datatrove.utils.hashing import HashConfig

    t0 = time.perf_counter()
    work = Path(args.work)
    cfg = MinhashConfig(hash_config=HashConfig(precision=64), num_buckets=14, hashes_per_bucket=8, n_grams=5)

    def reader():
        return JsonlReader(args.input, text_key="text", id_key="id", glob_pattern="*.jsonl")

    stage1 = LocalPipelineExecutor(
        pipeline=[reader(), MinhashDedupSignature(output_folder=str(work / "signatures"), config=cfg)],
        tasks=args.tasks, workers=args.workers, logging_dir=str(work / "logs/signatures"),
    )
    stage2 = LocalPipelineExecutor(
        pipeline=[MinhashDedupBuckets(input_folder=str(work / "signatures"), output_folder=str(work / "buckets"), config=cfg)],
        tasks=cfg.num_buckets, workers=args.workers, logging_dir=str(work / "logs/buckets"), depends=stage1,
    )
    stage3 = LocalPipelineExecutor(
        pipeline=[MinhashDedupCluster(input_folder=str(work / "buckets"), output_folder=str(work / "remove_ids"), config=cfg)],
        tasks=1, logging_dir=str(work / "logs/clusters"), depends=stage2,
    )
    stage4 = LocalPipelineExecutor(
        pipeline=[
            reader(),
            MinhashDedupFilter(input_folder=str(work / "remove_ids"), exclusion_writer=JsonlWriter(str(work / "removed"))),
            JsonlWriter(str(work / "kept")),
        ],
        tasks=args.tasks, workers=args.workers, logging_dir=str(work / "logs/filter"), depends=stage3,
    )
    stage4.run()
    seconds = time.perf_counter() - t0
    removed = []
    for f in sorted((work / "removed").glob("*.jsonl.gz")):
        with gzip.open(f, "rt", encoding="utf-8") as fh:
            removed += [json.loads(line)["id"] for line in fh]
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump({"removed": removed, "seconds": seconds}, f)


if __name__ == "__main__":
    main()
