"""report/report.json (the numbers) and report/report.html (the same, for people).

Bars are inline SVG so the page needs no JavaScript or network to render.
"""

from __future__ import annotations

import html
import json

from sft_ray import storage


def _bar_rows(items: dict[str, int], total: int) -> str:
    out = []
    for name, n in items.items():
        w = 0 if total == 0 else max(1, int(300 * n / total))
        out.append(
            f"<tr><td>{html.escape(str(name))}</td><td class=n>{n:,}</td>"
            f"<td><svg width=310 height=12><rect width={w} height=12 fill='#4a7'/></svg></td></tr>"
        )
    return "\n".join(out)


def render_html(report: dict) -> str:
    c = report["counts"]
    sections = [
        f"<h1>sft_ray build report</h1><p>output: <code>{html.escape(report['output'])}</code> · "
        f"input {c['input']:,} · kept {c['kept']:,} · rejected {c['rejected']:,}</p>",
        "<h2>Per source</h2><table><tr><th>source</th><th>input</th><th>kept</th><th>rejected</th></tr>"
        + "".join(
            f"<tr><td>{html.escape(s)}</td><td class=n>{v['input']:,}</td><td class=n>{v['kept']:,}</td><td class=n>{v['rejected']:,}</td></tr>"
            for s, v in c["by_source"].items()
        )
        + "</table>",
    ]
    for stage, reasons in c["by_stage"].items():
        sections.append(f"<h2>Rejected at {html.escape(stage)}</h2><table>{_bar_rows(reasons, c['input'])}</table>")
    pii = c.get("pii_redacted", {}).get("by_type", {})
    if pii:
        sections.append(f"<h2>PII redacted in kept records</h2><table>{_bar_rows(pii, sum(pii.values()))}</table>")
    for src, labels in c.get("labels", {}).items():
        sections.append(f"<h2>Gold labels kept: {html.escape(src)}</h2><table>{_bar_rows(labels, sum(labels.values()))}</table>")
    sft = report.get("sft", {})
    if sft:
        sections.append(
            "<h2>SFT examples</h2><table><tr><th>task</th><th>train</th><th>validation</th><th>removed by SFT dedup</th></tr>"
            + "".join(
                f"<tr><td>{html.escape(t)}</td><td class=n>{v.get('train', 0):,}</td><td class=n>{v.get('validation', 0):,}</td>"
                f"<td class=n>{sum(n for k, n in v.items() if k not in ('train', 'validation')):,}</td></tr>"
                for t, v in sft.get("by_task", {}).items()
            )
            + "</table>"
        )
    if report.get("unreadable_files"):
        sections.append(
            "<h2>Unreadable files</h2><ul>"
            + "".join(f"<li><code>{html.escape(f['file'])}</code>: {html.escape(f['error'])}</li>" for f in report["unreadable_files"])
            + "</ul>"
        )
    for s in report.get("samples", []):
        sections.append(f"<h3>Sample: {html.escape(s['task'])}</h3><pre>{html.escape(json.dumps(s['messages'], indent=1, ensure_ascii=False))}</pre>")
    style = "body{font-family:sans-serif;max-width:60em;margin:2em auto}td.n{text-align:right}td,th{padding:2px 8px}pre{white-space:pre-wrap;background:#f4f4f4;padding:8px}"
    return f"<!doctype html><meta charset=utf-8><title>sft_ray report</title><style>{style}</style>\n" + "\n".join(sections)


def write_report(output: str, report: dict, storage_options: dict | None = None) -> None:
    storage.write_json(storage.join(output, "report", "report.json"), report, storage_options)
    storage.write_text(storage.join(output, "report", "report.html"), render_html(report), storage_options)
