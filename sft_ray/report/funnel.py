"""The funnel: records left after each stage, and what each stage removed by reason (from the counts),
overall and per source.

Stages run in pipeline order (build.py); a stage not named here (a new one) comes after them, by name.
Decontamination tags its rejects with stage `dedup` and reason `contaminated` (dedup/contamination.py)
but runs after the split, as its own step (build.py): the funnel shows it as the stage `decontaminate`.
The SFT examples have their own funnel: generated, then removed by reason (task mix, teacher, SFT dedup).
"""

from __future__ import annotations

STAGE_ORDER = ("ingest", "clean", "dedup", "decontaminate", "label")
DECONTAMINATE = ("dedup", "contaminated", "decontaminate")  # (tagged stage, reason, funnel stage)


def _stages(by_stage: dict) -> dict:
    """by_stage with `dedup/contaminated` moved to its own stage."""
    out = {k: dict(v) for k, v in by_stage.items()}
    st, reason, name = DECONTAMINATE
    if reason in out.get(st, {}):
        out[name] = {reason: out[st].pop(reason)}
        if not out[st]:
            del out[st]
    return out


def _steps(total: int, by_stage: dict) -> list[dict]:
    by_stage = _stages(by_stage)
    stages = [s for s in STAGE_ORDER if s in by_stage] + sorted(s for s in by_stage if s not in STAGE_ORDER)
    left = total
    steps = [{"stage": "input", "removed": 0, "by_reason": {}, "remaining": left}]
    for s in stages:
        removed = sum(by_stage[s].values())
        left -= removed
        steps.append({"stage": s, "removed": removed, "by_reason": dict(by_stage[s]), "remaining": left})
    return steps


def funnel(counts: dict, sft: dict | None = None) -> dict:
    """{"records": [{stage, removed, by_reason, remaining}, ...], "by_source": {source: [...]}, "sft": [...]};
    remaining ends at kept."""
    out = {"records": _steps(counts["input"], counts.get("by_stage", {}))}
    per_source = counts.get("by_source_stage")
    if per_source is not None:
        out["by_source"] = {src: _steps(c["input"], per_source.get(src, {})) for src, c in counts.get("by_source", {}).items()}
    if sft and sft.get("generated"):
        out["sft"] = _sft_steps(sft["generated"], sft.get("removed", {}))
    return out


def _sft_steps(generated: int, removed: dict) -> list[dict]:
    """generated -> format (task mix) -> teacher -> sft_dedup: each example reason under the step that
    gives it (dedup/sft.py, EARLIER_STAGES); every other reason is SFT dedup's."""
    from sft_ray.dedup.sft import EARLIER_STAGES, STAGE

    by_step: dict[str, dict] = {}
    for reason, n in removed.items():
        by_step.setdefault(EARLIER_STAGES.get(reason, STAGE), {})[reason] = n
    steps, left = [{"stage": "generated", "removed": 0, "by_reason": {}, "remaining": generated}], generated
    for step in [*dict.fromkeys([*EARLIER_STAGES.values(), STAGE])]:
        if step in by_step or step == STAGE:
            n = sum(by_step.get(step, {}).values())
            left -= n
            steps.append({"stage": step, "removed": n, "by_reason": by_step.get(step, {}), "remaining": left})
    return steps
