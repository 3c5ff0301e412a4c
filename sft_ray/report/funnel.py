"""The funnel: records left after each stage, and what each stage removed by reason (from the counts).

Stages run in pipeline order (build.py); a stage not named here (a new one) comes after them, by name.
"""

from __future__ import annotations

STAGE_ORDER = ("ingest", "clean", "dedup", "label")


def funnel(counts: dict, sft: dict | None = None) -> dict:
    """{"records": [{stage, removed, by_reason, remaining}, ...], "sft": [...]}; remaining ends at kept."""
    by_stage = counts.get("by_stage", {})
    stages = [s for s in STAGE_ORDER if s in by_stage] + sorted(s for s in by_stage if s not in STAGE_ORDER)
    left = counts["input"]
    steps = [{"stage": "input", "removed": 0, "by_reason": {}, "remaining": left}]
    for s in stages:
        removed = sum(by_stage[s].values())
        left -= removed
        steps.append({"stage": s, "removed": removed, "by_reason": dict(by_stage[s]), "remaining": left})
    out = {"records": steps}
    if sft and sft.get("generated"):
        removed = sum(sft.get("removed", {}).values())
        out["sft"] = [
            {"stage": "generated", "removed": 0, "by_reason": {}, "remaining": sft["generated"]},
            {"stage": "sft_dedup", "removed": removed, "by_reason": dict(sft.get("removed", {})), "remaining": sft["generated"] - removed},
        ]
    return out
