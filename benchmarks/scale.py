"""How a build's memory and time grow with corpus size: two code trees side by side, same corpora, same run.

    .venv/bin/python benchmarks/scale.py --baseline /work/wt/scale-base                       # 20k and 100k docs
    .venv/bin/python benchmarks/scale.py --baseline DIR --sizes 100000,1000000,3000000
    .venv/bin/python benchmarks/scale.py --quick --trees candidate                            # smoke run, ~2k docs

What runs: for each size, for each tree (`--baseline DIR`, `--candidate DIR`, default this repository)
a full build, `python -m sft_ray.cli build --config <generated yaml>` with PYTHONPATH=<tree>, as its
own process with its own local Ray (the build's `ray.init()`, sft_ray/runtime.py) under its own
RAY_TMPDIR, so each run's session logs are its own and no Ray outlives it. Stages: clean, dedup
(exact + near; semantic off, as by default), decontamination, format (news: classification and
headline), SFT dedup, writes; label and teacher off. The process is started by a few lines of
Python (`CHILD` below) that run the tree's CLI and then read the object store's totals.

Corpus (deterministic per seed, cached under --cache): JSONL news records {id, title, text, label},
English units (AG News descriptions, WMT22 English sentences, rt-polarity reviews from the shared
corpora, else the AG News part and Multi30k captions shipped in sft_ray/demo/data) joined into
documents of log-normal length (median ~400 words, sigma 1.0, capped at 20,000 words: the longest
exceed clean.max_chars and are rejected `too_long`, as real corpora's are); 10% of the documents
are edited copies (1-5% of words substituted), 2% exact copies, and one hub of near-identical
boilerplate pages (min(--hub, --hub-share = 5% of the documents), two words changed each) forms one giant
near-duplicate component. Files of at most ~50 MB (at least 4).

Measured per run:
  wall s               the build process from start to exit (Ray start and stop included)
  cpu s                CPU seconds of the whole process tree (driver, raylet, GCS, workers): tools/rss.py
  driver peak MiB      peak RSS of the build's driver process
  largest worker       peak private RSS (RSS minus shared pages: the object store is not counted) of
                       the largest Ray worker, and the task it ran at that peak (tools/rss.py)
  spilled MiB          the object store's spilled_bytes_total, asked of the build's raylet after the
                       build (ray._private.internal_api.get_memory_info_reply: what `ray memory
                       --stats-only` prints), in the same process, before ray.shutdown()
  shuffled bytes/doc   bytes entering Ray Data's shuffle map / all-to-all / join / aggregate operators
                       (their completion metrics' bytes_inputs_received, in-memory Arrow bytes), summed
                       over the build and divided by the documents
  executions           Ray Data executions: "Dataset <id> execution finished|failed" lines of the
                       session's logs/ray-data/ray-data.log (one per executed Dataset)
  scans                executions that read the input files or the staged records: their own log
                       (logs/ray-data/ray-data-dataset_<id>.log) shows a Read operator, or the read+clean
                       task `_stage_units` (sft_ray/staging.py), completing
  same ids             curated/ ids and sft/train + sft/validation ids (with their split) of this tree
                       equal those of the first tree at that size
The log texts are Ray 2.60's; the child sets DataContext.enable_auto_log_stats (logging only).

Targets (docs/ARCHITECTURE.md, "Scale": memory per worker does not grow with corpus size): driver
and per-worker peak within +25% from the smallest to the largest size; wall s per document within
+-25%; the hub finishes with every worker under 1 GiB. The growth lines print them.
"""

from __future__ import annotations

import argparse
import csv
import glob
import gzip
import html
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import ROOT, load_average, mib, table
from tools import CORPORA
from tools.rss import TreeSampler

VERSION = 2  # bump when the corpus recipe changes: the cache key includes it
MEDIAN_WORDS, SIGMA, MAX_WORDS, MIN_WORDS = 400, 1.0, 20_000, 20
NEAR_SHARE, EXACT_SHARE, HUB_SHARE = 0.10, 0.02, 0.05
EDIT_RATES = [0.01, 0.02, 0.03, 0.05]  # share of words substituted in a near-duplicate
FILE_BYTES = 50 * 2**20
MIN_FILES = 4
CHUNK = 20_000  # documents generated (and shuffled) at a time: memory stays bounded at millions
LABELS = ["World", "Sports", "Business", "Sci/Tech"]
HUB_PAGE = (
    "Skip to main content. Home News Sport Business Technology Contact us. Sign up for our daily newsletter to get the "
    "latest headlines delivered to your inbox. This website uses cookies to improve your experience. By continuing to "
    "browse the site you agree to our use of cookies and to our privacy policy and terms of service. "
)
QUICK_DOCS = 2000
DEFAULT_CACHE = Path("/tmp/sft_ray_scale")
VENV_PYTHON = Path(os.environ.get("SFT_RAY_PYTHON", "/work/main/.venv/bin/python"))

# Runs in the build process (cwd: the run folder; sys.path: PYTHONPATH=<tree> first). Its stdout's
# last line starting with @@SCALE@@ carries what only the live cluster knows.
CHILD = r"""
import json, os, sys
cpus = int(os.environ.get("SCALE_CPUS") or 0)
if cpus:
    os.cpu_count = lambda: cpus  # sft_ray/runtime.py sizes the local Ray from it
import ray
ray.data.DataContext.get_current().enable_auto_log_stats = True  # a stats summary per execution in ray-data.log
from sft_ray import cli
rc = cli.main(["build", "--config", sys.argv[1]])
info = {"rc": rc}
try:
    from ray._private.internal_api import get_memory_info_reply, get_state_from_address
    s = get_memory_info_reply(get_state_from_address(ray.get_runtime_context().gcs_address)).store_stats
    info.update(spilled_bytes=s.spilled_bytes_total, spilled_objects=s.spilled_objects_total,
                restored_bytes=s.restored_bytes_total, fallback_bytes=s.object_store_bytes_fallback)
except Exception as e:  # noqa: BLE001 - reported, not fatal: the build's own result stands
    info["store_stats_error"] = repr(e)
print("@@SCALE@@" + json.dumps(info), flush=True)
ray.shutdown()
sys.exit(rc)
"""


# ------------------------------------------------------------------------------------------ corpus
def _lines(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        return [" ".join(line.split()) for line in f if len(line.split()) >= 3]


def _ag_descriptions(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as f:
        return [" ".join(html.unescape(re.sub(r"#(\d+);", r"&#\1;", desc.replace("\\", " "))).split()) for _l, _t, desc in csv.reader(f)]


def english_units() -> tuple[list[str], str]:
    """Sentences / short paragraphs of real English text, and where they came from."""
    if (CORPORA / "news/ag_news/ag_news_test_part.csv").exists():
        units = _ag_descriptions(CORPORA / "news/ag_news/ag_news_test_part.csv")
        units += [s for p in sorted((CORPORA / "translation/wmt22_generaltest").glob("generaltest2022.*.en")) for s in _lines(p)]
        rt = CORPORA / "sentiment/rt-polarity"
        for name in ("rt-polarity.pos", "rt-polarity.neg"):
            if (rt / name).exists():
                units += _lines(rt / name)
        return units, f"shared corpora ({CORPORA}): AG News, WMT22 en, rt-polarity"
    demo = ROOT / "sft_ray/demo/data"
    units = _ag_descriptions(demo / "ag_news_test_part.csv") + _lines(demo / "multi30k_train_3k.en.gz")
    return units, "sft_ray/demo/data: AG News part, Multi30k en"


def hub_count(n: int, hub: int, share: float = HUB_SHARE) -> int:
    return min(hub, int(n * share))


def build_corpus(n: int, seed: int, cache: Path, hub: int, hub_share: float = HUB_SHARE) -> Path:
    """n documents in part-*.jsonl under the cache (reused when complete: `_DONE`)."""
    out = cache / "corpus" / f"n{n}-s{seed}-h{hub_count(n, hub, hub_share)}-v{VERSION}"
    if (out / "_DONE").exists():
        return out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    t0 = time.perf_counter()
    print(f"building corpus of {n:,} documents in {out} ...", flush=True)
    units, origin = english_units()
    rng = np.random.default_rng(seed)
    # Words drawn independently from the units' word frequencies (Zipfian, real spelling and punctuation):
    # two documents then share no 13-gram by chance, as real ones mostly do not, so decontamination
    # against the validation split (dedup.decontaminate.validation_split) rejects only planted copies.
    # Whole sentences drawn from a pool of a few thousand would repeat across documents.
    counts: dict[str, int] = {}
    for u in units:
        for w in u.split():
            counts[w] = counts.get(w, 0) + 1
    vocab = np.array(sorted(counts))
    prob = np.array([counts[w] for w in vocab], dtype=np.float64)
    prob /= prob.sum()
    cdf = np.cumsum(prob)
    n_hub = hub_count(n, hub, hub_share)
    n_exact = int(n * EXACT_SHARE)
    n_near = int(n * NEAR_SHARE)
    n_orig = n - n_hub - n_exact - n_near
    mean_doc_bytes = MEDIAN_WORDS * math.exp(SIGMA**2 / 2) * 6.2
    per_file = max(1 << 20, min(FILE_BYTES, int(n * mean_doc_bytes / MIN_FILES)))

    ids: set[str] = set()

    def words(k: int) -> list[str]:
        return vocab[np.minimum(np.searchsorted(cdf, rng.random(k)), len(vocab) - 1)].tolist()

    def new_id() -> str:
        while True:
            i = f"{int(rng.integers(0, 2**48)):012x}"
            if i not in ids:
                ids.add(i)
                return i

    def documents(k: int) -> list[dict]:
        """k documents; their words drawn in one vectorised call."""
        sizes = np.clip(rng.lognormal(math.log(MEDIAN_WORDS), SIGMA, size=k), MIN_WORDS, MAX_WORDS).astype(np.int64)
        title_sizes = rng.integers(4, 12, size=k)
        w = words(int(sizes.sum() + title_sizes.sum()))
        starts = np.concatenate([[0], np.cumsum(sizes + title_sizes)])
        out = []
        for i in range(k):
            s0, t0, n_w = int(starts[i]), int(starts[i] + title_sizes[i]), int(sizes[i])
            cuts = np.cumsum(rng.integers(40, 160, size=n_w // 40 + 1))
            cuts = [t0, *(t0 + cuts[cuts < n_w]).tolist(), t0 + n_w]
            text = "\n".join(" ".join(w[a:b]) for a, b in zip(cuts, cuts[1:]))
            out.append({"id": new_id(), "title": " ".join(w[s0:t0]), "text": text, "label": LABELS[int(rng.integers(0, 4))]})
        return out

    def edited(d: dict, rate: float, words_changed: int | None = None) -> dict:
        paras = [p.split(" ") for p in d["text"].split("\n")]
        sizes = np.array([len(p) for p in paras])
        flat = [w for p in paras for w in p]
        k = words_changed if words_changed is not None else max(1, int(rng.binomial(len(flat), rate)))
        for pos, w in zip(rng.integers(0, len(flat), size=k), rng.choice(vocab, size=k)):
            flat[int(pos)] = str(w)
        ends = np.cumsum(sizes)
        text = "\n".join(" ".join(flat[e - s : e]) for s, e in zip(sizes, ends))
        return {**d, "id": new_id(), "text": text}

    hub_base = {"title": "Home", "text": HUB_PAGE + " ".join(words(400)), "label": "World"}
    quotas = np.array([n_orig, n_near, n_exact, n_hub])
    files, written, f, fbytes = 0, 0, None, 0
    while written < n:
        m = min(CHUNK, n - written)
        # this chunk's share of each kind: cumulative quotas, so the shares add up to them exactly
        share = quotas * (written + m) // n - quotas * written // n
        share[0] += m - share.sum()
        originals = documents(int(share[0]))
        chunk = list(originals)
        chunk += [edited(originals[int(rng.integers(0, len(originals)))], float(rng.choice(EDIT_RATES))) for _ in range(int(share[1]))]
        chunk += [{**originals[int(rng.integers(0, len(originals)))], "id": new_id()} for _ in range(int(share[2]))]
        chunk += [edited({**hub_base, "id": ""}, 0.0, words_changed=2) for _ in range(int(share[3]))]
        for i in rng.permutation(len(chunk)):
            if f is None or fbytes >= per_file:
                if f:
                    f.close()
                f, fbytes, files = open(out / f"part-{files:05d}.jsonl", "w", encoding="utf-8"), 0, files + 1
            line = json.dumps(chunk[i], ensure_ascii=False) + "\n"
            f.write(line)
            fbytes += len(line)
        written += m
    f.close()
    meta = {"docs": n, "seed": seed, "originals": int(quotas[0]), "near_copies": int(quotas[1]), "exact_copies": int(quotas[2]),
            "hub": int(quotas[3]), "files": files, "bytes": sum(p.stat().st_size for p in out.glob("part-*.jsonl")), "units": origin,
            "seconds": round(time.perf_counter() - t0, 1)}
    (out / "corpus.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    (out / "_DONE").write_text("", encoding="utf-8")
    print(f"  {meta['bytes'] / 1e6:,.0f} MB in {files} files, {meta['seconds']} s", flush=True)
    return out


# -------------------------------------------------------------------------------------------- runs
def write_config(corpus: Path, run: Path) -> Path:
    """The build's config: keys that both trees know (sft_ray/config/), label and teacher off."""
    cfg = {
        "output": str(run / "out"),
        "overwrite": True,
        "sources": [{"name": "scale", "kind": "news", "format": "jsonl", "path": str(corpus / "part-*.jsonl"),
                     "fields": {"id": "id", "title": "title", "text": "text", "label": "label"}, "langs": {"text": "en"}}],
        "dedup": {"enabled": True, "exact": {"enabled": True}, "near": {"enabled": True}},
        "label": {"enabled": False},
        "teacher": {"enabled": False},
        "format": {"enabled": True},
    }
    path = run / "config.yaml"
    path.write_text(json.dumps(cfg, indent=2), encoding="utf-8")  # JSON is YAML
    return path


SHUFFLE_OPS = re.compile(r"Operator (\w*(?:ShuffleMap|AllToAll|Join|Aggregate)\w*)\[[^\n]*\] completed\. Operator Metrics:\n\{[^\n]*?'bytes_inputs_received': (\d+)")
SCAN_OPS = re.compile(r"Operator \w+\[(?:Read\w*|[^\]\n]*_stage_units)")


def ray_data_log(ray_tmp: Path) -> dict:
    """What the run's Ray Data logs say (Ray 2.60's text; logs/ray-data/ of the session):
    executions  "Dataset <id> execution finished|failed" lines of ray-data.log, one per executed Dataset
    scans       per-execution logs (ray-data-dataset_<id>.log) in which a Read operator (input or staged
                files) or the read+clean task `_stage_units` (sft_ray/staging.py) completed
    shuffled    bytes entering shuffle map / all-to-all / join / aggregate operators ('bytes_inputs_received'
                of their completion metrics, in-memory Arrow bytes), summed over executions"""
    executions, scans, shuffled = set(), 0, 0
    for log in ray_tmp.rglob("logs/ray-data/ray-data.log"):
        text = log.read_text(encoding="utf-8", errors="replace")
        executions |= set(re.findall(r"Dataset (\S+) execution (?:finished|failed)", text))
        shuffled += sum(int(m.group(2)) for m in SHUFFLE_OPS.finditer(text))
        for per in log.parent.glob("ray-data-dataset_*.log"):
            scans += bool(SCAN_OPS.search(per.read_text(encoding="utf-8", errors="replace")))
    return {"executions": len(executions), "scans": scans, "shuffled_bytes": shuffled}


def output_ids(out: Path, sub: str, prefix: str = "") -> np.ndarray:
    """Sorted ids of one output folder (`prefix` + id: the SFT splits are told apart by it)."""
    import pyarrow.parquet as pq

    files = sorted(glob.glob(str(out / sub / "**" / "*.parquet"), recursive=True))
    ids = [pq.read_table(f, columns=["id"])["id"].to_numpy(zero_copy_only=False) for f in files]
    return np.sort(np.char.add(prefix, np.concatenate(ids).astype(str))) if ids else np.array([], dtype=str)


def kept_ids(out: Path) -> dict[str, np.ndarray]:
    """What a build kept: curated/ record ids, and SFT example ids with their split."""
    return {"curated": output_ids(out, "curated"),
            "sft": np.sort(np.concatenate([output_ids(out, f"sft/{s}", f"{s}/") for s in ("train", "validation")]))}


def _stop_leftovers(ray_tmp: Path, wait_s: float = 20.0) -> None:
    """The build's Ray processes (their command lines name its RAY_TMPDIR) exit with it; any still
    there after `wait_s` (a crashed driver leaves its raylet) are terminated, by pid, and named."""
    import psutil

    def ours() -> list[psutil.Process]:
        found = []
        for p in psutil.process_iter(["pid", "cmdline"]):
            try:
                if str(ray_tmp) in " ".join(p.info["cmdline"] or []):
                    found.append(p)
            except psutil.Error:
                pass
        return found

    deadline = time.monotonic() + wait_s
    while (left := ours()) and time.monotonic() < deadline:
        time.sleep(0.5)
    for p in left:
        print(f"    stopping a leftover process of the build's Ray: {p.pid} {' '.join(p.info['cmdline'] or [])[:120]}", flush=True)
        p.terminate()
    psutil.wait_procs(left, timeout=10)


def same_ids(ids: np.ndarray, ref: np.ndarray) -> str:
    """"yes" when two builds kept exactly the same records (sorted curated/ ids), else "no (+a -b)"."""
    if np.array_equal(ids, ref):
        return "yes"
    return f"no (+{len(np.setdiff1d(ids, ref)):,} -{len(np.setdiff1d(ref, ids)):,})"


def run_build(tree: Path, name: str, corpus: Path, cache: Path, n: int, cpus: int | None, keep: bool = False) -> dict:
    run = cache / "runs" / f"{name}-n{n}"
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    cfg = write_config(corpus, run)
    ray_tmp = Path(f"/tmp/ssr-{os.getpid()}-{name[:4]}")  # short: Ray's socket paths must stay under 107 bytes
    shutil.rmtree(ray_tmp, ignore_errors=True)
    ray_tmp.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    env.update(PYTHONPATH=str(tree), RAY_TMPDIR=str(ray_tmp), SCALE_CPUS=str(cpus or ""), RAY_DATA_DISABLE_PROGRESS_BARS="1")
    print(f"  {name}: build of {n:,} docs ({tree}), log {run / 'build.log'} ...", flush=True)
    t0 = time.perf_counter()
    with open(run / "build.log", "w", encoding="utf-8") as log:
        proc = subprocess.Popen([str(VENV_PYTHON), "-c", CHILD, str(cfg)], cwd=run, env=env, stdout=log, stderr=subprocess.STDOUT)
        with TreeSampler(proc.pid, every=0.5) as s:
            rc = proc.wait()
    wall = time.perf_counter() - t0
    _stop_leftovers(ray_tmp)
    text = (run / "build.log").read_text(encoding="utf-8", errors="replace")
    info = next((json.loads(line[len("@@SCALE@@"):]) for line in reversed(text.splitlines()) if line.startswith("@@SCALE@@")), {})
    if rc != 0:
        raise RuntimeError(f"{name} build of {n} docs exited {rc}; log: {run / 'build.log'}\n{text[-3000:]}")
    manifest = json.loads((run / "out" / "manifest.json").read_text(encoding="utf-8"))
    driver = s.peak.get(proc.pid, {})
    workers = sorted(s.ray_workers(), key=lambda v: -v["private"])
    top = workers[0] if workers else {}
    # The task at the peak: a worker keeps its memory after a task, so a later task in the same process
    # starts near the earlier one's peak and may top it by a little. Name the first task (in the order
    # the worker ran them: by_task keeps first-seen order) that came within 5% of the worker's peak.
    tasks = {t: v for t, v in top.get("by_task", {}).items() if "IDLE" not in t}
    near_peak = 0.95 * max(tasks.values(), default=0)
    task = next((t for t, v in tasks.items() if v >= near_peak), "") if tasks else top.get("peak_during", "")
    data_log = ray_data_log(ray_tmp)
    ids = kept_ids(run / "out")
    for k, v in ids.items():
        np.save(run / f"{k}_ids.npy", v)
    if keep:
        shutil.move(str(ray_tmp), run / "ray")
    else:  # the ids are kept; the corpus-sized outputs and the session logs are not
        shutil.rmtree(ray_tmp, ignore_errors=True)
        for sub in ("curated", "rejects", "sft", "_work"):
            shutil.rmtree(run / "out" / sub, ignore_errors=True)
    return {
        "size": n, "tree": name, "path": str(tree), "wall_s": round(wall, 1), "build_total_s": manifest["timings"].get("total_s"),
        "timings": manifest["timings"], "cpu_s": round(sum(v.get("cpu_s", 0) for v in s.peak.values()), 1),
        "driver_peak_mib": mib(driver.get("rss", 0)), "driver_private_mib": mib(driver.get("private", 0)),
        "worker_private_mib": mib(top.get("private", 0)), "worker_task": task.removeprefix("ray::"),
        "worker_tasks_mib": {t.removeprefix("ray::"): mib(v) for t, v in tasks.items()},  # the largest worker's tasks, in order
        "workers_over_1gib": sum(1 for v in workers if v["private"] >= 2**30), "ray_workers": len(workers),
        "spilled_mib": mib(info["spilled_bytes"]) if "spilled_bytes" in info else None,
        "store_stats": info, **data_log, "shuffled_bytes_per_doc": round(data_log["shuffled_bytes"] / n, 1),
        "counts": {k: manifest["counts"][k] for k in ("input", "kept", "rejected")}, "by_stage": manifest["counts"].get("by_stage"),
        "sft": {k: manifest["sft"].get(k) for k in ("train", "validation")}, "dedup": manifest.get("dedup"),
        "profile": manifest.get("profile"),  # the build's own account of its time (sft_ray/time_profile.py), where the tree has it
        "curated": int(len(ids["curated"])), "ids_files": {k: str(run / f"{k}_ids.npy") for k in ids},
    }


# ------------------------------------------------------------------------------------------ report
def _ratio(a, b) -> str:
    if not (isinstance(a, (int, float)) and isinstance(b, (int, float))):
        return "-"
    return f"{a / b:.2f}" if b else "both 0" if a == 0 else "inf"


def _f(v, digits: int = 1) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"


def report(rows: list[dict], trees: list[str]) -> str:
    header = ["size", "tree", "wall s", "s per 1k docs", "cpu s", "driver peak MiB", "largest worker private MiB (task)",
              "spilled MiB", "shuffled bytes/doc", "executions", "scans", "curated", "same ids"]
    body = [[f"{r['size']:,}", r["tree"], _f(r["wall_s"]), f"{r['wall_s'] / r['size'] * 1000:.2f}", _f(r["cpu_s"]), _f(r["driver_peak_mib"]),
             f"{_f(r['worker_private_mib'])} ({r['worker_task']})", _f(r["spilled_mib"]), _f(r["shuffled_bytes_per_doc"], 0), r["executions"], r["scans"], f"{r['curated']:,}",
             r["same_ids"]] for r in rows]
    lines = [table(header, body)]
    by = {(r["size"], r["tree"]): r for r in rows}
    sizes = sorted({r["size"] for r in rows})
    if len(trees) > 1:
        a, b = trees[-1], trees[0]
        lines += ["", f"ratios {a} / {b}:", table(["size", "wall s", "cpu s", "driver peak", "largest worker private", "spilled", "shuffled bytes", "executions"], [
            [f"{n:,}", *(_ratio(by[n, a][k], by[n, b][k]) for k in ("wall_s", "cpu_s", "driver_peak_mib", "worker_private_mib", "spilled_mib",
                                                                    "shuffled_bytes", "executions"))]
            for n in sizes if (n, a) in by and (n, b) in by])]
    if len(sizes) > 1:
        lo, hi = sizes[0], sizes[-1]
        lines += ["", f"growth from {lo:,} to {hi:,} docs (targets: driver and worker peak <= 1.25x, wall per doc 0.75-1.25x, every worker < 1 GiB):"]
        grow = []
        for t in trees:
            if (lo, t) in by and (hi, t) in by:
                x, y = by[lo, t], by[hi, t]
                per_doc = (y["wall_s"] / hi) / (x["wall_s"] / lo)
                grow.append([t, _ratio(y["driver_peak_mib"], x["driver_peak_mib"]), _ratio(y["worker_private_mib"], x["worker_private_mib"]),
                             f"{per_doc:.2f}", max(y["workers_over_1gib"], x["workers_over_1gib"]),
                             "yes" if (y["driver_peak_mib"] <= 1.25 * x["driver_peak_mib"] and y["worker_private_mib"] <= 1.25 * x["worker_private_mib"]
                                       and 0.75 <= per_doc <= 1.25 and y["workers_over_1gib"] == 0) else "no"])
        lines.append(table(["tree", "driver peak", "largest worker private", "wall per doc", "workers >= 1 GiB", "targets met"], grow))
    return "\n".join(lines)


def save(path: Path, results: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", type=Path, help="checkout of the code before the scale work (e.g. a git worktree)")
    ap.add_argument("--candidate", type=Path, default=ROOT, help="code tree under test (default: this repository)")
    ap.add_argument("--trees", default="baseline,candidate", help="which trees to run, in order (the first is the identity reference)")
    ap.add_argument("--sizes", default="20000,100000", help="corpus sizes in documents, comma-separated")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2,000 documents (overrides --sizes)")
    ap.add_argument("--hub", type=int, default=50_000, help="most hub pages (a size gets min(this, --hub-share of its documents))")
    ap.add_argument("--hub-share", type=float, default=HUB_SHARE,
                    help="most hub pages as a share of the documents (default 0.05; e.g. --sizes 100000 --hub-share 0.5 "
                    "puts the 50k-page hub into a corpus this machine builds in minutes)")
    ap.add_argument("--cpus", type=int, default=None, help="CPUs of each build's local Ray (default: all; sft_ray/runtime.py makes it >= 4)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="keep each run's outputs and Ray session logs under <cache>/runs/")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="corpora and run folders")
    ap.add_argument("--merge", help="print one table from these results files (comma-separated; runs nothing), e.g. "
                    "sizes measured in separate invocations")
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "scale.json", help="JSON results file")
    args = ap.parse_args(argv)
    if args.merge:
        rows = [r for f in args.merge.split(",") for r in json.loads(Path(f).read_text(encoding="utf-8"))["rows"]]
        rows.sort(key=lambda r: r["size"])
        print(report(rows, list(dict.fromkeys(r["tree"] for r in rows))))
        return 0
    sizes = [QUICK_DOCS] if args.quick else [int(x) for x in args.sizes.split(",")]
    trees = [t.strip() for t in args.trees.split(",") if t.strip()]
    paths = {"baseline": args.baseline, "candidate": args.candidate}
    for t in trees:
        if t not in paths:
            ap.error(f"--trees: unknown tree {t!r} (baseline, candidate)")
        if paths[t] is None or not (Path(paths[t]) / "sft_ray" / "cli.py").exists():
            ap.error(f"--{t}: {paths[t]} is not a sft_ray checkout (no sft_ray/cli.py); create one with git worktree add")
    print(f"scale benchmark: sizes {sizes}, trees {', '.join(f'{t}={paths[t]}' for t in trees)}; {load_average()}", flush=True)
    rows = []
    for n in sizes:
        corpus = build_corpus(n, args.seed, args.cache, args.hub, args.hub_share)
        ref = None
        for t in trees:
            r = run_build(Path(paths[t]).resolve(), t, corpus, args.cache, n, args.cpus, args.keep)
            ids = {k: np.load(f, allow_pickle=False) for k, f in r["ids_files"].items()}
            ref = ids if ref is None else ref
            diff = {k: same_ids(ids[k], ref[k]) for k in ids}
            r["same_ids"] = "yes" if set(diff.values()) == {"yes"} else "; ".join(f"{k} {v}" for k, v in diff.items())
            r["corpus"] = json.loads((corpus / "corpus.json").read_text(encoding="utf-8"))
            rows.append(r)
            # after every run: a multi-hour run that stops half-way keeps what it measured
            save(args.results, {"argv": sys.argv[1:], "trees": {t: str(paths[t]) for t in trees}, "rows": rows, "partial": True})
            print(f"    {r['wall_s']} s, driver {r['driver_peak_mib']} MiB, worker {r['worker_private_mib']} MiB ({r['worker_task']}), "
                  f"spilled {r['spilled_mib']} MiB, {r['executions']} executions, curated {r['curated']:,}, same ids {r['same_ids']}", flush=True)
    out = report(rows, trees)
    print("\n" + out)
    print(f"\n{load_average()}; wall times on a shared machine are noisy, cpu s less so")
    save(args.results, {"argv": sys.argv[1:], "trees": {t: str(paths[t]) for t in trees}, "rows": rows, "table": out})
    print(f"results: {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
