"""datasketch side of benchmarks/near_dedup.py; runs inside datasketch's own virtual env.

    <peer-venv>/bin/python benchmarks/peers/datasketch_minhash.py --input corpus.jsonl --output result.json

The usual datasketch recipe (its README, and PEERS.md): `MinHash(num_perm=112)` fed word 5-gram
shingles with `update_batch`, `MinHashLSH(num_perm=112, params=(14, 8))`, documents in id order,
query-then-insert = keep the first, one process. Shingles use sft_ray's normalisation, written out
here in plain Python (lowercase; punctuation, symbols and whitespace separate words), so that both
sides hash the same shingle sets. Writes {"removed": {id: first match}, "docs", "seconds"}.
"""

from __future__ import annotations

import argparse
import json
import time
import unicodedata


def separator(c: str) -> bool:
    cat = unicodedata.category(c)[0]
    return c.isspace() or cat in "ZPS"


def word_shingles(text: str, n: int) -> list[bytes]:
    words = "".join(" " if separator(c) else c for c in text.lower()).split()
    if not words:
        return []
    if len(words) < n:
        return [" ".join(words).encode("utf-8")]
    return [" ".join(words[i : i + n]).encode("utf-8") for i in range(len(words) - n + 1)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True, help="jsonl of {id, text}")
    ap.add_argument("--output", required=True)
    ap.add_argument("--num-perm", type=int, default=112)
    ap.add_argument("--bands", type=int, default=14)
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--ngram", type=int, default=5)
    args = ap.parse_args()

    from datasketch import MinHash, MinHashLSH

    t0 = time.perf_counter()
    docs = [json.loads(line) for line in open(args.input, encoding="utf-8")]
    docs.sort(key=lambda d: d["id"])  # keep-first == keep the smallest id, as sft_ray does
    lsh = MinHashLSH(num_perm=args.num_perm, params=(args.bands, args.rows))
    removed = {}
    for d in docs:
        sh = word_shingles(d["text"], args.ngram)
        if not sh:
            continue
        m = MinHash(num_perm=args.num_perm)
        m.update_batch(sh)
        hits = lsh.query(m)
        if hits:
            removed[d["id"]] = min(hits)
        else:
            lsh.insert(d["id"], m)
    seconds = time.perf_counter() - t0
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump({"removed": removed, "docs": len(docs), "seconds": seconds}, f)


if __name__ == "__main__":
    main()
