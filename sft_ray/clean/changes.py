"""What normalisation changed: a per-record step mask and a bounded sample of before/after diffs.

Only normalised text is written, so a reader of curated/ cannot see what the first link of the
clean chain (clean/normalize.py) did to a document. The clean task therefore records, next to the
records, two internal columns that travel with them to the write pass (write.py) and never reach
curated/ or rejects/:

    _norm_steps   int16 bit mask of the steps (STEPS) that changed any text column of the record
    _norm_sample  for a bounded sample of changed records only: JSON {column, steps, diff}, null elsewhere

The sample is bottom-k by the hash of the record id per step and block (report/sample.py's rule), so
the report's examples per step are a uniform, deterministic sample (report/normalization.py merges
them) and the cost is bounded: at most PER_BLOCK x len(STEPS) diffs per block are computed, and a
diff keeps only its changed spans with a little context (`diff_spans`), never a whole page.
"""

from __future__ import annotations

import difflib
import json

import numpy as np
import pyarrow as pa

from sft_ray import schema

# The steps of clean/normalize.py, in the order they run; a record's mask has bit i for STEPS[i].
STEPS = ("mojibake", "markup", "control", "nfc", "whitespace", "boilerplate")
BIT = {s: 1 << i for i, s in enumerate(STEPS)}
STEPS_COLUMN, SAMPLE_COLUMN = "_norm_steps", "_norm_sample"
FIELDS = [pa.field(STEPS_COLUMN, pa.int16()), pa.field(SAMPLE_COLUMN, pa.string())]

PER_BLOCK = 2  # sampled diffs per step and block
CONTEXT = 40  # unchanged characters kept on each side of a change
MAX_SPANS = 4  # changed spans kept per diff
_MAX_DIFF_CHARS = 4000  # longer changed line groups are shown as a plain replacement (no char-level diff)


def steps_of(mask: int) -> list[str]:
    return [s for s in STEPS if mask & BIT[s]]


def with_columns(table: pa.Table, masks: list[int], before: dict[str, list]) -> pa.Table:
    """`table` (already normalised) with the two trace columns: `masks` per row, and the sampled
    diffs of changed rows against `before` (column -> the values before normalisation)."""
    steps = pa.array([m or None for m in masks], pa.int16())
    samples: list[str | None] = [None] * table.num_rows
    if any(masks):
        from sft_ray.report.sample import ranks

        rank = ranks(table[schema.ID])
        m = np.asarray(masks, dtype=np.int64)
        picked: set[int] = set()
        for s in STEPS:
            idx = np.flatnonzero(m & BIT[s])
            picked.update(idx[np.argsort(rank[idx], kind="stable")[:PER_BLOCK]].tolist())
        for i in sorted(picked):
            samples[i] = _sample(i, masks[i], table, before)
    return table.append_column(FIELDS[0], steps).append_column(FIELDS[1], pa.array(samples, pa.string()))


def _sample(i: int, mask: int, table: pa.Table, before: dict[str, list]) -> str:
    """The diff of the first text column row `i` changed (text, then title, then a pair's sides)."""
    for col, values in before.items():
        old, new = values[i], table[col][i].as_py()
        if old is not None and old != new:
            return json.dumps({"column": col, "steps": steps_of(mask), "diff": diff_spans(old, new or "")}, ensure_ascii=False)
    return json.dumps({"column": None, "steps": steps_of(mask), "diff": []})


def diff_spans(before: str, after: str) -> list[list[str]]:
    """[op, text] runs ('=' kept, '-' removed, '+' added) of the change from `before` to `after`,
    with kept runs cut to CONTEXT characters around the changes and at most MAX_SPANS changes.

    Lines first, then characters within each changed group of lines: a character-level
    SequenceMatcher over a whole page is quadratic; over the few changed lines it is cheap."""
    a, b = before.splitlines(keepends=True), after.splitlines(keepends=True)
    runs: list[list[str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        x, y = "".join(a[i1:i2]), "".join(b[j1:j2])
        if op == "equal":
            runs.append(["=", x])
        elif len(x) + len(y) > _MAX_DIFF_CHARS:
            runs += [["-", x[:_MAX_DIFF_CHARS // 2] + "…"]] if x else []
            runs += [["+", y[:_MAX_DIFF_CHARS // 2] + "…"]] if y else []
        else:
            for cop, k1, k2, l1, l2 in difflib.SequenceMatcher(None, x, y, autojunk=False).get_opcodes():
                if cop == "equal":
                    runs.append(["=", x[k1:k2]])
                    continue
                if k2 > k1:
                    runs.append(["-", x[k1:k2]])
                if l2 > l1:
                    runs.append(["+", y[l1:l2]])
    return _trim(_merge(runs))


def _merge(runs: list[list[str]]) -> list[list[str]]:
    out: list[list[str]] = []
    for op, text in runs:
        if out and out[-1][0] == op:
            out[-1][1] += text
        elif text:
            out.append([op, text])
    return out


def _trim(runs: list[list[str]]) -> list[list[str]]:
    out: list[list[str]] = []
    changes = 0
    for k, (op, text) in enumerate(runs):
        if op != "=":
            changes += k == 0 or runs[k - 1][0] == "="
            if changes > MAX_SPANS:
                out.append(["=", " … "])
                break
            out.append([op, text])
            continue
        first, last = k == 0, k == len(runs) - 1
        head = "" if first else text[:CONTEXT]
        tail = "" if last else text[-CONTEXT:]
        if len(text) <= 2 * CONTEXT and not first and not last:
            out.append(["=", text])
        else:
            out.append(["=", head + ("…" if (head or tail) and len(text) > len(head) + len(tail) else "") + tail
                        if len(text) > len(head) + len(tail) else head + tail])
    return [r for r in out if r[1]]
