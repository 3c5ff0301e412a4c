"""Human labeling round trip with Label Studio (https://labelstud.io): export the rows the model is
least sure of as Label Studio tasks, import Label Studio's JSON export as human labels.

    sft-ray label export RUN   -> RUN/labels/studio/tasks.json   tasks, the model's label pre-filled as a prediction
                                  RUN/labels/studio/config.xml   the labeling config (Text + single Choices)
    (create a project with config.xml, import tasks.json, label, Export -> JSON or JSON-MIN)
    sft-ray label import RUN FILE -> RUN/labels/human.jsonl      read by the next build (label/human.py)

Formats are Label Studio's own: a task is {"data": {...}, "predictions": [{"model_version", "score",
"result": [{"from_name", "to_name", "type": "choices", "value": {"choices": [label]}}]}]}
(docs: "Import pre-annotated data"); the JSON export is the list of tasks with their "annotations"
(each with "result" in the same shape, "completed_by", "was_cancelled", "created_at"/"updated_at");
JSON-MIN is one flat object per annotated task, the data fields plus one key per control
(`<labeler>`: the choice).

Which rows: the curated rows the labeler labelled and that have no gold label, none already human-
labelled, the least sure first (active learning by uncertainty sampling, Settles 2009 §3.1), plus a
random audit slice from the rest, so the people also check the confident labels the build trains
on. "Least sure" is the smallest `<labeler>_margin`, the top class probability minus the second
(margin sampling, Settles 2009 §3.1): for more than two classes it finds the rows torn between two
classes, which the top probability alone (least confidence) misses; for two classes the two orders
agree (margin = 2p - 1). A curated/ written before the margin column existed is ranked by
`<labeler>_score` (least confidence) and the result says so (`ranked_by`). Each task's prediction
carries the margin as its `score`: Label Studio's Data Manager sorts tasks by prediction score, so
its order is ours; `data.model_score` stays the probability of the pre-filled label.
"""

from __future__ import annotations

import json
from xml.sax.saxutils import quoteattr

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sft_ray import schema, storage
from sft_ray.label.human import append_human_labels, read_human_labels

STUDIO_DIR = "labels/studio"
TEXT_NAME = "text"  # the Text tag's name: `to_name` of every result
UNCERTAIN, AUDIT = "uncertainty", "audit"


def labeling_config(labeler: str, classes: list[str]) -> str:
    """Label Studio labeling config: the text, one single-choice control named after the labeler."""
    choices = "\n".join(f"    <Choice value={quoteattr(c)}/>" for c in classes)
    return (f"<View>\n  <Header value=\"$source - $selected_by (model: $model_label, p=$model_score)\"/>\n"
            f"  <Text name=\"{TEXT_NAME}\" value=\"$text\"/>\n"
            f"  <Choices name={quoteattr(labeler)} toName=\"{TEXT_NAME}\" choice=\"single\" showInline=\"true\" required=\"true\">\n"
            f"{choices}\n  </Choices>\n</View>\n")


def choose_rows(ids: list[str], scores: np.ndarray, n_uncertain: int, n_audit: int, seed: int) -> list[tuple[int, str]]:
    """(row index, why) for the `n_uncertain` lowest scores (margins, or probabilities) (ties by id: deterministic) and `n_audit`
    rows drawn at random from the others."""
    order = np.lexsort((np.array(ids, dtype=object).astype(str), scores))
    unsure = order[:n_uncertain]
    rest = order[n_uncertain:]
    rng = np.random.default_rng(seed)
    audit = rng.choice(rest, size=min(n_audit, len(rest)), replace=False) if len(rest) else np.array([], dtype=np.int64)
    return [(int(i), UNCERTAIN) for i in unsure] + [(int(i), AUDIT) for i in sorted(audit)]


def _curated(run: str, storage_options: dict | None, labeler: str) -> pa.Table:
    """The columns export reads; `<labeler>_margin` only where curated/ has it (older builds do not)."""
    import pyarrow.dataset as pads

    fs, path = storage.pyarrow_fs(storage.join(run, "curated"), storage_options)
    names = set(pads.dataset(path, filesystem=fs, format="parquet").schema.names)
    cols = [schema.ID, schema.SOURCE, schema.TEXT, schema.TITLE, schema.LABEL, labeler, f"{labeler}_score"]
    return pq.read_table(path, filesystem=fs, columns=cols + [c for c in [f"{labeler}_margin"] if c in names])


def classes_of(run: str, labeler: str, storage_options: dict | None = None) -> list[str]:
    """The labeler's classes, from the finished build's manifest (its head's seed classes)."""
    manifest = storage.read_json(storage.join(run, "manifest.json"), storage_options)
    info = (manifest.get("label") or {}).get(labeler)
    if not info or not info.get("per_class"):
        raise ValueError(f"{run}: the build ran no {labeler} labeler (manifest.json has no label.{labeler}); "
                         f"build with label.enabled=true and label.{labeler}.enabled=true first")
    return list(info["per_class"])


def export_tasks(run: str, labeler: str = schema.TOPIC, n_uncertain: int = 200, n_audit: int = 50, seed: int = 0,
                 storage_options: dict | None = None) -> dict:
    """Write Label Studio tasks + config for `labeler` under RUN/labels/studio/; returns what was written."""
    classes = classes_of(run, labeler, storage_options)
    t = _curated(run, storage_options, labeler)
    done = set(read_human_labels(run, storage_options).by_labeler.get(labeler, {}))
    score = f"{labeler}_score"
    keep = pc.and_(pc.is_valid(t[score]), pc.invert(pc.fill_null(pc.greater(pc.utf8_length(t[schema.LABEL]), 0), False)))
    if done:
        keep = pc.and_(keep, pc.invert(pc.is_in(t[schema.ID], pa.array(sorted(done)))))
    t = t.filter(keep)
    ids = t[schema.ID].to_pylist()
    margin = f"{labeler}_margin"
    # Rows labelled before the margin column existed (null margin) are ranked by their score instead.
    ranked_by = margin if margin in t.column_names and t[margin].null_count == 0 else score
    picked = choose_rows(ids, t[ranked_by].to_numpy(zero_copy_only=False), n_uncertain, n_audit, seed)
    rows = t.to_pylist()
    tasks = []
    for i, why in picked:
        r = rows[i]
        text = "\n".join(p for p in (r[schema.TITLE], r[schema.TEXT]) if p)  # what the labeler read (labelers.label_texts)
        data = {TEXT_NAME: text, "record_id": r[schema.ID], "source": r[schema.SOURCE], "labeler": labeler,
                "selected_by": why, "model_label": r[labeler], "model_score": round(float(r[score]), 4)}
        if ranked_by == margin:
            data["model_margin"] = round(float(r[margin]), 4)
        tasks.append({
            "data": data,
            "predictions": [{"model_version": f"sft_ray-{labeler}", "score": float(r[ranked_by]), "result": [
                {"from_name": labeler, "to_name": TEXT_NAME, "type": "choices", "value": {"choices": [r[labeler]]}}]}],
        })
    out = storage.join(run, STUDIO_DIR)
    storage.write_text(storage.join(out, "tasks.json"), json.dumps(tasks, ensure_ascii=False, indent=1), storage_options)
    storage.write_text(storage.join(out, "config.xml"), labeling_config(labeler, classes), storage_options)
    return {"tasks": storage.join(out, "tasks.json"), "config": storage.join(out, "config.xml"), "candidates": len(rows),
            UNCERTAIN: sum(w == UNCERTAIN for _, w in picked), AUDIT: sum(w == AUDIT for _, w in picked), "ranked_by": ranked_by}


def _annotator(a: dict) -> str | None:
    who = a.get("completed_by")
    if isinstance(who, dict):
        return who.get("email") or (str(who["id"]) if "id" in who else None)
    return None if who is None else str(who)


def parse_export(items: list, labeler: str, classes: list[str] | None = None, where: str = "export") -> tuple[list[dict], int]:
    """Label Studio JSON or JSON-MIN export -> (human.jsonl rows, tasks without a usable annotation).

    JSON: the newest annotation that is not cancelled, with a `choices` result from the `labeler`
    control. A choice outside `classes` is an error naming the task (never a silent drop).
    """
    if not isinstance(items, list):
        raise ValueError(f"{where}: a Label Studio export is a JSON list of tasks, got {type(items).__name__}")
    rows, unlabelled = [], 0
    for n, item in enumerate(items):
        full = "data" in item
        data = item["data"] if full else item
        rid, text = data.get("record_id"), data.get(TEXT_NAME)
        if not rid or not text:
            raise ValueError(f"{where}: task {item.get('id', n)} has no data.record_id/data.text (not exported by `sft-ray label export`?)")
        if full:
            anns = [a for a in item.get("annotations") or [] if not a.get("was_cancelled")]
            anns.sort(key=lambda a: a.get("updated_at") or a.get("created_at") or "")
            choice, ann = None, None
            for a in reversed(anns):
                res = [r for r in a.get("result") or [] if r.get("from_name") == labeler and r.get("type") == "choices"]
                if res and res[0].get("value", {}).get("choices"):
                    choice, ann = res[0]["value"]["choices"][0], a
                    break
            who, when = (_annotator(ann), ann.get("updated_at") or ann.get("created_at")) if ann else (None, None)
        else:
            value = item.get(labeler)
            choice = (value.get("choices") or [None])[0] if isinstance(value, dict) else value[0] if isinstance(value, list) and value else value
            who, when = (str(item["annotator"]) if item.get("annotator") is not None else None), item.get("updated_at") or item.get("created_at")
        if not choice:
            unlabelled += 1
            continue
        if classes is not None and choice not in classes:
            raise ValueError(f"{where}: task {item.get('id', n)} ({rid}) is labelled {choice!r}, not one of {classes}")
        rows.append({"id": rid, "labeler": labeler, "label": choice, "text": text, "source": data.get("source"),
                     "annotator": who, "annotated_at": when, "studio_task": item.get("id")})
    return rows, unlabelled


def import_export(run: str, path: str, labeler: str = schema.TOPIC, storage_options: dict | None = None) -> dict:
    """Read a Label Studio export file into RUN/labels/human.jsonl; returns counts."""
    items = json.loads(storage.read_text(path, storage_options))
    rows, unlabelled = parse_export(items, labeler, classes_of(run, labeler, storage_options), where=path)
    url, held = append_human_labels(run, rows, storage_options)
    return {"file": url, "imported": len(rows), "without_annotation": unlabelled, "held": held}
