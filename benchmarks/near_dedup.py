"""sft_ray's MinHash-LSH near-dedup vs datasketch: quality and throughput, same documents, same run.

    .venv/bin/python benchmarks/near_dedup.py --docs 100000            # the comparison (2 cores: ~5 min)
    .venv/bin/python benchmarks/near_dedup.py --docs 5000 --cpus 2     # a quick look while developing
    .venv/bin/python benchmarks/near_dedup.py --memory                 # time and peak RSS per Ray worker at 10k, 100k, 300k docs
    .venv/bin/python benchmarks/near_dedup.py --docs 20000 --build     # whole `sft-ray build` processes vs datasketch's process

Corpus (real text, seeded edits; there is no labelled near-duplicate set in shared/corpora):
  background documents: random samples of real units, joined as paragraphs, ~280 words median
    news      AG News descriptions and WMT22 English sentences
    news_de   WMT22 German sentences
    web       paragraphs of the 70 web pages (trafilatura's main text) and XQuAD en/de contexts
    captions  Multi30k captions of one language (en, de, fr or cs)
    reviews   rt-polarity sentences
  Units are sampled, not taken in runs, so two background documents share almost nothing.
  planted near-duplicates: 10% of the documents are edited copies of others (1-3 per original):
    word drops / inserts / substitutions at a rate drawn from 0-25% (this sets the Jaccard), plus
    case changes, whitespace and punctuation changes, boilerplate lines, truncation, paragraph swaps.
  Ids are random hex, so the survivor (smallest id) is as often the copy as the original.

Truth: exact Jaccard of the normalised word 5-gram sets (a plain-Python implementation, independent
of sft_ray's vectorised one) between members of each planted cluster. A document should be removed
when some smaller-id member of its cluster has Jaccard >= 0.8 with it, and kept when every one has
< 0.5; in between it is not scored. Removals outside planted clusters are checked the same way
against the document they were matched to.

What runs (same documents, same parameters: word 5-grams, 112 permutations as 14 bands x 8 rows):
  sft_ray          near_dedup on a local Ray with --cpus CPUs: read jsonl -> signatures -> LSH ->
                   exact-Jaccard verification (>= near.verify_jaccard, 0.75) -> connected components -> tags
  sft_ray LSH only the same with verify_jaccard off (what the peers do)
  datasketch       MinHash + MinHashLSH, query-then-insert keep-first, 1 process, own venv
                   (benchmarks/peers/datasketch_minhash.py)
Ray startup (ray.init plus the first tiny job that starts the worker processes) is reported on its
own line; docs/s are given without and with it.
With --build the sft_ray rows are whole `sft-ray build` processes instead (a dedup-only config:
clean, exact dedup, decontamination and format off, not resumable; curated/, rejects/, the report
and the manifest written), timed like the peers' processes: from process start to exit. The build's
own profile (manifest.json) says where that time went. Results also go to <cache>/runs/near-n<N>/results.json.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import html
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
import unicodedata
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import BENCH_CACHE, ROOT, ensure_venv
from tools import CORPORA
from tools.rss import TreeSampler

VERSION = 2  # bump when the corpus recipe changes: the cache key includes it
PARTS = 8  # at least; one file per 2,000 documents (~4.4 MB), as a real corpus comes in files
DOCS_PER_FILE = 2000
NGRAM, BANDS, ROWS = 5, 14, 8
POSITIVE, NEGATIVE = 0.8, 0.5

BOILERPLATE = [
    "Click here to subscribe", "Share this article", "Advertisement", "Skip to main content", "Related articles",
    "Sign up for our daily newsletter to get the latest headlines delivered to your inbox.",
    "Copyright 2023 The Associated Press. All rights reserved.", "Follow us on Twitter", "Back to top",
    "This website uses cookies to improve your experience. By continuing you agree to our cookie policy.",
]
FAMILY_WEIGHTS = {"news": 0.35, "web": 0.2, "captions": 0.2, "reviews": 0.15, "news_de": 0.1}
EDIT_RATES = [0.0, 0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.12, 0.18, 0.25]


# ------------------------------------------------------------------------------------ real units
def _lines(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [" ".join(line.split()) for line in f if len(line.split()) >= 3]


def unit_pools() -> dict[str, list[list[str]]]:
    """family -> pools of units (a document draws from one pool of its family)."""
    from tools.clean_corpus import (
        web_pages,  # trafilatura main text of the shared web pages
    )

    ag = []
    with open(CORPORA / "news/ag_news/ag_news_test_part.csv", newline="", encoding="utf-8") as f:
        for _label, _title, desc in csv.reader(f):
            ag.append(" ".join(html.unescape(re.sub(r"#(\d+);", r"&#\1;", desc.replace("\\", " "))).split()))
    wmt = CORPORA / "translation/wmt22_generaltest"
    en = [s for p in sorted(wmt.glob("generaltest2022.*.en")) for s in _lines(p)]
    de = [s for p in sorted(wmt.glob("generaltest2022.*.de")) for s in _lines(p)]
    web = [p for _name, paras in web_pages() for p in paras if len(p.split()) >= 5]
    for lang in ("en", "de"):
        data = json.loads((CORPORA / f"qa/xquad/xquad.{lang}.json").read_text(encoding="utf-8"))["data"]
        web += [p["context"] for a in data for p in a["paragraphs"]]
    m30k = CORPORA / "translation/multi30k_task1_raw"
    rt = CORPORA / "sentiment/rt-polarity"
    reviews = []
    for name in ("rt-polarity.pos", "rt-polarity.neg"):
        reviews += [" ".join(line.split()) for line in open(rt / name, encoding="utf-8", errors="replace") if line.strip()]
    return {
        "news": [ag + en],
        "news_de": [de],
        "web": [web],
        "captions": [_lines(m30k / f"train.{lang}.gz") for lang in ("en", "de", "fr", "cs")],
        "reviews": [reviews],
    }


def background_doc(rng: random.Random, pools: dict[str, list[list[str]]]) -> list[str]:
    family = rng.choices(list(FAMILY_WEIGHTS), weights=list(FAMILY_WEIGHTS.values()))[0]
    pool = rng.choice(pools[family])
    target = min(2000, max(40, int(rng.lognormvariate(5.63, 0.6))))  # median ~280 words
    units, words = [], 0
    while words < target:
        u = pool[rng.randrange(len(pool))]
        units.append(u)
        words += len(u.split())
    per_para = rng.choice([1, 2, 3, 5])
    return [" ".join(units[i : i + per_para]) for i in range(0, len(units), per_para)]


def edited_copy(paras: list[str], rng: random.Random, vocab: list[str]) -> tuple[str, dict]:
    """A near-duplicate: word edits at a drawn rate, plus edits the normalisation should ignore."""
    rate = rng.choice(EDIT_RATES)
    edits = {"rate": rate}
    paras = list(paras)
    if rng.random() < 0.15 and len(paras) > 2:
        i = rng.randrange(len(paras) - 1)
        paras[i], paras[i + 1] = paras[i + 1], paras[i]
        edits["swap"] = True
    if rng.random() < 0.1 and len(paras) > 3:
        paras = paras[: max(2, int(len(paras) * rng.uniform(0.7, 0.95)))]
        edits["truncate"] = True
    out = []
    for p in paras:
        words = []
        for w in p.split():
            r = rng.random()
            if r < rate / 3:
                continue  # drop
            if r < 2 * rate / 3:
                words.append(rng.choice(vocab))  # substitute
                continue
            words.append(w)
            if r < rate:
                words.append(rng.choice(vocab))  # insert
        out.append(" ".join(words))
    if rng.random() < 0.3:
        out = [" ".join(w.upper() if rng.random() < 0.1 else w for w in p.split()) for p in out]
        edits["case"] = True
    if rng.random() < 0.3:
        out = [p.replace(", ", " , ").replace(". ", ".  ") for p in out]
        edits["punct_space"] = True
    if rng.random() < 0.3:
        k = rng.randint(1, 3)
        out = rng.sample(BOILERPLATE, k) + out + rng.sample(BOILERPLATE, rng.randint(0, 2))
        edits["boilerplate"] = k
    sep = rng.choice(["\n", "\n\n", " \n", "\r\n"])
    return sep.join(out), edits


def build_corpus(n: int, seed: int, cache: Path) -> Path:
    out = cache / "corpus" / f"near-n{n}-s{seed}-v{VERSION}"
    if (out / "truth.json").exists():
        return out
    print(f"building corpus of {n:,} documents in {out} ...", flush=True)
    rng = random.Random(seed)
    pools = unit_pools()
    vocab = sorted({w for u in pools["news"][0][:3000] for w in u.split()})
    n_copies = n // 10
    docs: list[dict] = []
    used_ids = set()

    def new_id() -> str:
        while True:
            i = f"{rng.getrandbits(48):012x}"
            if i not in used_ids:
                used_ids.add(i)
                return i

    originals = []
    for _ in range(n - n_copies):
        paras = background_doc(rng, pools)
        d = {"id": new_id(), "text": "\n".join(paras), "cluster": None}
        docs.append(d)
        originals.append((d, paras))
    made = 0
    while made < n_copies:
        d, paras = originals[rng.randrange(len(originals))]
        if d["cluster"] is None:
            d["cluster"] = d["id"]
        for _ in range(min(rng.choice([1, 1, 1, 2, 3]), n_copies - made)):
            text, edits = edited_copy(paras, rng, vocab)
            docs.append({"id": new_id(), "text": text, "cluster": d["id"], "edits": edits})
            made += 1
    rng.shuffle(docs)
    out.mkdir(parents=True, exist_ok=True)
    parts = max(PARTS, n // DOCS_PER_FILE)
    for k in range(parts):
        with open(out / f"part-{k:03d}.jsonl", "w", encoding="utf-8") as f:
            for d in docs[k::parts]:
                f.write(json.dumps({"id": d["id"], "text": d["text"]}, ensure_ascii=False) + "\n")
    clusters = defaultdict(list)
    for d in docs:
        if d["cluster"]:
            clusters[d["cluster"]].append(d)
    pairs = {}
    for members in clusters.values():
        sets = {d["id"]: ref_shingles(d["text"]) for d in members}
        ids = sorted(sets)
        for i, a in enumerate(ids):
            for b in ids[i + 1 :]:
                pairs[f"{a} {b}"] = ref_jaccard(sets[a], sets[b])
    cluster_of = {d["id"]: d["cluster"] for d in docs if d["cluster"]}
    with open(out / "truth.json", "w", encoding="utf-8") as f:
        json.dump({"docs": n, "seed": seed, "copies": n_copies, "cluster_of": cluster_of, "pair_jaccard": pairs}, f)
    return out


# ----------------------------------------------------------------------- truth (plain Python)
def _sep(c: str) -> bool:
    cat = unicodedata.category(c)[0]
    return c.isspace() or cat in "ZPS"


def ref_shingles(text: str, n: int = NGRAM) -> set[tuple[str, ...]]:
    words = "".join(" " if _sep(c) else c for c in text.lower()).split()
    if not words:
        return set()
    if len(words) < n:
        return {tuple(words)}
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def ref_jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def labels(truth: dict, texts: dict[str, str], removals: list[dict[str, str]]) -> dict[str, str]:
    """Per document: 'pos' (should be removed), 'neg' (should stay) or 'gray' (not scored)."""
    cluster_of, pj = truth["cluster_of"], truth["pair_jaccard"]
    members = defaultdict(list)
    for d, c in cluster_of.items():
        members[c].append(d)
    lab = {d: "neg" for d in texts}
    for ids in members.values():
        for d in ids:
            best = max((pj[f"{e} {d}"] for e in ids if e < d), default=0.0)
            lab[d] = "pos" if best >= POSITIVE else "neg" if best < NEGATIVE else "gray"
    # Accidental near-duplicates outside planted clusters: judge by the document they were matched to.
    cache: dict[str, set] = {}
    for removed in removals:
        for d, p in removed.items():
            if p is None or (cluster_of.get(d) is not None and cluster_of.get(d) == cluster_of.get(p)):
                continue
            for x in (d, p):
                if x not in cache:
                    cache[x] = ref_shingles(texts[x])
            j = ref_jaccard(cache[d], cache[p])
            if j >= NEGATIVE and lab[d] == "neg":
                lab[d] = "pos" if j >= POSITIVE else "gray"
    return lab


def score(removed: dict[str, str], lab: dict[str, str]) -> dict:
    pos = {d for d, v in lab.items() if v == "pos"}
    rem = {d for d in removed if lab.get(d) != "gray"}
    tp = len(rem & pos)
    fp, fn = len(rem - pos), len(pos - rem)
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"removed": len(removed), "tp": tp, "fp": fp, "fn": fn, "precision": p, "recall": r, "f1": f1}


# ------------------------------------------------------------------------------------ sft_ray side
def _init_ray(cpus: int) -> None:
    import ray

    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    # Ray Data's shuffle map tasks run in workers of their own runtime env (hash_shuffle_v2), so a
    # pipeline alternating maps and shuffles keeps two worker pools. With the default soft limit
    # (num_cpus workers) idle workers beyond it are killed after 1 s and restarted at the next stage:
    # measured here, 2 shuffles took 50-60 s that way and 1.3-2.9 s with the pool kept.
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"RAY_DATA_DISABLE_PROGRESS_BARS": "1"}},
             _system_config={"num_workers_soft_limit": 4 * cpus + 4, "idle_worker_killing_time_threshold_ms": 600_000})
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False


def _to_records(batch):
    import pyarrow as pa

    from sft_ray import schema

    n = batch.num_rows
    cols = {schema.ID: batch["id"], schema.TEXT: batch["text"], schema.SOURCE: pa.array(["bench"] * n), schema.KIND: pa.array(["web"] * n)}
    return pa.Table.from_arrays([cols.get(f.name, pa.nulls(n, f.type)) for f in schema.RECORD_SCHEMA], schema=schema.RECORD_SCHEMA)


def run_sft_ray(files: list[str], verify: float | None, cpus: int, docs: int) -> tuple[float, dict[str, str]]:
    """Timed: read jsonl -> near_dedup -> materialised output. Returns (seconds, {removed: survivor}).
    One block per file of ~2,000 documents (~4.4 MB), as a real corpus would give, whatever its size."""
    import ray

    from sft_ray import schema
    from sft_ray.config import DedupConfig
    from sft_ray.dedup import near_dedup

    # Shuffle partitions grow with the data (one per 10k documents, at least 2 per CPU), as
    # `dedup.num_partitions` should on a cluster: a partition's size, not the corpus, bounds memory.
    cfg = DedupConfig(num_partitions=max(cpus * 2, docs // 10_000), near={"verify_jaccard": verify, "ngram_size": NGRAM,
                                                             "num_bands": BANDS, "rows_per_band": ROWS})
    t0 = time.perf_counter()
    ds = ray.data.read_json(files).map_batches(_to_records, batch_format="pyarrow")
    out = near_dedup(ds, cfg).materialize()
    seconds = time.perf_counter() - t0
    tags = out.select_columns([schema.ID, schema.REJECT_REASON, schema.DUPLICATE_OF]).to_arrow_refs()
    removed = {}
    for t in ray.get(tags):
        for i, r, d in zip(t[schema.ID].to_pylist(), t[schema.REJECT_REASON].to_pylist(), t[schema.DUPLICATE_OF].to_pylist()):
            if r == "near_duplicate":
                removed[i] = d
    return seconds, removed


def warm_up(files: list[str]) -> float:
    """The first Ray Data jobs of a session start the worker processes (one pool for maps, one for
    shuffle maps): time a run on 30 documents and a copy of each, so that every stage has work."""
    import pyarrow as pa
    import ray

    from sft_ray.config import DedupConfig
    from sft_ray.dedup import near_dedup

    t0 = time.perf_counter()
    docs = [json.loads(line) for _, line in zip(range(30), open(files[0], encoding="utf-8"))]
    docs += [{"id": d["id"] + "~copy", "text": d["text"]} for d in docs]
    ds = ray.data.from_arrow(pa.Table.from_pylist(docs)).repartition(4).map_batches(_to_records, batch_format="pyarrow")
    near_dedup(ds, DedupConfig(num_partitions=2)).materialize()
    return time.perf_counter() - t0


# -------------------------------------------------------------------------------- datasketch side
def run_datasketch(corpus: Path, cache: Path, run_dir: Path) -> tuple[float, float, dict[str, str]]:
    py = ensure_venv(cache / "venv-datasketch", ["datasketch"], "datasketch")
    joined = run_dir / "corpus.jsonl"
    with open(joined, "w", encoding="utf-8") as f:
        for p in sorted(corpus.glob("part-*.jsonl")):
            f.write(p.read_text(encoding="utf-8"))
    out = run_dir / "datasketch.json"
    t0 = time.perf_counter()
    subprocess.run([str(py), str(ROOT / "benchmarks/peers/datasketch_minhash.py"), "--input", str(joined), "--output", str(out),
                    "--num-perm", str(BANDS * ROWS), "--bands", str(BANDS), "--rows", str(ROWS), "--ngram", str(NGRAM)], check=True)
    wall = time.perf_counter() - t0
    res = json.loads(out.read_text(encoding="utf-8"))
    return res["seconds"], wall, res["removed"]


def run_datatrove(corpus: Path, cache: Path, run_dir: Path, cpus: int) -> tuple[float, float, dict[str, None]]:
    py = ensure_venv(cache / "venv-datatrove", ["datatrove==0.10.1", "xxhash<4", "spacy", "regex", "tokenizers", "orjson"], "datatrove, spacy")
    docs = sorted((json.loads(line) for p in sorted(corpus.glob("part-*.jsonl")) for line in open(p, encoding="utf-8")), key=lambda d: d["id"])
    inp, work = run_dir / "datatrove-input", run_dir / "datatrove-work"
    for d in (inp, work):
        shutil.rmtree(d, ignore_errors=True)
    inp.mkdir(parents=True)
    k = -(-len(docs) // cpus)
    for i in range(cpus):  # contiguous id ranges: DataTrove keeps a cluster's first document = smallest id
        with open(inp / f"part-{i:02d}.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(d, ensure_ascii=False) + "\n" for d in docs[i * k : (i + 1) * k])
    out = run_dir / "datatrove.json"
    t0 = time.perf_counter()
    subprocess.run([str(py), str(ROOT / "benchmarks/peers/datatrove_minhash.py"), "--input", str(inp), "--work", str(work),
                    "--output", str(out), "--tasks", str(cpus), "--workers", str(cpus)], check=True, capture_output=True)
    wall = time.perf_counter() - t0
    res = json.loads(out.read_text(encoding="utf-8"))
    return res["seconds"], wall, dict.fromkeys(res["removed"])


# ----------------------------------------------------------------------- sft_ray as a whole build
def build_config(corpus: Path, out: Path, verify: float | None) -> dict:
    """A dedup-only build of the corpus: near dedup with the benchmark's parameters and nothing else
    that changes records, so its removals are comparable with the peers'."""
    return {"output": str(out), "overwrite": True, "resumable": False,
            "sources": [{"name": "bench", "kind": "web", "format": "jsonl", "path": str(corpus / "part-*.jsonl"),
                         "fields": {"id": "id", "text": "text"}}],
            "clean": {"enabled": False}, "format": {"enabled": False},
            "dedup": {"exact": {"enabled": False}, "decontaminate": {"enabled": False}, "sft": {"enabled": False},
                      "near": {"verify_jaccard": verify, "ngram_size": NGRAM, "num_bands": BANDS, "rows_per_band": ROWS}}}


def run_build(corpus: Path, run_dir: Path, verify: float | None, name: str, tree: Path = ROOT) -> tuple[float, dict, dict[str, str]]:
    """`sft-ray build` of `tree`'s code in its own process (a local Ray on this machine's CPUs), timed
    from start to exit. Returns (wall s, the build's profile, {removed: survivor} read from rejects/)."""
    import pyarrow.parquet as pq

    out = run_dir / f"build-{name}"
    cfg = run_dir / f"build-{name}.json"  # JSON is YAML
    cfg.write_text(json.dumps(build_config(corpus, out, verify)), encoding="utf-8")
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "sft_ray.cli", "build", "--config", str(cfg)], cwd=tree,
                         env={**os.environ, "PYTHONPATH": str(tree)}, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"sft-ray build failed ({res.returncode}):\n{res.stderr[-3000:]}")
    rejects = pq.read_table(out / "rejects", columns=["id", "reason", "duplicate_of"]).to_pylist()
    profile = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["profile"]
    own = lambda i: i.removeprefix("bench-")  # noqa: E731 - the build names a record "<source>-<given id>" (ingest/records.py)
    return wall, profile, {own(r["id"]): own(r["duplicate_of"]) for r in rejects if r["reason"] == "near_duplicate"}


# ------------------------------------------------------------------------------------------ memory
def memory_child(n: int, seed: int, cache: Path, cpus: int) -> None:
    corpus = build_corpus(n, seed, cache)
    files = sorted(str(p) for p in corpus.glob("part-*.jsonl"))
    _init_ray(cpus)
    warm_up(files)
    with TreeSampler() as s:
        seconds, removed = run_sft_ray(files, 0.8, cpus, n)
    workers = s.ray_workers()
    workers.sort(key=lambda v: -v["private"])
    print(json.dumps({"docs": n, "seconds": seconds, "removed": len(removed), "workers": len(workers),
                      "max_private_mib": round(workers[0]["private"] / 2**20, 1) if workers else None,
                      "max_rss_mib": round(max(v["rss"] for v in workers) / 2**20, 1) if workers else None,
                      "top": [(v["name"][:40], round(v["private"] / 2**20, 1)) for v in workers[:4]]}))


def memory_mode(args) -> None:
    rows = []
    for n in args.sizes:
        build_corpus(n, args.seed, args.cache_dir)
        res = subprocess.run([sys.executable, __file__, "--memory-child", str(n), "--seed", str(args.seed),
                              "--cpus", str(args.cpus), "--cache-dir", str(args.cache_dir)], capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(res.stderr[-3000:])
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
    print("\n| docs | run s | Ray worker processes | peak private RSS, largest worker (MiB) | peak RSS incl. shared (MiB) |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['docs']:,} | {r['seconds']:.1f} | {r['workers']} | {r['max_private_mib']} | {r['max_rss_mib']} |")
    print("largest workers:", *(r["top"] for r in rows), sep="\n  ")


# -------------------------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cpus", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--cache-dir", type=Path, default=BENCH_CACHE)
    ap.add_argument("--peers", default="datasketch", help="comma-separated peers to run: datasketch, datatrove (or none)")
    ap.add_argument("--also-verify", type=lambda v: [float(x) for x in v.split(",") if x], default=[],
                    help="more sft_ray rows with these verify_jaccard values (the default's row is always run)")
    ap.add_argument("--build", action="store_true", help="the sft_ray rows as whole `sft-ray build` processes (start to exit)")
    ap.add_argument("--baseline", type=Path, help="with --build: also build with the code of this tree (e.g. a worktree of an older commit)")
    ap.add_argument("--memory", action="store_true", help="time and peak RSS per Ray worker at each of --sizes")
    ap.add_argument("--sizes", type=lambda v: [int(x) for x in v.split(",")], default=[10_000, 100_000, 300_000],
                    help="corpus sizes of --memory (comma-separated)")
    ap.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        return memory_child(args.memory_child, args.seed, args.cache_dir, args.cpus)
    if args.memory:
        return memory_mode(args)

    corpus = build_corpus(args.docs, args.seed, args.cache_dir)
    truth = json.loads((corpus / "truth.json").read_text(encoding="utf-8"))
    files = sorted(str(p) for p in corpus.glob("part-*.jsonl"))
    texts = {}
    for p in files:
        for line in open(p, encoding="utf-8"):
            d = json.loads(line)
            texts[d["id"]] = d["text"]
    run_dir = args.cache_dir / "runs" / f"near-n{args.docs}"
    run_dir.mkdir(parents=True, exist_ok=True)
    n = len(texts)
    mb = sum(len(t.encode("utf-8")) for t in texts.values()) / 1e6
    print(f"corpus: {n:,} documents, {mb:.1f} MB, {truth['copies']:,} planted copies; {args.cpus} CPUs", flush=True)

    results = {}
    from sft_ray.config import NearDedupConfig

    default = NearDedupConfig().verify_jaccard
    extra = [(f"sft_ray verify {v}", v) for v in args.also_verify if v != default]
    t_init = t_warm = 0.0
    if args.build:
        trees = [("", ROOT)] + ([(" (baseline)", args.baseline.resolve())] if args.baseline else [])
        for (suffix, tree), (name, verify) in [(t, r) for r in (("sft_ray", default), *extra, ("sft_ray LSH only", None)) for t in trees]:
            name += suffix
            wall, prof, removed = run_build(corpus, run_dir, verify, re.sub(r"\W+", "_", name).strip("_"), tree)
            # "seconds" = the build's own steps; "startup" = the rest of the process (start-up, report, exit)
            inside = prof["stages"]["read_clean_dedup_s"]
            results[name] = {"seconds": inside, "startup": wall - inside, "removed": removed, "wall": wall, "profile": prof}
            print(f"{name} (whole build): {wall:.1f} s from process start to exit; start-up {prof['startup_s']} s, Ray's start inside the build "
                  f"{prof.get('ray_start_s')} s, first records "
                  f"{prof.get('first_record_s', prof['first_output_s'])} s, stages {prof['stages']}, {prof['executions']} executions; {len(removed):,} removed",
                  flush=True)
    else:
        t0 = time.perf_counter()
        _init_ray(args.cpus)
        t_init = time.perf_counter() - t0
        t_warm = warm_up(files)
        for name, verify in (("sft_ray", default), *extra, ("sft_ray LSH only", None)):
            sec, removed = run_sft_ray(files, verify, args.cpus, n)
            results[name] = {"seconds": sec, "startup": t_init + t_warm, "removed": removed}
            print(f"{name}: {sec:.1f} s, {len(removed):,} removed", flush=True)
    if "datasketch" in args.peers.split(","):
        sec, wall, removed = run_datasketch(corpus, args.cache_dir, run_dir)
        results["datasketch"] = {"seconds": sec, "startup": wall - sec, "removed": removed}
        print(f"datasketch: {sec:.1f} s, {len(removed):,} removed", flush=True)
    if "datatrove" in args.peers.split(","):
        try:
            sec, wall, removed = run_datatrove(corpus, args.cache_dir, run_dir, args.cpus)
        except subprocess.CalledProcessError as e:  # report the others rather than lose them
            print(f"datatrove failed: {e}\n{(e.stderr or b'').decode(errors='replace')[-3000:]}", flush=True)
        else:
            results["datatrove"] = {"seconds": sec, "startup": wall - sec, "removed": removed}
            print(f"datatrove: {sec:.1f} s, {len(removed):,} removed", flush=True)

    lab = labels(truth, texts, [r["removed"] for r in results.values()])
    counts = {k: sum(1 for v in lab.values() if v == k) for k in ("pos", "neg", "gray")}
    print(f"\ntruth: {counts['pos']:,} should be removed (Jaccard >= {POSITIVE} to a smaller id), "
          f"{counts['gray']:,} in [{NEGATIVE}, {POSITIVE}) not scored, {counts['neg']:,} should stay")
    if args.build:
        print("sft_ray rows: s = the build's read + dedup stage (with Ray's start where the build starts Ray itself: its profile's ray_start_s); "
              "startup = the rest of its process (start-up, writes, report, exit)\n")
    else:
        print(f"Ray startup (ray.init {t_init:.1f} s + first job starting workers {t_warm:.1f} s): {t_init + t_warm:.1f} s\n")
    peers = [p for p in ("datasketch", "datatrove") if p in results]
    print("| method | docs/s | s | docs/s incl. startup | " + " | ".join(f"sft_ray ÷ {p} (incl. startup)" for p in peers)
          + " | removed | P | R | F1 |")
    print("|---|---:|---:|---:|" + "---:|" * len(peers) + "---:|---:|---:|---:|")
    for name, r in results.items():
        s = score(r["removed"], lab)
        r["score"] = s
        rate, rate_all = n / r["seconds"], n / (r["seconds"] + r["startup"])
        ratios = []
        for p in peers:
            pr = results[p]
            ratios.append(f"{rate / (n / pr['seconds']):.2f}x ({rate_all / (n / (pr['seconds'] + pr['startup'])):.2f}x)")
        print(f"| {name} | {rate:,.0f} | {r['seconds']:.1f} | {rate_all:,.0f} | " + " | ".join(ratios) + f" | {s['removed']:,} | "
              f"{s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} |")
    print("(the ratio columns: this row's docs/s ÷ the peer's; for the peers' own rows, read them as peer ÷ peer)")
    for p in peers:
        a, b = set(results["sft_ray"]["removed"]), set(results[p]["removed"])
        print(f"\nremoved-set agreement sft_ray vs {p}: both {len(a & b):,}, only sft_ray {len(a - b):,}, "
              f"only {p} {len(b - a):,}, Jaccard {len(a & b) / max(1, len(a | b)):.3f}")
        for name, only in (("only sft_ray", a - b), (f"only {p}", b - a)):
            print(f"  {name} by truth label: " + ", ".join(f"{k} {sum(1 for d in only if lab[d] == k)}" for k in ("pos", "gray", "neg")))
    with open(run_dir / ("results-build.json" if args.build else "results.json"), "w", encoding="utf-8") as f:
        json.dump({"docs": n, "mb": mb, "cpus": args.cpus, "ray_init_s": t_init, "ray_first_job_s": t_warm, "truth": counts,
                   "methods": {k: {kk: vv for kk, vv in v.items() if kk != "removed"} for k, v in results.items()}}, f, indent=2)


if __name__ == "__main__":
    main()
