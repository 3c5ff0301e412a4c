"""matplotlib figures for report.html, returned as `<img>` tags with the PNG inlined (base64).

Figures are built with `matplotlib.figure.Figure` and the Agg canvas directly, never pyplot: no
display, no global figure registry, safe in a worker. The page needs no network and no script.
"""

from __future__ import annotations

import base64
import html
import io

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

COLOR = "#4a7"
DPI = 96


def img_tag(fig: Figure, alt: str) -> str:
    """Render `fig` to PNG and return an `<img>` with it as a data URI."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img class=plot alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _fig(rows: int = 1, width: float = 7.0, height: float | None = None) -> Figure:
    return Figure(figsize=(width, height or max(1.6, 0.3 * rows + 0.9)))


def hbar(items: dict[str, int | float], title: str, xlabel: str = "records") -> str:
    """Horizontal bars, one per item, in the given order (top to bottom), values written at the bar ends."""
    names, vals = [str(k) for k in items], list(items.values())
    fig = _fig(len(names))
    ax = fig.add_subplot()
    y = range(len(names))[::-1]
    ax.barh(list(y), vals, color=COLOR)
    ax.set_yticks(list(y), [n if len(n) <= 40 else n[:37] + "..." for n in names])
    for yi, v in zip(y, vals):
        ax.text(v, yi, f" {v:,}", va="center", fontsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.margins(x=0.15)
    return img_tag(fig, title)


def stacked_hbar(stacks: dict[str, dict[str, int]], title: str, xlabel: str = "records") -> str:
    """One horizontal bar per key of `stacks`, split into its parts (e.g. rejects per stage, by reason)."""
    names = list(stacks)
    parts = list(dict.fromkeys(p for s in stacks.values() for p in s))
    fig = _fig(len(names) + len(parts) // 3)
    ax = fig.add_subplot()
    y = list(range(len(names)))[::-1]
    left = [0] * len(names)
    cmap = matplotlib.colormaps["tab20"]
    for i, p in enumerate(parts):
        vals = [stacks[n].get(p, 0) for n in names]
        ax.barh(y, vals, left=left, color=cmap(i % 20), label=p)
        left = [a + b for a, b in zip(left, vals)]
    ax.set_yticks(y, names)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return img_tag(fig, title)


def histogram(edges: list[int], series: dict[str, list[int]], title: str, xlabel: str, log_y: bool = False) -> str:
    """Counts on fixed log-spaced bins (`edges` left edges, last bin open), grouped bars per series;
    `log_y` for counts spanning orders of magnitude (cluster sizes: most clusters are pairs)."""
    used = [i for i in range(len(edges)) if any(s[i] for s in series.values())]
    lo, hi = (used[0], used[-1] + 1) if used else (0, 1)
    fig = _fig(height=2.8)
    ax = fig.add_subplot()
    x = list(range(lo, hi))
    width = 0.8 / max(1, len(series))
    for k, (name, counts) in enumerate(series.items()):  # grouped bars: one colour per series
        ax.bar([xi - 0.4 + width * (k + 0.5) for xi in x], counts[lo:hi], width=width, label=name)
    if log_y:
        ax.set_yscale("log")
        ax.set_ylim(bottom=0.5)
    else:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    labels = [_bin_label(edges, i) for i in x]
    ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("records")
    ax.set_title(title)
    if len(series) > 1:
        ax.legend(fontsize=8)
    return img_tag(fig, title)


def score_hist(edges: list[float], series: dict[str, list[int]], thresholds: list[tuple[float, str]], title: str, xlabel: str) -> str:
    """Distributions of a statistic on shared linear bins, as shares of each series (the series are
    separate samples), with each threshold drawn as a dashed vertical line and named in the legend."""
    fig = _fig(height=2.4, width=6.0)
    ax = fig.add_subplot()
    colors = {"passed": COLOR, "rejected": "#c44"}
    for name, counts in series.items():
        total = sum(counts)
        if total:
            ax.stairs([c / total for c in counts], edges, fill=True, alpha=0.5, color=colors.get(name), label=f"{name} ({total:,})")
    for value, label in thresholds:  # a threshold far off the values' range is named, not drawn (it would squash the bars)
        if edges[0] <= value <= edges[-1]:
            ax.axvline(value, color="black", linestyle="--", linewidth=1.2, label=label)
        else:
            ax.plot([], [], " ", label=f"{label}: off scale")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("share of sample")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    return img_tag(fig, title)


def confusion(labels_gold: list[str], labels_pred: list[str], matrix: list[list[int]], title: str) -> str:
    """Confusion matrix heatmap: rows gold, columns predicted, each cell's count written in it."""
    fig = _fig(width=1.2 + 0.8 * max(3, len(labels_pred)), height=1.0 + 0.6 * max(3, len(labels_gold)))
    ax = fig.add_subplot()
    im = ax.imshow(matrix, cmap="Greens")
    top = max((v for row in matrix for v in row), default=0)
    for i, row in enumerate(matrix):
        for j, v in enumerate(row):
            ax.text(j, i, f"{v:,}", ha="center", va="center", fontsize=8, color="white" if v > top / 2 else "black")
    ax.set_xticks(range(len(labels_pred)), labels_pred, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels_gold)), labels_gold, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046)
    return img_tag(fig, title)


def reliability(bins: list[dict], title: str) -> str:
    """Reliability diagram: per confidence bin, the rows' accuracy (bars) against the diagonal of
    perfect calibration, and how many rows each bin holds (written above its bar)."""
    fig = _fig(height=2.8, width=4.2)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="#888", linestyle=":", linewidth=1, label="calibrated")
    full = [b for b in bins if b["count"]]
    ax.bar([b["lo"] for b in full], [b["accuracy"] for b in full], width=[b["hi"] - b["lo"] for b in full], align="edge",
           color=COLOR, edgecolor="white", label="accuracy")
    ax.plot([b["confidence"] for b in full], [b["confidence"] for b in full], "o", color="#c44", markersize=3, label="mean confidence")
    for b in full:
        ax.text((b["lo"] + b["hi"]) / 2, min(1.02, b["accuracy"] + 0.02), f"{b['count']:,}", ha="center", fontsize=6)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.08)
    ax.set_xlabel("confidence (score)")
    ax.set_ylabel("accuracy")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6, loc="upper left")
    return img_tag(fig, title)


def coverage_accuracy(curve: list[dict], at: dict | None, title: str) -> str:
    """Accuracy and coverage of the rows at or above each score threshold, the configured threshold
    drawn as a dashed line with its point marked."""
    fig = _fig(height=2.8, width=4.2)
    ax = fig.add_subplot()
    xs = [p["threshold"] for p in curve]
    ax.plot(xs, [p["coverage"] for p in curve], color="#47a", label="coverage")
    ax.plot([p["threshold"] for p in curve if p["accuracy"] is not None], [p["accuracy"] for p in curve if p["accuracy"] is not None],
            color=COLOR, label="accuracy")
    if at is not None:
        ax.axvline(at["threshold"], color="black", linestyle="--", linewidth=1, label=f"threshold {at['threshold']:g}")
        if at["accuracy"] is not None:
            ax.plot([at["threshold"]], [at["accuracy"]], "o", color="#c44", markersize=5)
            ax.annotate(f"acc {at['accuracy']:.3f}\ncov {at['coverage']:.3f}", (at["threshold"], at["accuracy"]), fontsize=7,
                        xytext=(4, -22), textcoords="offset points")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("threshold (score >=)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6, loc="lower left")
    return img_tag(fig, title)


def _bin_label(edges: list[int], i: int) -> str:
    """Integer bin [edges[i], edges[i+1]) as "lo–hi-1" ("5–9"), or "lo+" for the last, open bin."""
    lo = edges[i]
    if i == len(edges) - 1:
        return f"{_short(lo)}+"
    hi = edges[i + 1] - 1
    return _short(lo) if hi == lo else f"{_short(lo)}–{_short(hi) if hi < 1000 else _short(hi + 1)}"


def _short(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 else f"{n // 1000}k" if n >= 1000 else str(n)
