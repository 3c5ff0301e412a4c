"""Labeler actors: embed each applicable row once, apply one or more fitted heads, add columns.

A Ray Data callable class (docs/ARCHITECTURE.md, principle 3): the model loads once per actor in `__init__`;
the heads (`LinearHead`, a few numpy arrays fitted on the driver) arrive as constructor arguments.
Labelers never drop or reject rows (tag, then select: docs/ARCHITECTURE.md,
principle 2); they only fill `<name>` / `<name>_score` / `<name>_margin` and `label_truncated`. `<name>_score` is the
calibrated probability of `<name>`, or, for a head given a `score_label` (quality: "good"), the
probability of that class; `<name>_margin` is the top probability minus the second (what
`sft-ray label export` ranks by, label/studio.py). Rows already rejected by an
earlier stage, rows of kinds a head is not configured for, and rows without text get nulls.
`select.py` decides on the scores afterwards. One fact is noted, not decided: a row whose text is
one of a head's seed texts gets `<name>_seed` in `label_flags` (`schema.seed_flag`), so the report can
leave the rows a head was fitted on out of its agreement with the records' own gold labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from sft_ray import schema
from sft_ray.label.classifier import LinearHead
from sft_ray.label.embed import MINILM, BaseEmbedder, make_embedder
from sft_ray.label.seed import text_key
from sft_ray.tags import live_mask, set_columns

TOPIC, SENTIMENT, QUALITY = schema.TOPIC, schema.SENTIMENT, schema.QUALITY
LABEL_TRUNCATED, LABEL_FLAGS, LABEL_FIELDS = schema.LABEL_TRUNCATED, schema.LABEL_FLAGS, schema.LABEL_FIELDS


class HeadSpec(NamedTuple):
    """What one labeler applies: its fitted head, the source kinds it labels, and which class's
    probability is its score (None: the predicted label's)."""

    head: LinearHead
    kinds: Sequence[str]
    score_label: str | None = None


def score_column(name: str) -> str:
    return f"{name}_score"


def margin_column(name: str) -> str:
    """`<name>_margin`: top minus second class probability (schema.LABEL_FIELDS)."""
    return f"{name}_margin"


def add_flags(flags: list[str | None], rows, flag: str) -> list[str | None]:
    """`flags` (comma-separated, None for none) with `flag` appended at the indices `rows`."""
    out = list(flags)
    for i in rows:
        out[i] = f"{out[i]},{flag}" if out[i] else flag
    return out


def ensure_label_columns(table: pa.Table) -> pa.Table:
    """Add the label columns (null) where a table lacks them, before the tag columns, in schema order."""
    for f in LABEL_FIELDS:
        if f.name not in table.column_names:
            at = table.schema.get_field_index(schema.REJECT_STAGE)
            table = table.add_column(at if at >= 0 else table.num_columns, f, pa.nulls(table.num_rows, f.type))
    return table


def label_texts(table: pa.Table) -> list[str | None]:
    """What a labeler reads: title and text joined by a newline (as seed sets join title + description)."""
    texts = table[schema.TEXT].to_pylist()
    titles = table[schema.TITLE].to_pylist() if schema.TITLE in table.column_names else [None] * table.num_rows
    return [("\n".join(p for p in (ti, te) if p) or None) if te else None for ti, te in zip(titles, texts)]


class Labeler:
    """Embeds every row at least one head applies to, once, and fills each head's two columns.

    `heads` maps a labeler name (`schema.LABELERS`) to a `HeadSpec` (or a (head, kinds) pair).
    """

    def __init__(self, heads: dict[str, HeadSpec | tuple[LinearHead, Sequence[str]]], *, model: str = MINILM, max_tokens: int = 256,
                 embed_batch_size: int = 64, num_cpus: float = 1.0, num_gpus: float = 0.0, engine: str = "torch",
                 embedder: BaseEmbedder | None = None):
        specs = {name: HeadSpec(*spec) for name, spec in heads.items()}
        for name, spec in specs.items():
            if spec.score_label is not None:
                spec.head.label_index(spec.score_label)  # fail at construction, naming the labels, not per batch
        self.heads = {name: (spec.head, set(spec.kinds)) for name, spec in specs.items()}
        self.score_labels = {name: spec.score_label for name, spec in specs.items()}
        self.embed_batch_size = embed_batch_size
        # `embedder`: reuse a model already loaded in this process (the driver, tests); actors load their own.
        self.embedder = embedder or make_embedder(model, max_tokens, engine=engine, num_threads=max(1, int(num_cpus)),
                                                  device="cuda" if num_gpus > 0 else "cpu")
        # One forward pass serves every head: pool the union of their layers, give each its blocks.
        self.layers = tuple(dict.fromkeys(layer for head, _ in self.heads.values() for layer in head.layers))
        dim = self.embedder.dim
        self.columns = {}
        for name, (head, _) in self.heads.items():
            if head.weight.shape[0] != dim * len(head.layers):
                raise ValueError(f"label.{name}: head expects {head.weight.shape[0]} features, the model gives "
                                 f"{dim} per layer x {len(head.layers)} layers {head.layers}")
            self.columns[name] = np.concatenate([np.arange(dim) + dim * self.layers.index(layer) for layer in head.layers])

    def __call__(self, table: pa.Table) -> pa.Table:
        table = ensure_label_columns(table)
        n = table.num_rows
        texts = label_texts(table)
        live = live_mask(table).to_numpy(zero_copy_only=False) & np.array([t is not None for t in texts], dtype=bool)
        kinds = table[schema.KIND].to_pylist()
        wants = {name: live & np.array([k in ks for k in kinds], dtype=bool) for name, (_, ks) in self.heads.items()}
        todo = np.flatnonzero(np.logical_or.reduce(list(wants.values()))) if wants else np.array([], dtype=np.int64)
        emb, cut = self.embedder.encode([texts[i] for i in todo], self.embed_batch_size, layers=self.layers, return_truncated=True)
        row_of = np.full(n, -1)
        row_of[todo] = np.arange(len(todo))

        columns: dict[str, list] = {}
        truncated: list[bool | None] = [None] * n
        for i in todo:
            truncated[i] = bool(cut[row_of[i]])
        columns[LABEL_TRUNCATED] = truncated
        flags = table[LABEL_FLAGS].to_pylist()
        keys = {i: text_key(texts[i]) for i in todo} if any(h.seed_keys for h, _ in self.heads.values()) else {}
        for name, (head, _) in self.heads.items():
            if head.seed_keys:
                flags = add_flags(flags, [i for i in np.flatnonzero(wants[name]) if keys[i] in head.seed_keys], schema.seed_flag(name))
        columns[LABEL_FLAGS] = flags
        for name, (head, _) in self.heads.items():
            rows = np.flatnonzero(wants[name])
            labels: list[str | None] = [None] * n
            scores: list[float | None] = [None] * n
            margins: list[float | None] = [None] * n
            if len(rows):
                names, probs, margin = head.predict_with_margin(emb[row_of[rows]][:, self.columns[name]], self.score_labels[name])
                for i, lab, p, m in zip(rows, names, probs, margin):
                    labels[i], scores[i], margins[i] = lab, float(p), float(m)
            columns[name], columns[score_column(name)], columns[margin_column(name)] = labels, scores, margins
        return set_columns(table, columns)


class TopicLabeler(Labeler):
    """`topic`, `topic_score` (default seed: AG News World / Sports / Business / Sci/Tech)."""

    def __init__(self, head: LinearHead, kinds: Sequence[str] = ("news", "web", "text"), **embed_options):
        super().__init__({TOPIC: (head, kinds)}, **embed_options)


class SentimentLabeler(Labeler):
    """`sentiment`, `sentiment_score` (e.g. seeded with rt-polarity positive / negative)."""

    def __init__(self, head: LinearHead, kinds: Sequence[str] = ("sentiment",), **embed_options):
        super().__init__({SENTIMENT: (head, kinds)}, **embed_options)


class QualityLabeler(Labeler):
    """`quality` (good / bad), `quality_score` = P(`good_label`) (default seed: main content vs boilerplate)."""

    def __init__(self, head: LinearHead, kinds: Sequence[str] = ("web", "text"), good_label: str = "good", **embed_options):
        super().__init__({QUALITY: HeadSpec(head, kinds, good_label)}, **embed_options)
