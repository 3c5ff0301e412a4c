"""The report's "what normalisation changed" section: records changed per step and source, and
before/after diffs of a bounded sample per step.

The clean task leaves two internal columns on every record (clean/changes.py); the write pass
(write.py) turns them into a few small rows per block here (`block_rows`), and `Normalization` sums
them on the driver: counters, and the `EXAMPLES` records of smallest id hash per step (the same
bottom-k rule as report/sample.py, so the examples are the same on every rerun).
"""

from __future__ import annotations

import html
import json
import unicodedata
from collections import Counter, defaultdict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sft_ray import schema
from sft_ray.clean.changes import BIT, SAMPLE_COLUMN, STEPS, STEPS_COLUMN

EXAMPLES = 3  # diffs per step in the report

WHAT = {
    "mojibake": "mojibake and HTML entities repaired (ftfy)",
    "markup": "HTML tags left in the text removed",
    "control": "control characters, zero-width spaces, BOM and bidi marks",
    "nfc": "Unicode NFC composition",
    "whitespace": "runs of spaces, tabs and blank lines collapsed, lines trimmed, CRLF",
    "boilerplate": "navigation and sharing lines removed (web kinds)",
}


def block_rows(table: pa.Table) -> list[dict]:
    """Per block: (what = norm, source, key = step, n = records changed), (what = norm_records,
    source, n = records) and (what = norm_sample, key = step, n = id hash, json = the diff)."""
    if STEPS_COLUMN not in table.column_names or table.num_rows == 0:
        return []
    sources = table[schema.SOURCE].to_pylist()
    rows = [{"what": "norm_records", "source": s, "n": n} for s, n in Counter(sources).items()]
    masks = pc.fill_null(table[STEPS_COLUMN], 0).to_numpy(zero_copy_only=False).astype(np.int64)
    for step in STEPS:
        hit = np.flatnonzero(masks & BIT[step])
        rows += [{"what": "norm", "source": s, "key": step, "n": n} for s, n in Counter(sources[i] for i in hit.tolist()).items()]
    picked = table.filter(pc.is_valid(table[SAMPLE_COLUMN]))
    if picked.num_rows:
        from sft_ray.report.sample import ranks

        for rank, rid, src, js in zip(ranks(picked[schema.ID]).tolist(), picked[schema.ID].to_pylist(),
                                      picked[schema.SOURCE].to_pylist(), picked[SAMPLE_COLUMN].to_pylist()):
            d = json.loads(js)
            rec = json.dumps({"id": rid, "source": src, **d}, ensure_ascii=False)
            rows += [{"what": "norm_sample", "key": step, "n": rank, "json": rec} for step in d["steps"]]
    return rows


class Normalization:
    """Bounded driver-side state: counters and each step's EXAMPLES smallest-hash diffs."""

    def __init__(self):
        self.records: Counter = Counter()
        self.changed: dict[str, Counter] = defaultdict(Counter)
        self.examples: dict[str, list[tuple[int, str]]] = defaultdict(list)

    def add(self, r: dict) -> bool:
        """Take row `r` if it is one of ours (True), else leave it to the caller (False)."""
        if r["what"] == "norm_records":
            self.records[r["source"]] += r["n"]
        elif r["what"] == "norm":
            self.changed[r["key"]][r["source"]] += r["n"]
        elif r["what"] == "norm_sample":
            ex = self.examples[r["key"]]
            ex.append((r["n"], r["json"]))
            ex.sort()
            del ex[EXAMPLES:]
        else:
            return False
        return True

    def result(self) -> dict:
        total = sum(self.records.values())
        return {
            "records": total, "records_by_source": dict(sorted(self.records.items())),
            "steps": {s: {"what": WHAT[s], "records": sum(self.changed[s].values()),
                          "share": round(sum(self.changed[s].values()) / total, 4) if total else 0.0,
                          "by_source": dict(sorted(self.changed[s].items())),
                          "examples": [json.loads(j) for _, j in self.examples[s]]} for s in STEPS},
        } if total else {}


_VISIBLE = {"\n": "↵\n", "\t": "⇥", "\u00a0": "⍽", "\u200b": "⟨ZWSP⟩", "\ufeff": "⟨BOM⟩", "\r": "⟨CR⟩",
            "\u200e": "⟨LRM⟩", "\u200f": "⟨RLM⟩"}


def _visible(text: str, changed: bool) -> str:
    """HTML of `text`; in removed/added runs, invisible characters are shown by name."""
    if not changed:
        return html.escape(text)
    out, blank = [], not text.strip()  # a run of only spaces shows them: "a·b" would be unreadable in words
    for ch in text:
        if ch in _VISIBLE:
            out.append(_VISIBLE[ch])
        elif ch == " " and blank:
            out.append("·")
        elif ord(ch) < 32 or 0x7f <= ord(ch) < 0xa0 or unicodedata.combining(ch):
            out.append(f"⟨U+{ord(ch):04X}⟩")
        else:
            out.append(ch)
    return html.escape("".join(out))


def diff_html(diff: list[list[str]]) -> str:
    tags = {"=": ("", ""), "-": ("<del>", "</del>"), "+": ("<ins>", "</ins>")}
    return "".join(f"{tags[op][0]}{_visible(text, op != '=')}{tags[op][1]}" for op, text in diff)


def render(norm: dict) -> str:
    """The section's HTML: a table of steps, then each step's example diffs."""
    if not norm:
        return "<p>Normalisation was off, or no record reached it.</p>"
    head = (f"<p>What the first link of the clean chain changed, of {norm['records']:,} input records "
            "(a record counts once per step that changed any of its text columns). Removed text is "
            "<del>struck</del>, added text <ins>underlined</ins>; in changes, a removed or added space shows as ·, a line "
            "break as ↵ and invisible characters by name.</p>")
    rows = "".join(f"<tr><td>{s}</td><td>{html.escape(v['what'])}</td><td class=n>{v['records']:,}</td>"
                   f"<td class=n>{100 * v['share']:.2f}%</td></tr>" for s, v in norm["steps"].items())
    table = f"<table><tr><th>step</th><th>what</th><th>records changed</th><th>share</th></tr>{rows}</table>"
    examples = []
    for s, v in norm["steps"].items():
        for ex in v["examples"]:
            examples.append(f"<div class=diff><div class=diffhead>{s}: {html.escape(ex['id'])} ({html.escape(ex['source'])}, "
                            f"{html.escape(ex.get('column') or '')}; steps: {', '.join(ex['steps'])})</div>"
                            f"<pre>{diff_html(ex['diff'])}</pre></div>")
    return head + table + "<h3>Examples per step</h3>" + ("".join(examples) or "<p>No record was changed.</p>")
