"""LLM teacher throughput, validity and cache: SmolLM2-135M-Instruct writing extractive QA pairs on CPU.

    .venv/bin/python benchmarks/teacher.py                       # 64 AG News descriptions (minutes on 2 busy cores)
    .venv/bin/python benchmarks/teacher.py --n 16 --max-new-tokens 48   # a quick look

Three runs over the same N passages (AG News test descriptions, real news text; kind `text`):
1. `teacher_examples` through Ray Data: actor pool of `--concurrency` actors x `--num-cpus` CPUs,
   fresh cache. Reported end to end (actor start and the model load included) and examples/s.
2. The peer: a plain single-process transformers loop over the same prompts (same chat template,
   response prefix, greedy decoding, micro-batches of --generate-batch-size, length-sorted,
   left-padded, `torch.set_num_threads(--peer-threads)`), validated with the same parser; the model
   load is timed separately. Ratio = Ray end to end / peer end to end.
3. A rerun of 1 on the same output: cache hit rate = 1 - new cache entries / requests (must be
   100%), wall time, and whether its rows equal the first run's.

Prints a table and writes benchmarks/results/teacher.json. The machine's load average is recorded:
on 2 shared cores the absolute numbers move with other people's jobs.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
import time
from pathlib import Path

import pyarrow as pa

from sft_ray import schema
from sft_ray.config import RunConfig, TeacherConfig
from sft_ray.format.split import assign_split
from sft_ray.synthesize.teacher import REASON, build_requests, teacher_examples
from sft_ray.synthesize.cache import cache_stats
from sft_ray.synthesize.parse import validate

CORPORA = Path(os.environ.get("SFT_RAY_CORPORA", "/work/shared/corpora"))


def passages(n: int) -> pa.Table:
    rows = list(csv.reader(open(CORPORA / "news/ag_news/ag_news_test_part.csv", encoding="utf-8")))
    picked = rows[::max(1, len(rows) // n)][:n]  # spread over the file (its rows are not grouped by class)
    recs = schema.records_from_rows([{schema.ID: f"agnews-{i}", schema.SOURCE: "agnews", schema.KIND: "text", schema.TITLE: r[1],
                                 schema.TEXT: r[2].replace("\\", " ").strip()} for i, r in enumerate(picked)])
    return assign_split(recs, 0.05, 0)  # as the build does right after dedup: the teacher reads `split`


def ray_run(recs: pa.Table, cfg: RunConfig, out: str) -> tuple[list[dict], float]:
    import ray

    t0 = time.time()
    rows = teacher_examples(ray.data.from_arrow(recs), cfg, out, {}).take_all()
    return sorted(rows, key=lambda r: r[schema.ID]), time.time() - t0


def peer_run(recs: pa.Table, tcfg: TeacherConfig, threads: int) -> dict:
    """Plain transformers: the same prompts, one process, no Ray, no cache."""
    import torch

    from sft_ray.models import load_model, load_tokenizer, resolve_model

    torch.set_num_threads(threads)
    t0 = time.time()
    path = resolve_model(tcfg.model)
    tok = load_tokenizer(path)
    tok.padding_side = "left"
    model = load_model(path).eval()
    load_s = time.time() - t0
    task = tcfg.tasks["qa"]
    req = build_requests(recs.select([schema.ID, schema.SOURCE, schema.KIND, schema.TEXT, schema.TITLE, schema.SPLIT]), tcfg).to_pylist()
    req.sort(key=lambda r: len(r["prompt"]))
    valid = 0
    t1 = time.time()
    for at in range(0, len(req), tcfg.generate_batch_size):
        chunk = req[at:at + tcfg.generate_batch_size]
        texts = [tok.apply_chat_template([{"role": "user", "content": r["prompt"]}], tokenize=False, add_generation_prompt=True)
                 + task.response_prefix for r in chunk]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            seqs = model.generate(**enc, max_new_tokens=task.max_new_tokens, do_sample=False, temperature=None, top_p=None,
                                  top_k=None, pad_token_id=tok.pad_token_id)
        for r, s in zip(chunk, seqs[:, enc["input_ids"].shape[1]:]):
            ids = s.tolist()
            finished = tok.eos_token_id in ids
            text = tok.decode(ids[: ids.index(tok.eos_token_id)] if finished else ids, skip_special_tokens=True)
            valid += validate(task, r["passage"], task.response_prefix + text, finished)[0] is not None
    gen_s = time.time() - t1
    return {"examples": len(req), "load_s": round(load_s, 1), "generate_s": round(gen_s, 1), "total_s": round(load_s + gen_s, 1),
            "examples_per_s": round(len(req) / gen_s, 3), "valid_share": round(valid / max(1, len(req)), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64, help="passages (one qa request each)")
    ap.add_argument("--max-new-tokens", type=int, default=None, help="override the qa task's budget")
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--num-cpus", type=float, default=1.0)
    ap.add_argument("--generate-batch-size", type=int, default=8)
    ap.add_argument("--peer-threads", type=int, default=2)
    ap.add_argument("--skip-peer", action="store_true")
    ap.add_argument("--peer-only", action="store_true", help="only the plain transformers loop; adds it to the saved JSON under peer_runs")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "teacher.json"))
    args = ap.parse_args()

    from sft_ray.runtime import init_ray

    qa = TeacherConfig().tasks["qa"]
    if args.max_new_tokens:
        qa = qa.model_copy(update={"max_new_tokens": args.max_new_tokens})
    tcfg = TeacherConfig(enabled=True, tasks={"qa": qa}, concurrency=args.concurrency, num_cpus=args.num_cpus,
                         batch_size=args.generate_batch_size * 2, generate_batch_size=args.generate_batch_size)
    recs = passages(args.n)
    out = tempfile.mkdtemp(prefix="teacher-bench-")
    cfg = RunConfig(output=out, teacher=tcfg)
    load = {"before": os.getloadavg()}
    if args.peer_only:  # another peer setting next to a saved result (e.g. --peer-threads 1)
        peer = peer_run(recs, tcfg, args.peer_threads)
        saved = json.loads(Path(args.out).read_text()) if Path(args.out).exists() else {}
        saved.setdefault("peer_runs", {})[f"{args.peer_threads}_threads"] = {**peer, "loadavg": [load["before"], os.getloadavg()]}
        Path(args.out).write_text(json.dumps(saved, indent=2) + "\n")
        print(f"peer, {args.peer_threads} threads: {peer}")
        return
    init_ray()

    rows, ray_s = ray_run(recs, cfg, out)
    n = len(rows)
    valid = sum(r[schema.REJECT_REASON] is None for r in rows)
    reasons: dict[str, int] = {}
    for r in rows:
        if r[schema.REJECT_REASON] == REASON:
            detail = r["messages"][0]["content"].removeprefix(REASON + ": ").split(" (")[0].split(";")[0]
            reasons[detail] = reasons.get(detail, 0) + 1
    entries = cache_stats(out)["entries"]
    rerun, rerun_s = ray_run(recs, cfg, out)
    new_entries = cache_stats(out)["entries"] - entries
    peer = None if args.skip_peer else peer_run(recs, tcfg, args.peer_threads)
    load["after"] = os.getloadavg()

    result = {
        "model": tcfg.model, "passages": args.n, "corpus": "AG News test descriptions", "max_new_tokens": qa.max_new_tokens,
        "ray": {"examples": n, "total_s": round(ray_s, 1), "examples_per_s": round(n / ray_s, 3), "valid": valid,
                "valid_share": round(valid / max(1, n), 3), "invalid_details": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
                "concurrency": args.concurrency, "num_cpus": args.num_cpus, "generate_batch_size": args.generate_batch_size,
                "mean_teacher_score_valid": round(sum(r["teacher_score"] or 0 for r in rows if r[schema.REJECT_REASON] is None) / max(1, valid), 3),
                "mean_teacher_score_invalid": round(sum(r["teacher_score"] or 0 for r in rows if r[schema.REJECT_REASON]) / max(1, n - valid), 3)},
        "rerun": {"total_s": round(rerun_s, 1), "new_cache_entries": new_entries, "cache_hit_rate": round(1 - new_entries / max(1, n), 4),
                  "rows_identical": rerun == rows},
        "peer_plain_transformers": peer,
        "ratio_ray_total_over_peer_total": round(ray_s / peer["total_s"], 2) if peer else None,
        "loadavg": load, "cpus": os.cpu_count(),
        "samples": [r["messages"] for r in rows if r[schema.REJECT_REASON] is None][:3],
    }
    print(f"\nteacher benchmark: {tcfg.model}, {args.n} AG News passages, qa, max_new_tokens={qa.max_new_tokens}, "
          f"load avg {load['before'][0]:.1f} -> {load['after'][0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'run':38} {'examples':>8} {'wall s':>8} {'ex/s':>7} {'valid':>7} {'cache hit':>9}")
    print(f"{'ray actor pool (%dx%g CPU), cold cache' % (args.concurrency, args.num_cpus):38} {n:>8} {ray_s:>8.1f} {n / ray_s:>7.3f} "
          f"{valid / max(1, n):>7.1%} {'-':>9}")
    print(f"{'ray rerun (same output)':38} {n:>8} {rerun_s:>8.1f} {n / rerun_s:>7.3f} {valid / max(1, n):>7.1%} "
          f"{result['rerun']['cache_hit_rate']:>9.1%}")
    if peer:
        print(f"{'peer: plain transformers, %d threads' % args.peer_threads:38} {peer['examples']:>8} {peer['total_s']:>8.1f} "
              f"{peer['examples'] / peer['total_s']:>7.3f} {peer['valid_share']:>7.1%} {'-':>9}")
        print(f"  peer: load {peer['load_s']} s + generate {peer['generate_s']} s ({peer['examples_per_s']} ex/s generating); "
              f"ray/peer wall = {result['ratio_ray_total_over_peer_total']}")
    print(f"  rerun rows identical: {result['rerun']['rows_identical']}; invalid details: {result['ray']['invalid_details']}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
