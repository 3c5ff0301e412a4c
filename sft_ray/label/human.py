"""Human labels of a run: `<output>/labels/human.jsonl`, one JSON object a line.

    {"id": record id, "labeler": "topic" | "sentiment", "label": class name, "text": the text labelled,
     "source": source name, "annotator": who, "annotated_at": ISO time, "studio_task": Label Studio task id}

Written by `sft-ray label import` (label/studio.py) and read by the next build of the same output
twice: format uses them as targets over model labels (format/labels.py: gold > human > model), and
the label stage adds them to the labeler's seed set before fitting (label/stage.py fit_heads), so a
person's answers also improve the model's labels on the rows nobody looked at. The build never
deletes `labels/` (it is not one of build.OUTPUT_DIRS). A later line for the same (labeler, id)
replaces an earlier one: a re-import after relabelling wins.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sft_ray import storage

HUMAN_LABELS = "labels/human.jsonl"
REQUIRED = ("id", "labeler", "label", "text")


@dataclass
class HumanLabels:
    rows: list[dict] = field(default_factory=list)  # the file's rows, later duplicates removed, file order

    @property
    def by_labeler(self) -> dict[str, dict[str, str]]:
        """labeler -> {record id: label}: what format/labels.py reads."""
        out: dict[str, dict[str, str]] = {}
        for r in self.rows:
            out.setdefault(r["labeler"], {})[r["id"]] = r["label"]
        return out

    def seed_rows(self, labeler: str) -> list[tuple[str, str]]:
        """(text, label) pairs to add to `labeler`'s seed set."""
        return [(r["text"], r["label"]) for r in self.rows if r["labeler"] == labeler]

    def __len__(self) -> int:
        return len(self.rows)


def parse_lines(text: str, where: str) -> list[dict]:
    """Rows of a human.jsonl text; a malformed line is an error naming it (labels are never dropped silently)."""
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{where}:{n}: not JSON ({e})") from e
        missing = [k for k in REQUIRED if not isinstance(row.get(k), str) or not row[k]]
        if missing:
            raise ValueError(f"{where}:{n}: needs non-empty string field(s) {missing}")
        rows.append(row)
    return rows


def latest(rows: list[dict]) -> list[dict]:
    """One row per (labeler, id): the last one."""
    last = {(r["labeler"], r["id"]): i for i, r in enumerate(rows)}
    return [r for i, r in enumerate(rows) if last[(r["labeler"], r["id"])] == i]


def read_human_labels(output: str, storage_options: dict | None = None) -> HumanLabels:
    """The run's human labels; empty when it has none."""
    url = storage.join(output, HUMAN_LABELS)
    if not storage.exists(url, storage_options):
        return HumanLabels()
    return HumanLabels(latest(parse_lines(storage.read_text(url, storage_options), url)))


def append_human_labels(output: str, rows: list[dict], storage_options: dict | None = None) -> tuple[str, int]:
    """Add `rows` to the run's human labels (rewrites the file: object stores cannot append). Returns
    (url, rows now held)."""
    url = storage.join(output, HUMAN_LABELS)
    old = parse_lines(storage.read_text(url, storage_options), url) if storage.exists(url, storage_options) else []
    rows = latest(old + rows)
    storage.write_text(url, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), storage_options)
    return url, len(rows)


def extend_seed(seed, pairs: list[tuple[str, str]], where: str):
    """`seed` (label/seed.py SeedSet) plus human-labelled (text, label) pairs, positioned
    `labels/human.jsonl:<n>`. A label outside the seed's classes is an error: the head cannot learn a
    class it has no other examples of, and the example would offer classes that do not include it."""
    import dataclasses

    import numpy as np

    if not pairs:
        return seed
    unknown = sorted({label for _, label in pairs} - set(seed.label_names))
    if unknown:
        raise ValueError(f"{where}: human label(s) {unknown} are not classes of the seed set {seed.label_names} ({HUMAN_LABELS})")
    return dataclasses.replace(
        seed,
        texts=seed.texts + [t for t, _ in pairs],
        labels=np.concatenate([seed.labels, np.array([seed.label_names.index(lab) for _, lab in pairs], dtype=np.int64)]),
        positions=seed.positions + [f"{HUMAN_LABELS}:{i + 1}" for i in range(len(pairs))],
    )


def human_labels_input(output: str, storage_options: dict | None = None) -> dict | None:
    """The human labels file as one more build input (ingest.describe_inputs shape), or None when
    there is none: a new import then makes a finished build differ from its inputs (rebuild.py), so
    the next build says so instead of skipping as already complete."""
    import hashlib

    url = storage.join(output, HUMAN_LABELS)
    if not storage.exists(url, storage_options):
        return None
    text = storage.read_text(url, storage_options)
    return {"source": HUMAN_LABELS, "files": [{"path": url, "bytes": len(text.encode()), "version": hashlib.sha1(text.encode()).hexdigest()[:16]}]}
