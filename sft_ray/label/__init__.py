"""Label: model-backed labelers as Ray Data actor pools, then a select step (docs/ARCHITECTURE.md, "Data flow").

    embed.py       all-MiniLM-L6-v2 sentence embeddings (transformers, mean pooling, L2 norm)
    seed.py        labelled seed sets from any fsspec URL, balanced sample
    classifier.py  multinomial logistic regression + temperature scaling, fitted on the driver
    lang.py        lang / lang_score (fastText lid.176) for documents the clean stage's language ID skipped
    labelers.py    Labeler / TopicLabeler / SentimentLabeler / QualityLabeler actors: add <name>/<name>_score columns
    select.py      low confidence -> reject `low_label_confidence`, low quality -> `low_quality`, or flag
    stage.py       label_dataset(ds, cfg): the stage entry
"""

from sft_ray.label.select import select_batch
from sft_ray.label.stage import fit_heads, label_dataset

__all__ = ["fit_heads", "label_dataset", "select_batch"]
