"""The embedded demo: real AG News and Multi30k samples shipped in the package (see data/NOTICE.md).

`demo_config_dict()` is the config every job runs when given no `--config`: build topic
classification, headline and en<->de translation SFT data (with the label stage on and a quarter of
the AG News labels hidden, so a share of the classification targets are the topic labeler's), then
fine-tune SmolLM2-135M-Instruct briefly on CPU. Sized to finish in under 10 minutes on a 2-core machine.
"""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"

AG_NEWS_LABELS = {"1": "World", "2": "Sports", "3": "Business", "4": "Sci/Tech"}


def demo_config_dict(output: str = "runs/demo") -> dict:
    return {
        "output": output,
        "sources": [
            {
                "name": "agnews",
                "kind": "news",
                "path": str(DATA / "ag_news_test_part.csv"),
                "format": "csv",
                "fields": {"label": 0, "title": 1, "text": 2},
                "label_names": AG_NEWS_LABELS,
                "hide_labels": 0.25,  # a quarter of the rows lose their gold label: the topic labeler's predictions take its place
                "langs": {"text": "en"},
                "license": "AG News: non-commercial research and education (sft_ray/demo/data/AG_NEWS_README.txt)",
            },
            {
                "name": "m30k-en-de",
                "kind": "translation",
                "format": "bitext",
                "path": {"src": str(DATA / "multi30k_train_3k.en.gz"), "tgt": str(DATA / "multi30k_train_3k.de.gz")},
                "langs": {"src": "en", "tgt": "de"},
                "license": "Multi30k: non-commercial research and education (sft_ray/demo/data/README.multi30k.md)",
            },
        ],
        # The label stage: topic labels for every news row; rows without a gold label train on the
        # model's label at >= format.min_label_confidence.classification (label_source: model).
        "label": {"enabled": True},
        "train": {
            "model": "smollm2-135m-instruct",
            "num_workers": 2,
            "max_steps": 10,
            "batch_size": 4,
            "max_seq_len": 256,
            "lr": 5e-5,
            "checkpoint_every": 1000,  # final checkpoint only: each holds 1.6 GB of fp32 weights + Adam state
            "eval_max_examples": 32,
            "log_every": 1,
        },
    }
