"""Hugging Face cards: `README.md` in a build's output (a dataset card) and in `train/model` (a
model card), so data and model explain themselves on the Hub or on disk. The dataset card: YAML metadata (the `configs` that `datasets.load_dataset` reads, licences,
languages), then sources with their licences and counts, the SFT examples per task, how to load
them, and what built them (run id, config hash). Format: https://huggingface.co/docs/hub/datasets-cards.
The model card (https://huggingface.co/docs/hub/model-cards): base model, the data's card,
validation loss and task metrics before and after fine-tuning, the training setup and the data's
licences, and how to load and prompt it.

A split with no rows is left out of `configs`: `datasets` cannot load an empty split.
"""

from __future__ import annotations

import yaml

from sft_ray import __version__
from sft_ray.config import RunConfig


def _languages(cfg: RunConfig) -> list[str]:
    langs: set[str] = set()
    for s in cfg.sources:
        for v in s.langs.values():
            langs.update([v] if isinstance(v, str) else v)
    return sorted(langs)


def licences(cfg: RunConfig) -> dict[str, str]:
    """Source name -> its licence ("not stated" when the config gives none)."""
    return {s.name: s.license or "not stated" for s in cfg.sources}


def dataset_card(cfg: RunConfig, manifest: dict) -> str:
    sft, counts = manifest.get("sft") or {}, manifest["counts"]
    splits = [("train", "sft/train/*.parquet", sft.get("train", 0)), ("validation", "sft/validation/*.parquet", sft.get("validation", 0)),
              ("rejects", "sft/rejects/*.parquet", sum((sft.get("removed") or {}).values()))]
    stated = {s.license for s in cfg.sources if s.license}
    meta = {
        "license": "other",  # per source, below: the Hub's field takes one id, a build mixes sources
        "language": _languages(cfg) or None,
        "task_categories": ["text-generation"],
        "tags": ["sft", "sft_ray", "chat"],
        "configs": [{"config_name": "default", "data_files": [{"split": n, "path": p} for n, p, rows in splits if rows]}],
    }
    out = manifest["output"]
    fp = manifest.get("fingerprint") or {}
    lines = ["---", yaml.safe_dump({k: v for k, v in meta.items() if v is not None}, sort_keys=False).strip(), "---", "",
             f"# SFT data: {out.rstrip('/').rsplit('/', 1)[-1]}", "",
             f"Chat-format supervised fine-tuning examples built by sft_ray {__version__} on {manifest.get('created_at', '?')} "
             f"(run `{manifest.get('run_id', '?')}`, config hash `{(fp.get('config') or '?')[:12]}`, inputs hash "
             f"`{(fp.get('inputs') or '?')[:12]}`). The full resolved config, every input file and the counts per stage "
             "and reason are in `manifest.json`; the data report is `report/report.html`.", "",
             "## Licences", ""]
    lines += [f"- **{name}**: {lic}" for name, lic in licences(cfg).items()]
    if len(stated) < len(cfg.sources):
        lines += ["", "A source without a stated licence: check its terms before you share or train on this data."]
    lines += ["", "The examples are derived from these sources and carry their terms.", "", "## Sources", "",
              "| source | kind | format | records in | kept | rejected |", "|---|---|---|---:|---:|---:|"]
    for s in cfg.sources:
        c = counts["by_source"].get(s.name, {})
        lines.append(f"| {s.name} | {s.kind} | {s.format} | {c.get('input', 0):,} | {c.get('kept', 0):,} | {c.get('rejected', 0):,} |")
    lines += ["", "## SFT examples", "", "| task | train | validation |", "|---|---:|---:|"]
    for task, v in sorted((sft.get("by_task") or {}).items()):
        lines.append(f"| {task} | {v.get('train', 0):,} | {v.get('validation', 0):,} |")
    lines += ["", f"Splits: train {sft.get('train', 0):,}, validation {sft.get('validation', 0):,}; "
              "each example is in the split of the record it was made from (a record's `split` in `curated/`).", "",
              "Columns: `id`, `task`, `messages` (a list of `{role, content}`: system, user, assistant), `source`, "
              "`source_id` (the curated record it came from), `label_source` (where the target came from: gold, human, "
              "model, teacher, augmented) and `label_confidence` (the model's or teacher's probability of it; null for gold "
              "and human).", *_label_sources(sft), "", "## Load", "", "```python", "from datasets import load_dataset", "",
              f'ds = load_dataset("parquet", data_files={{"train": "{out}/sft/train/*.parquet", '
              f'"validation": "{out}/sft/validation/*.parquet"}})',
              "# or, from a folder holding this README: load_dataset(FOLDER)", "```", ""]
    return "\n".join(lines)


def _metrics_rows(ev: dict) -> list[str]:
    base, tuned = ev.get("base") or {}, ev.get("finetuned") or {}
    rows = []
    for key in ("loss", "perplexity"):
        if key in base or key in tuned:
            rows.append(f"| validation {key} | {_num(base.get(key))} | {_num(tuned.get(key))} |")
    for task in sorted(set(base.get("tasks") or {}) | set(tuned.get("tasks") or {})):
        if task == "samples":
            continue
        b, t = (base.get("tasks") or {}).get(task) or {}, (tuned.get("tasks") or {}).get(task) or {}
        for metric in sorted(set(b) | set(t)):
            if metric not in ("n", "skipped"):
                rows.append(f"| {task} {metric} | {_num(b.get(metric))} | {_num(t.get(metric))} |")
    return rows


def _num(x) -> str:
    return f"{x:.4g}" if isinstance(x, (int, float)) else "-"


def model_card(cfg: RunConfig, ev: dict, steps: int, markers: bool) -> str:
    """README.md of `<output>/train/model`."""
    tc = cfg.train
    stated = {s.license for s in cfg.sources if s.license}
    meta = {"library_name": "transformers", "base_model": tc.model if "/" in tc.model and "://" not in tc.model else None,
            "license": "other", "tags": ["sft", "sft_ray", "chat"], "pipeline_tag": "text-generation"}
    lines = ["---", yaml.safe_dump({k: v for k, v in meta.items() if v is not None}, sort_keys=False).strip(), "---", "",
             f"# {tc.model}, fine-tuned by sft_ray", "",
             f"`{tc.model}` fine-tuned for {steps} optimizer steps ({'LoRA, merged' if tc.lora.enabled else 'full'}; "
             f"{tc.num_workers} workers x batch {tc.batch_size} x grad_accum {tc.grad_accum}, lr {tc.lr:g}, max_seq_len "
             f"{tc.max_seq_len}) on the SFT data described in `../../README.md` (its sources, counts and licences), "
             f"built by sft_ray {__version__}. Loss on assistant tokens only ({tc.loss_on}).", "",
             "## Evaluation (validation split of the SFT data)", "", "| metric | base | fine-tuned |", "|---|---:|---:|"]
    lines += _metrics_rows(ev) or ["| (no validation data) | - | - |"]
    lines += ["", "## Licences", "", "The model was trained on data with these terms; the base model's own licence applies too:", ""]
    lines += [f"- **{name}**: {lic}" for name, lic in licences(cfg).items()]
    if len(stated) < len(cfg.sources):
        lines += ["", "A source without a stated licence: check its terms before you use or share this model."]
    lines += ["", "## Use", "", "```python", "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
              'tok = AutoTokenizer.from_pretrained("PATH/train/model")', 'model = AutoModelForCausalLM.from_pretrained("PATH/train/model")',
              'ids = tok.apply_chat_template([{"role": "user", "content": "..."}], add_generation_prompt=True, return_tensors="pt")',
              "print(tok.decode(model.generate(ids, max_new_tokens=64)[0][ids.shape[1]:], skip_special_tokens=True))", "```", "",
              "The chat template " + ("marks assistant turns with `{% generation %}` (TRL `assistant_only_loss=True` works)."
                                      if markers else "has no generation markers.") + " `sft-ray serve` serves this folder.", ""]
    return "\n".join(lines)


def _label_sources(sft: dict) -> list[str]:
    """One line: kept examples per task whose target is not the source's own (model, human, teacher)."""
    parts = [f"{task}: " + ", ".join(f"{src} {n:,}" for src, n in by.items())
             for task, by in sorted((sft.get("label_sources") or {}).items()) if set(by) - {"gold"}]
    lines = ["", "Targets by label source: " + "; ".join(parts) + "."] if parts else []
    noise = [f"{task} {ev['noise']['expected_noise_rate']:.1%} ({ev['noise']['model_examples']:,} model targets, accuracy "
             f"{ev['noise']['accuracy_at_threshold']:.3f} against {ev['noise']['reference']} labels at threshold {ev['threshold']:g})"
             for task, ev in sorted((sft.get("label_eval") or {}).items())
             if (ev.get("noise") or {}).get("reference") and ev["noise"].get("expected_noise_rate") is not None]
    if noise:  # format/evaluate.py: the model targets scored against gold they did not train on
        lines += ["", "Expected label noise (wrong model targets / examples): " + "; ".join(noise) + "."]
    return lines
