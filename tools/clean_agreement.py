"""sft_ray's clean chain vs DataTrove's on the same documents: the comparison config, the reason
names of both sides, and the agreement of their per-document keep/reject decisions.

Used by benchmarks/clean_throughput.py; the corpus comes from tools/clean_corpus.py.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path


def bench_config(corpus: Path, output: Path, normalize: bool = True):
    """The build config: one jsonl web source, the clean chain cut down to DataTrove's filter set."""
    from sft_ray.config import CleanConfig, RunConfig

    clean = {
        # No length bounds, no text repair (ftfy, markup) or boilerplate-line removal before the
        # filters (DataTrove has none); NFC + whitespace normalisation as `normalize` says.
        "normalize": normalize, "min_chars": 0, "max_chars": 10**9,
        "fix_mojibake": False, "strip_markup": False, "boilerplate_kinds": [],
        "langid": {"threshold": 0.65},
        "c4": {"filter_no_terminal_punct": False},  # FineWeb's recipe
        "pii": {"enabled": False}, "bitext": {"enabled": False},
    }
    cfg = {
        "output": str(output),
        "overwrite": True,
        "sources": [{"name": "bench", "kind": "web", "format": "jsonl", "path": str(corpus / "*.jsonl"),
                     "fields": {"id": "id", "text": "text"}, "langs": {"text": "en"}}],
        # Switches of this version only, so the script keeps working as stages come and go.
        "clean": {k: v for k, v in clean.items() if k in CleanConfig.model_fields},
        **{stage: {"enabled": False} for stage in ("dedup", "label", "format") if stage in RunConfig.model_fields},
    }
    return RunConfig.model_validate(cfg)


def their_reason(filt: str, reason: str | None) -> str:
    """DataTrove reason -> sft_ray's name for it (same filter prefix)."""
    if filt == "langid":
        return "langid"
    reason = reason or "dropped"
    prefix = {"gopher_quality": "", "gopher_repetition": "gopher_repetition_", "c4": "c4_", "fineweb": "fineweb_"}[filt]
    return reason if reason.startswith(prefix) and prefix else prefix + reason


def filter_of(reason: str | None) -> str:
    """The filter a reason (ours or DataTrove's, mapped by `their_reason`) belongs to; None = kept."""
    if reason is None:
        return "kept"
    for prefix, name in (("gopher_repetition_", "gopher_repetition"), ("gopher_", "gopher_quality"), ("c4_", "c4"),
                         ("fineweb_", "fineweb")):
        if reason.startswith(prefix):
            return name
    if reason in ("lang_mismatch", "low_lang_score", "langid"):
        return "langid"
    return reason


def agreement(ours: dict, theirs: dict, corpus: Path, normalized: bool = True) -> dict:
    """Equal keep/reject decisions by id, and the classes of unequal ones (our reason, theirs).

    Each disagreeing document is also run through sft_ray's chain without NFC/whitespace
    normalisation (DataTrove has none): `normalisation` counts those that then agree, i.e. the
    ones that only the normalisation separates."""
    ids = sorted(set(ours) | set(theirs))
    missing = [i for i in ids if i not in ours or i not in theirs]
    both = [i for i in ids if i in ours and i in theirs]
    same = [i for i in both if (ours[i] is None) == (theirs[i] is None)]
    classes: dict[tuple, list[str]] = defaultdict(list)
    for i in both:
        if (ours[i] is None) != (theirs[i] is None):
            classes[(ours[i] or "kept", theirs[i] or "kept")].append(i)
    same_filter = sum(filter_of(ours[i]) == filter_of(theirs[i]) for i in both if ours[i] and theirs[i])
    rejected_both = sum(1 for i in both if ours[i] and theirs[i])
    wanted = {i for v in classes.values() for i in v}
    text = {}
    for f in sorted(corpus.glob("*.jsonl")):
        for line in open(f, encoding="utf-8"):
            d = json.loads(line)
            if d["id"] in wanted:
                text[d["id"]] = d["text"]
    raw = decide(text, corpus, normalize=False) if normalized and text else {}
    return {
        "docs": len(both),
        "missing": len(missing),
        "equal": len(same),
        "agreement": len(same) / max(len(both), 1),
        "kept_ours": sum(ours[i] is None for i in both),
        "kept_theirs": sum(theirs[i] is None for i in both),
        "rejected_both_same_filter": f"{same_filter}/{rejected_both}",
        "classes": sorted(
            ({"ours": k[0], "theirs": k[1], "count": len(v), "example": v[0], "text": text.get(v[0], "")[:160],
              "normalisation": sum(i in raw and (raw[i] is None) == (theirs[i] is None) for i in v), "ids": v}
             for k, v in classes.items()),
            key=lambda c: -c["count"],
        ),
    }


def decide(texts: dict[str, str], corpus: Path, normalize: bool) -> dict[str, str | None]:
    """sft_ray's clean chain (in this process) on a few documents: id -> reason or None."""
    import pyarrow as pa

    from sft_ray import schema
    from sft_ray.clean import clean_batch

    ids = sorted(texts)
    cols = {f.name: [None] * len(ids) for f in schema.RECORD_SCHEMA}
    cols.update({schema.ID: ids, schema.TEXT: [texts[i] for i in ids], schema.SOURCE: ["bench"] * len(ids), schema.KIND: ["web"] * len(ids),
                 schema.LANG: ["en"] * len(ids)})
    out = clean_batch(pa.Table.from_pydict(cols, schema=schema.RECORD_SCHEMA), bench_config(corpus, Path("/unused"), normalize).clean)
    return dict(zip(out[schema.ID].to_pylist(), out[schema.REJECT_REASON].to_pylist()))
