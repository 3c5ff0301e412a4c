"""report/report.json (the numbers) and report/report.html (the same, for people, with plots).

The page is one self-contained file: plots are PNGs inlined as data URIs (plots.py), no external
URL; every string that came from data is HTML-escaped. Its one script (browse.py, embedded) only
sorts and filters the sample table's existing rows: it writes no markup, so data never becomes code.
"""

from __future__ import annotations

import html
import logging

from sft_ray import storage
from sft_ray.report import normalization, plots
from sft_ray.report.browse import BROWSE_JS
from sft_ray.report.filters import filter_scores
from sft_ray.report.funnel import funnel
from sft_ray.report.quality import label_quality
from sft_ray.report.sample import PERCENTILES
from sft_ray.report.targets import label_targets

log = logging.getLogger("sft_ray")

STYLE = (
    "body{font-family:sans-serif;max-width:64em;margin:2em auto;padding:0 1em;color:#222}"
    "td.n{text-align:right}td,th{padding:2px 8px;text-align:left;vertical-align:top}"
    "table{border-collapse:collapse;margin:.5em 0}tr:nth-child(even){background:#f6f6f6}"
    "pre{white-space:pre-wrap;background:#f4f4f4;padding:8px}img.plot{max-width:100%;display:block;margin:.5em 0}"
    ".msg{margin:.3em 0;padding:6px;border-left:4px solid #ccc;background:#fafafa;white-space:pre-wrap}"
    ".role{font-weight:bold;font-size:.85em;color:#555}.note{color:#666;font-size:.9em}nav a{margin-right:1em}"
    "table.browse{font-size:.85em}table.browse th{cursor:pointer;background:#eee;position:sticky;top:0}"
    "table.browse td.t{min-width:24em;white-space:normal;font-size:.9em}th[aria-sort=ascending]::after{content:' \\25B2'}"
    "th[aria-sort=descending]::after{content:' \\25BC'}.scores{display:flex;flex-wrap:wrap}.scores img.plot{max-width:49%}"
    "details{margin:.3em 0}div.wide{overflow-x:auto;max-height:40em;overflow-y:auto}"
    "del{background:#fdd;color:#900}ins{background:#dfd;color:#060}.diffhead{font-size:.85em;color:#555;margin-top:.6em}"
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
        reasons = [[s["stage"], k, v] for s in f["sft"] for k, v in s["by_reason"].items()]
        if reasons:
            out += _table(["step", "reason", "removed"], reasons, numeric_from=2)
    return out


def _sources(r: dict) -> str:
    """Per source: the funnel (removed per stage, kept), rejects per stage and reason, kept lengths' percentiles."""
    per = r["funnel"].get("by_source") or {}
    if not per:
        return "<p>No per-source counts (counts without by_source_stage).</p>"
    stacks = {src: {**{s["stage"]: s["removed"] for s in steps[1:]}, "kept": steps[-1]["remaining"]} for src, steps in per.items()}
    out = plots.stacked_hbar(stacks, "Records per source: kept and removed per stage")
    rows = [[src, s["stage"], reason, n] for src, steps in per.items() for s in steps for reason, n in s["by_reason"].items()]
    out += _table(["source", "stage", "reason", "removed"], rows, numeric_from=3)
    pct = ((r.get("data") or {}).get("percentiles") or {}).get("by_source") or {}
    if pct:
        out += "<h3>Kept lengths per source (sampled)</h3>" + _table(
            ["source", "statistic", "sampled", *[f"p{p}" for p in PERCENTILES]],
            [[src, st, v["n"], *[_num(v.get(f"p{p}")) for p in PERCENTILES]] for src, by in pct.items() for st, v in by.items() if v["n"]],
            numeric_from=2)
    sft = r.get("sft") or {}
    if sft.get("by_source"):
        rows = [[src, v.get("train", 0), v.get("validation", 0), sum((sft.get("removed_by_source") or {}).get(src, {}).values())]
                for src, v in sft["by_source"].items()]
        out += "<h3>SFT examples per source</h3>" + _table(["source", "train", "validation", "removed"], rows)
    return out


def _num(v) -> str:
    return "" if v is None else f"{v:,.4g}" if isinstance(v, float) else f"{v:,}"


def _percentiles(d: dict, sft: dict) -> str:
    pct = d.get("percentiles") or {}
    rows = [[st, v["n"], *[_num(v.get(f"p{p}")) for p in PERCENTILES]] for st, v in (pct.get("all") or {}).items()]
    out = (f"<p>Percentiles over a uniform sample of {pct.get('records', 0):,} kept records (the smallest id hashes; "
           "report/sample.py). chars and words are of the written text; the filter statistics are recomputed on it "
           "(see <a href=\"#filters\">Filter scores</a>).</p>")
    out += _table(["statistic", "sampled", *[f"p{p}" for p in PERCENTILES]], rows) if rows else "<p>No kept records.</p>"
    pr = (sft or {}).get("prompt_response") or {}
    if pr.get("sampled"):
        out += f"<h3>SFT examples: prompt and response lengths ({_e(pr['unit'])})</h3>"
        rows = [[task, side, v["n"], *[_num(v.get(f"p{p}")) for p in PERCENTILES]]
                for task, by in [("all", pr["all"]), *pr["by_task"].items()] for side, v in by.items() if v["n"]]
        out += _table(["task", "side", "sampled", *[f"p{p}" for p in PERCENTILES]], rows, numeric_from=2)
    return out


def _lengths(d: dict, sft: dict | None = None) -> str:
    """Length histograms of kept texts, and of SFT examples in tokens (`sft` = the report's `sft`;
    older callers put it under `d["sft"]`)."""
    out = ""
    for what, label in (("chars", "characters"), ("words", "words (a proxy for tokens)")):
        h = d["lengths"][what]
        if not h["columns"]:
            continue
        series = {col: v["counts"] for col, v in h["columns"].items()}
        out += plots.histogram(h["edges"], series, f"Length of kept texts in {label}", f"{label} (log-spaced bins)")
        out += _table(["column", "records", f"mean {what}"], [[c, v["records"], v["mean"]] for c, v in h["columns"].items()])
    out += "<p class=note>Words are whitespace-separated, and segmented (rjieba, MeCab, pythainlp) for Chinese, Japanese and Thai: no subword tokenizer is run.</p>"
    tok = ((sft or d.get("sft") or {}).get("tokens") or {})
    h = tok.get("hist")
    if h and h["columns"]:
        series = {sp: v["counts"] for sp, v in h["columns"].items()}
        out += plots.histogram(h["edges"], series, f"Tokens per SFT example: {tok['unit']}", "tokens (log-spaced bins)")
        out += _table(["split", "examples", "mean tokens"], [[sp, v["records"], v["mean"]] for sp, v in h["columns"].items()])
    pr = (sft or {}).get("prompt_response") or {}
    if pr.get("sampled"):
        series = {side: v["counts"] for side, v in pr["all"].items() if v.get("counts") and side != "example"}
        out += plots.histogram(pr["edges"], series, f"Prompt vs response length of SFT examples ({pr['sampled']:,} sampled)",
                               f"{pr['unit']} (log-spaced bins)")
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
    out += plots.histogram(c["size_edges"], {"clusters": c["size_counts"]}, "Cluster size (survivor + removed; log scale)",
                           "records in cluster", log_y=True)
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
    out = _table(["task", "train", "validation", "removed (task mix, teacher, SFT dedup)"], rows)
    for task, by_split in (sft.get("label_balance") or {}).items():
        labels = list(dict.fromkeys(lb for c in by_split.values() for lb in c))
        out += plots.stacked_hbar({lb: {sp: c.get(lb, 0) for sp, c in by_split.items()} for lb in labels},
                                  f"Label balance of the SFT set: {task} (answers per label and split)", "examples")
        out += _table(["task", "label", *by_split], [[task, lb, *[c.get(lb, 0) for c in by_split.values()]] for lb in labels], 2)
    for s in r.get("samples", []):
        out += f"<h3>Sample: {_e(s['task'])} <code>{_e(s.get('id', ''))}</code></h3>"
        out += "".join(f"<div class=msg><span class=role>{_e(m['role'])}</span>\n{_e(m['content'])}</div>" for m in s["messages"])
    return out


def _unreadable(r: dict) -> str:
    return "<ul>" + "".join(f"<li><code>{_e(f.get('file'))}</code>: {_e(f.get('error'))}</li>" for f in r["unreadable_files"]) + "</ul>"


def _filters(fs: dict) -> str:
    if not fs or not fs.get("filters"):
        return "<p>No sampled records a clean filter judged (clean off, or no records of the kinds the filters apply to).</p>"
    out = ("<p>Each statistic a clean filter compares with a threshold (config <code>clean.&lt;filter&gt;</code>, dashed lines), "
           "recomputed by report/scores.py on the sampled records the filter judged: <b>passed</b> (kept, rejected later, or by a "
           "later filter) and <b>rejected</b> by this filter (any of its reasons). The two are separate uniform samples, drawn as "
           "shares. Kept web texts are written after C4 removed lines and PII redaction, so their statistics can differ a little "
           "from what the filter saw. Normalisation (clean/normalize.py) is not shown as a before/after diff: only the normalised "
           "text is written, and re-running the normaliser on it changes nothing.</p>")
    if fs.get("errors"):
        out += "<p><b>Some statistics could not be computed:</b> " + "; ".join(_e(x) for x in fs["errors"]) + "</p>"
    for flt, v in fs["filters"].items():
        kinds = ", ".join(v["kinds"]) if v["kinds"] else "all kinds"
        out += f"<h3>{_e(flt)}</h3><p class=note>applies to {_e(kinds)}; sampled: {v['passed']:,} passed, {v['rejected']:,} rejected</p><div class=scores>"
        for stat, h in v["stats"].items():
            marks = [(t["value"], f"{t['field']} = {t['value']:g} ({'reject below' if t['side'] == 'min' else 'reject above'})") for t in h["thresholds"]]
            out += plots.score_hist(h["edges"], {"passed": h["passed_counts"], "rejected": h["rejected_counts"]}, marks,
                                    f"{flt}: {stat}", h["what"])
        out += "</div>"
        rows = [[stat, side, p["n"], *[_num(p.get(f"p{q}")) for q in PERCENTILES]]
                for stat, h in v["stats"].items() for side in ("passed", "rejected") for p in [h[f"{side}_percentiles"]] if p["n"]]
        out += f"<details><summary>{_e(flt)}: percentiles</summary>" + _table(
            ["statistic", "group", "sampled", *[f"p{q}" for q in PERCENTILES]], rows, numeric_from=2) + "</details>"
    return out


def _rejects(d: dict) -> str:
    by_stage = d.get("rejects_sample") or {}
    if not by_stage:
        return "<p>No rejected records.</p>"
    out = "<p>Up to three rejected records per stage and reason (the smallest id hashes: the same on every rerun).</p>"
    for stage, reasons in by_stage.items():
        for reason, recs in reasons.items():
            out += f"<h3>{_e(stage)} / {_e(reason)}</h3>"
            for x in recs:
                dup = f" duplicate of <code>{_e(x['duplicate_of'])}</code>" if x.get("duplicate_of") else ""
                out += (f"<div class=msg><span class=role><code>{_e(x.get('id'))}</code> ({_e(x.get('source'))}, {_e(x.get('kind'))}, "
                        f"{x.get('chars', 0):,} chars){dup}</span>\n{_e(x.get('text', ''))}</div>")
    return out


SAMPLE_SCORES = ("non_symbol_words", "alpha_words_ratio", "dup_line_frac", "line_punct_ratio")
_BROWSE_COLUMNS = [("id", "id", False), ("source", "source", False), ("kind", "kind", False), ("state", "state", False),
                   ("text", "text", False), ("lang", "lang", False), ("lang_score", "lang score", True), ("label", "label", False),
                   ("chars", "chars", True), ("words", "words", True), *[(s, s, True) for s in SAMPLE_SCORES]]


def _samples(d: dict) -> str:
    """The sample table: every sampled record (kept, clean rejects, later rejects), sortable and searchable."""
    sample = d.get("sample") or {}
    recs = [(stratum, x) for stratum, xs in (sample.get("records") or {}).items() for x in xs]
    if not recs:
        return "<p>No sampled records.</p>"
    states = sorted({_state(x) for _, x in recs})
    head = "".join(f'<th data-key="{k}"{" data-num" if num else ""}>{_e(label)}</th>' for k, label, num in _BROWSE_COLUMNS)
    body = []
    for _, x in recs:
        cells = []
        for k, _, num in _BROWSE_COLUMNS:
            v = _state(x) if k == "state" else x.get(k) if k in x else (x.get("scores") or {}).get(k)
            if num:
                cells.append(f'<td class=n data-v="{"" if v is None else v}">{_num(v)}</td>')
            else:
                cells.append(f"<td{' class=t' if k == 'text' else ''}>{_e('' if v is None else v)}</td>")
        body.append(f'<tr data-state="{_e(_state(x))}">' + "".join(cells) + "</tr>")
    options = "".join(f'<option value="{_e(s)}">{_e(s)}</option>' for s in states)
    return (f"<p>{len(recs):,} sampled records: up to {sample.get('size', 0):,} per group (kept, rejected by clean, rejected later), "
            f"the smallest id hashes; texts cut to {sample.get('text_chars', 0)} characters. Click a header to sort; type to search "
            "(id, source, label, text, ...). The page's address can say it too: <code>#samples?sort=chars&amp;desc=1&amp;q=word&amp;state=kept</code>.</p>"
            '<p><input id=sample-q type=search placeholder="search" aria-label="search the samples"> '
            f'<select id=sample-state aria-label="state"><option value="">all states</option>{options}</select> '
            '<span id=sample-count></span> shown</p>'
            '<div class=wide><table class=browse id=sample-table data-search=sample-q data-state=sample-state data-count=sample-count>'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>")


def _state(x: dict) -> str:
    return f"{x['reject_stage']}: {x['reject_reason']}" if x.get("reject_reason") else "kept"


def _script() -> str:
    return f"<script id=browse-js>{BROWSE_JS}</script>"


def render_html(report: dict) -> str:
    if "funnel" not in report:
        report = build_report(report)
    c = report["counts"]
    data = report.get("data")
    parts = [_section("summary", "Summary", _summary(report)), _section("funnel", "Funnel: per stage and reason", _funnel(report["funnel"])),
             _section("sources", "Per source", _sources(report))]
    if data:
        parts += [_section("lengths", "Lengths", _lengths(data, report.get("sft"))),
                  _section("percentiles", "Percentiles", _percentiles(data, report.get("sft"))),
                  _section("filters", "Filter scores and thresholds", _filters(report.get("filter_scores", {}))),
                  _section("rejects", "Rejected samples per reason", _rejects(data)),
                  _section("normalization", "Normalisation: what changed", normalization.render(data.get("normalization", {}))),
                  _section("languages", "Languages", _languages(data)),
                  _section("labels", "Label distributions", _labels(data))]
    parts.append(_section("label-quality", "Label quality against gold", _label_quality(report.get("label_quality", {}))))
    if "dedup_clusters" in report:
        parts.append(_section("dedup", "Dedup clusters", _clusters(report["dedup_clusters"])))
    parts.append(_section("pii", "PII", _pii(c)))
    if report.get("sft"):
        parts.append(_section("sft", "SFT examples", _sft(report)))
        sft = report["sft"]
        if sft.get("label_sources") or sft.get("label_eval") or sft.get("teacher_eval"):
            parts.append(_section("label-targets", "Label targets: sources and accuracy against gold", label_targets(sft)))
    if data:
        parts.append(_section("samples", "Sample records (sortable, searchable)", _samples(data)))
    if report.get("unreadable_files"):
        parts.append(_section("unreadable", "Unreadable files", _unreadable(report)))
    nav = "<nav>" + "".join(f'<a href="#{sid}">{_e(title)}</a>' for sid, title, _ in parts) + "</nav>"
    return ("<!doctype html>\n<html lang=en><head><meta charset=utf-8><title>sft_ray build report</title>"
            f"<style>{STYLE}</style></head><body><h1>sft_ray build report</h1>{nav}\n"
            + "\n".join(body for _, _, body in parts) + f"\n{_script()}\n</body></html>\n")


def build_report(report: dict, clean_cfg: dict | None = None) -> dict:
    """The report's numbers: what the build passed in, plus the funnel, label quality and filter
    score distributions derived from it (thresholds from `clean_cfg`, default: the defaults)."""
    out = {**report, "funnel": funnel(report["counts"], report.get("sft")), "label_quality": label_quality(report.get("label", {}))}
    if (report.get("data") or {}).get("sample"):
        out["filter_scores"] = filter_scores(report["data"]["sample"], clean_cfg if clean_cfg is not None else _default_clean())
    return out


def _default_clean() -> dict:
    from sft_ray.config import CleanConfig

    return CleanConfig().model_dump(mode="json")


def clean_config(output: str, report: dict, storage_options: dict | None = None) -> dict:
    """The build's `clean` config: the report's own `config`, else the manifest.json build.py writes
    before the report, else the defaults (said in the report as `thresholds_from`)."""
    if (report.get("config") or {}).get("clean") is not None:
        return report["config"]["clean"]
    path = storage.join(output, "manifest.json")
    try:
        if storage.exists(path, storage_options):
            clean = (storage.read_json(path, storage_options).get("config") or {}).get("clean")
            if clean is not None:
                return clean
    except Exception as e:  # noqa: BLE001 - the thresholds only mark the plots; the defaults are named as such
        log.warning("report: could not read the clean config from %s (%s); filter thresholds are the defaults", path, e)
    return _default_clean()


def write_report(output: str, report: dict, storage_options: dict | None = None) -> dict:
    """Write report.json and report.html under <output>/report/; returns the report's numbers."""
    full = build_report(report, clean_config(output, report, storage_options))
    storage.write_json(storage.join(output, "report", "report.json"), full, storage_options)
    storage.write_text(storage.join(output, "report", "report.html"), render_html(full), storage_options)
    return full
