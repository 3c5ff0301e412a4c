"""sft_ray: raw corpora -> supervised fine-tuning data -> fine-tuned model, on Ray.

`ls sft_ray/` reads as the data flow: ingest -> clean -> dedup -> format -> report, then train.
The job spines are `build.py` (data) and `train/` (model); `cli.py` and `jobs/` run them.
"""

__version__ = "0.1.0"
