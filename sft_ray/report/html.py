"""report/report.json (the numbers) and report/report.html (the same, for people, with plots).

The page is one self-contained file: plots are PNGs inlined as data URIs (plots.py), no script, no
external URL; every string that came from data is HTML-escaped.
"""

from __future__ import annotations

import html

from sft_ray import storage
from sft_ray.report import plots
from sft_ray.report.funnel import funnel
from sft_ray.report.quality import label_quality

STYLE = (
    "body{font-family:sans-serif;max-width:64em;margin:2em auto;padding:0 1em;color:#222}"
    "td.n{text-align:right}td,th{padding:2px 8px;text-align:left;vertical-align:top}"
    "table{border-collapse:collapse;margin:.5em 0}tr:nth-child(even){background:#f6f6f6}"
    "pre{white-space:pre-wrap;background:#f4f4f4;padding:8px}img.plot{max-width:100%;display:block;margin:.5em 0}"
    ".msg{margin:.3em 0;padding:6px;border-left:4px solid #ccc;background:#fafafa;white-space:pre-wrap}"
    ".role{font-weight:bold;font-size:.85em;color:#555}.note{color:#666;font-size:.9em}nav a{margin-right:1em}"
)


def _e(x) -> str:
    return html.escape(str(x))


def _table(header: list[str], rows: list[list], numeric_from: int = 1) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td class=n>{v:,}</td>" if i >= numeric_from and isinstance(v, int) else f"<td>{_e(v)}</td>"
                         for i, v in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _section(sid: str, title: str, body: str) -> tuple[str, str, str]:
    return sid, title, f'<section id="{sid}"><h2>{_e(title)}</h2>{body}</section>'


def _summary(r: dict) -> str:
    c = r["counts"]
    rows = [[s, v["input"], v["kept"], v["rejected"]] for s, v in c["by_source"].items()]
    warn = "".join(f"<li>{_e(w)}</li>" for w in r.get("warnings", []))
    return (f"<p>output: <code>{_e(r['output'])}</code> · input {c['input']:,} · kept {c['kept']:,} · rejected {c['rejected']:,}</p>"
            + _table(["source", "input", "kept", "rejected"], rows) + (f"<h3>Warnings</h3><ul>{warn}</ul>" if warn else ""))


def _funnel(f: dict) -> str:
    out = plots.hbar({s["stage"]: s["remaining"] for s in f["records"]}, "Records remaining after each stage")
    stacks = {s["stage"]: s["by_reason"] for s in f["records"] if s["by_reason"]}
    if stacks:
        out += plots.stacked_hbar(stacks, "Records removed per stage, by reason")
    rows = [[s["stage"], reason, n] for s in f["records"] for reason, n in s["by_reason"].items()]
    out += _table(["stage", "reason", "removed"], rows, numeric_from=2)
    if f.get("sft"):
        out += "<h3>SFT examples</h3>" + _table(
            ["step", "removed", "remaining"], [[s["stage"], s["removed"], s["remaining"]] for s in f["sft"]])
        if f["sft"][1]["by_reason"]:
            out += _table(["reason", "removed"], [[k, v] for k, v in f["sft"][1]["by_reason"].items()])
    return out


def _lengths(d: dict) -> str:
    out = ""
    for what, label in (("chars", "characters"), ("words", "words (a proxy for tokens)")):
        h = d["lengths"][what]
        if not h["columns"]:
            continue
        series = {col: v["counts"] for col, v in h["columns"].items()}
        out += plots.histogram(h["edges"], series, f"Length of kept texts in {label}", f"{label} (log-spaced bins)")
        out += _table(["column", "records", f"mean {what}"], [[c, v["records"], v["mean"]] for c, v in h["columns"].items()])
    out += "<p class=note>Words are whitespace-separated, and segmented (rjieba, MeCab, pythainlp) for Chinese, Japanese and Thai: no subword tokenizer is run.</p>"
    tok = ((d.get("sft") or {}).get("tokens") or {})
    h = tok.get("hist")
    if h and h["columns"]:
        series = {sp: v["counts"] for sp, v in h["columns"].items()}
        out += plots.histogram(h["edges"], series, f"Tokens per SFT example: {tok['unit']}", "tokens (log-spaced bins)")
        out += _table(["split", "examples", "mean tokens"], [[sp, v["records"], v["mean"]] for sp, v in h["columns"].items()])
    return out


def _languages(d: dict) -> str:
    total: dict[str, int] = {}
    for langs in d["languages"].values():
        for lg, n in langs.items():
            total[lg] = total.get(lg, 0) + n
    if not total:
        return "<p>No kept records.</p>"
    total = dict(sorted(total.items(), key=lambda kv: (-kv[1], kv[0])))
    rows = [[s, lg, n] for s, langs in d["languages"].items() for lg, n in langs.items()]
    return plots.hbar(total, "Kept records per language (pairs: source→target)") + _table(["source", "language", "records"], rows, 2)


def _labels(d: dict) -> str:
    out = ""
    names = {"label": "gold label (from the source)", "topic": "predicted topic", "sentiment": "predicted sentiment",
             "quality": "predicted quality (main content vs boilerplate)"}
    for col, by_source in d["labels"].items():
        for src, counts in by_source.items():
            out += plots.hbar(counts, f"{names.get(col, col)}: {src}")
    for col, by_source in d.get("gold_vs_predicted", {}).items():
        for src, a in by_source.items():
            left_out = (f"{a['seed_rows_left_out']:,} kept records that are seed rows of the head were left out. "
                        if a.get("seed_rows_left_out") else "")
            out += f"<h3>{_e(col)} vs gold label: {_e(src)}</h3>"
            if not a["records"]:
                out += f"<p>No records besides seed rows. {left_out}</p>"
                continue
            out += (f"<p>{a['records']:,} kept records with both, none of them a seed row of the head; agreement "
                    f"{a['accuracy']:.1%}. <span class=note>{left_out}The label names of the source and the head may "
                    "differ.</span></p>")
            out += plots.confusion(a["gold_labels"], a["predicted_labels"], a["confusion"], f"{col} vs gold: {src}")
    return out or "<p>No labels on kept records.</p>"


def _label_quality(q: dict) -> str:
    if not q:
        return "<p>No label head was fitted with held-out predictions (label stage off, or too few seed rows).</p>"
    out = ""
    for name, v in q.items():
        out += (f"<h3>{_e(name)}</h3><p>{_e(v['gold'])}: {v['rows']:,} gold rows, {v['folds']} folds. "
                f"<b>accuracy {v['accuracy']:.3f}</b>, macro F1 {v['macro_f1']:.3f}.</p>")
        out += _table(["class", "precision", "recall", "F1", "support"],
                      [[c, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}", m["support"]] for c, m in v["per_class"].items()])
        if v.get("confusion"):
            out += plots.confusion(v["labels"], v["labels"], v["confusion"], f"{name}: held-out confusion matrix")
    return out


def _clusters(c: dict) -> str:
    if not c or not c.get("clusters"):
        return "<p>No duplicate clusters.</p>"
    out = (f"<p>{c['clusters']:,} clusters; removed: "
           + ", ".join(f"{_e(k)} {v:,}" for k, v in c["removed"].items()) + "</p>")
    out += plots.histogram(c["size_edges"], {"clusters": c["size_counts"]}, "Cluster size (survivor + removed)", "records in cluster")
    for g in c["largest"]:
        surv = g["survivor"]
        out += f"<h3>Cluster of {g['size']:,}: survivor <code>{_e(g['survivor_id'])}</code></h3>"
        if surv:
            out += f"<div class=msg><span class=role>kept ({_e(surv['source'])})</span>\n{_e(surv['text'])}</div>"
        for x in g["removed_examples"]:
            out += f"<div class=msg><span class=role>removed: {_e(x['reason'])} (<code>{_e(x['id'])}</code>)</span>\n{_e(x['text'])}</div>"
    return out


def _pii(c: dict) -> str:
    pii = c.get("pii_redacted", {})
    if not pii.get("by_type"):
        return "<p>No PII placeholders in kept records.</p>"
    rows = [[s, t, n] for s, types in pii.get("by_source", {}).items() for t, n in types.items()]
    return plots.hbar(pii["by_type"], "PII placeholders in kept records, by type", "placeholders") + _table(["source", "type", "placeholders"], rows, 2)


def _sft(r: dict) -> str:
    sft = r.get("sft", {})
    rows = [[t, v.get("train", 0), v.get("validation", 0), sum(n for k, n in v.items() if k not in ("train", "validation"))]
            for t, v in sft.get("by_task", {}).items()]
    out = _table(["task", "train", "validation", "removed by SFT dedup"], rows)
    for s in r.get("samples", []):
        out += f"<h3>Sample: {_e(s['task'])} <code>{_e(s.get('id', ''))}</code></h3>"
        out += "".join(f"<div class=msg><span class=role>{_e(m['role'])}</span>\n{_e(m['content'])}</div>" for m in s["messages"])
    return out


def _unreadable(r: dict) -> str:
    return "<ul>" + "".join(f"<li><code>{_e(f.get('file'))}</code>: {_e(f.get('error'))}</li>" for f in r["unreadable_files"]) + "</ul>"


def render_html(report: dict) -> str:
    if "funnel" not in report:
        report = build_report(report)
    c = report["counts"]
    parts = [_section("summary", "Summary", _summary(report)), _section("funnel", "Funnel: per stage and reason", _funnel(report["funnel"]))]
    data = report.get("data")
    if data:
        parts += [_section("lengths", "Lengths", _lengths(data)), _section("languages", "Languages", _languages(data)),
                  _section("labels", "Label distributions", _labels(data))]
    parts.append(_section("label-quality", "Label quality against gold", _label_quality(report.get("label_quality", {}))))
    if "dedup_clusters" in report:
        parts.append(_section("dedup", "Dedup clusters", _clusters(report["dedup_clusters"])))
    parts.append(_section("pii", "PII", _pii(c)))
    if report.get("sft"):
        parts.append(_section("sft", "SFT examples", _sft(report)))
    if report.get("unreadable_files"):
        parts.append(_section("unreadable", "Unreadable files", _unreadable(report)))
    nav = "<nav>" + "".join(f'<a href="#{sid}">{_e(title)}</a>' for sid, title, _ in parts) + "</nav>"
    return ("<!doctype html>\n<html lang=en><head><meta charset=utf-8><title>sft_ray build report</title>"
            f"<style>{STYLE}</style></head><body><h1>sft_ray build report</h1>{nav}\n"
            + "\n".join(body for _, _, body in parts) + "\n</body></html>\n")


def build_report(report: dict) -> dict:
    """The report's numbers: what the build passed in, plus the funnel and label quality derived from it."""
    return {**report, "funnel": funnel(report["counts"], report.get("sft")), "label_quality": label_quality(report.get("label", {}))}


def write_report(output: str, report: dict, storage_options: dict | None = None) -> dict:
    """Write report.json and report.html under <output>/report/; returns the report's numbers."""
    full = build_report(report)
    storage.write_json(storage.join(output, "report", "report.json"), full, storage_options)
    storage.write_text(storage.join(output, "report", "report.html"), render_html(full), storage_options)
    return full
