"""Per-filter score distributions with their thresholds, from the report's record sample.

For each clean filter that ran (config `clean.<filter>.enabled`, the kinds it applies to), the
sampled records it judged are split into those it passed and those it rejected: a record rejected
by link i of the chain reached every link up to i and passed every link before it
(report/scores.py, CHAIN); kept records and records rejected after the clean stage passed every
link. The two groups come from separate uniform samples (report/sample.py), so their histograms
are shares of their group, not counts. Thresholds are the build's (`clean` of the config).
"""

from __future__ import annotations

import numpy as np

from sft_ray.report.scores import CHAIN, STATS, link_of, threshold

BINS = 30


def _value(rec: dict, stat: str):
    if stat == "lang_score":
        return rec.get("lang_score")
    return (rec.get("scores") or {}).get(stat)


def _link_pos(rec: dict) -> int:
    """Position in CHAIN of the link that rejected a clean reject; -1 for a reason of no link (HTML
    extraction's, in the read task: such a record reached no filter)."""
    link = link_of(rec.get("reject_reason"))
    return CHAIN.index(link) if link else -1


def filter_scores(sample: dict, clean_cfg: dict) -> dict:
    """{filter: {"kinds", "passed", "rejected", "stats": {stat: {what, thresholds, edges, passed, rejected, percentiles}}}}."""
    records = sample.get("records", {})
    passed_all = records.get("kept", []) + records.get("later", [])
    clean = records.get("clean", [])
    errors = sorted({r["scores"]["_error"] for r in passed_all + clean if "_error" in (r.get("scores") or {})})
    out: dict = {}
    if not clean_cfg.get("enabled", True):  # no filter ran: nothing compared a statistic with a threshold
        return {"filters": out, "errors": errors}
    for flt, stats in STATS.items():
        fcfg = clean_cfg if flt == "length" else clean_cfg.get(flt, {})
        if flt != "length" and not fcfg.get("enabled", True):
            continue
        kinds = fcfg.get("kinds") if flt != "length" else None
        pos = CHAIN.index(flt)

        def applies(r: dict) -> bool:  # language ID also judges pairs; the text statistics are of documents
            return (flt == "langid" or r.get("kind") != "translation") and (kinds is None or r.get("kind") in kinds)

        later = [r for r in clean if _link_pos(r) > pos]
        passed = [r for r in passed_all + later if applies(r)]
        rejected = [r for r in clean if applies(r) and link_of(r.get("reject_reason")) == flt]
        entry = {"kinds": kinds, "passed": len(passed), "rejected": len(rejected), "stats": {}}
        for stat, fields, what in stats:
            p = [float(v) for v in (_value(r, stat) for r in passed) if v is not None]
            j = [float(v) for v in (_value(r, stat) for r in rejected) if v is not None]
            if not p and not j:
                continue
            ths = [{"field": f, "side": side, "value": threshold(clean_cfg, flt, f)} for f, side in fields]
            ths = [t for t in ths if isinstance(t["value"], (int, float))]
            entry["stats"][stat] = {"what": what, "thresholds": ths, **_histograms(p, j, [t["value"] for t in ths])}
        if entry["stats"]:
            out[flt] = entry
    return {"filters": out, "errors": errors}


def _histograms(passed: list[float], rejected: list[float], marks: list[float]) -> dict:
    """Shared bins over the values' p0.5..p99.5 range and the thresholds (outliers go to the end bins)."""
    vals = np.asarray(passed + rejected, dtype=float)
    lo, hi = np.percentile(vals, [0.5, 99.5]) if len(vals) else (0.0, 1.0)
    span = max(5 * (hi - lo), 0.5 * abs(hi))  # a far-off cap (100k words) does not squash the bins; a near threshold is shown
    near = [m for m in marks if lo - span <= m <= hi + span]
    lo, hi = min([lo, *near]), max([hi, *near])
    if hi <= lo:
        hi = lo + 1.0
    edges = np.linspace(lo, hi, BINS + 1)

    def counts(x: list[float]) -> list[int]:
        return np.histogram(np.clip(np.asarray(x, dtype=float), lo, hi), bins=edges)[0].tolist() if x else [0] * BINS

    from sft_ray.report.sample import percentiles

    return {"edges": [round(float(e), 4) for e in edges], "passed_counts": counts(passed), "rejected_counts": counts(rejected),
            "passed_percentiles": percentiles(passed), "rejected_percentiles": percentiles(rejected)}
