"""Teacher backend `transformers`: a Ray Data actor pool that generates with Hugging Face transformers.

The actor (a Ray Data callable class, docs/ARCHITECTURE.md) reads the cache index once; the model
loads once, lazily, on the first request the cache does not hold, so a rerun over cached requests
never loads it. Prompts are rendered with the model's chat template (plus the task's response
prefix), grouped by task, length-sorted, left-padded and generated greedily by default.

Confidence: `score` = exp(mean log-prob of the generated tokens, end-of-sequence token included),
the geometric-mean token probability. It costs nothing extra under greedy decoding;
self-consistency (Wang et al. 2023, arXiv:2203.11171) would need n sampled generations per
prompt, n times the cost of the most expensive stage on CPU.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pyarrow as pa
import ray

from sft_ray.config import TeacherConfig
from sft_ray.pools import model_pool
from sft_ray.synthesize.cache import read_index, with_outputs, write_entries

log = logging.getLogger("sft_ray")


def generate(requests: ray.data.Dataset, cfg: TeacherConfig, cache: str | None, storage_options: dict,
             selector: dict[str, str]) -> ray.data.Dataset:
    """Requests (TEACHER_REQUEST_SCHEMA) -> TEACHER_GENERATED_SCHEMA rows, one actor pool placed by `selector`."""
    return requests.map_batches(
        TeacherGenerator,
        fn_constructor_args=(cfg, cache, storage_options),
        batch_format="pyarrow",
        batch_size=cfg.batch_size,
        udf_modifying_row_count=False,
        **model_pool("teacher", cfg.num_cpus, cfg.num_gpus, cfg.concurrency, selector),
    )


class TeacherGenerator:
    """Ray Data callable class: cached outputs where it has them, generation for the rest.

    Adds `output` (without the response prefix), `score`, `finished`, `cached` and `error` (a
    generate() failure of one micro-batch: its rows become invalid examples; errors are not cached).
    `generated` counts prompts this instance sent to the model (tests use it in-process).
    """

    def __init__(self, cfg: TeacherConfig, cache: str | None, storage_options: dict | None = None):
        self.cfg, self.cache, self.storage_options = cfg, cache, storage_options or {}
        self.index = read_index(cache, self.storage_options) if cache else {}
        self.model = self.tok = None
        self.generated = 0

    def load(self) -> None:
        """Model and tokenizer, once, on the first cache miss."""
        if self.model is not None:
            return
        import torch

        from sft_ray.models import load_model, load_tokenizer, resolve_model

        torch.set_num_threads(max(1, int(self.cfg.num_cpus)))
        path = resolve_model(self.cfg.model)
        self.device = "cuda" if self.cfg.num_gpus > 0 else "cpu"
        self.tok = load_tokenizer(path, self.cfg.trust_remote_code)
        self.tok.padding_side = "left"  # decoder-only: new tokens follow the prompt directly
        self.model = load_model(path, torch.bfloat16 if self.device == "cuda" else None, self.cfg.trust_remote_code)
        self.model.to(self.device).eval()
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) | {self.tok.eos_token_id}
        self.eos_ids.discard(None)
        log.info("teacher: loaded %s on %s", self.cfg.model, self.device)

    def __call__(self, table: pa.Table) -> pa.Table:
        todo: dict[str, list[tuple[str, str]]] = {}  # task -> [(key, prompt)], each key once
        seen = set()
        for k, p, t in zip(*(table[c].to_pylist() for c in ("key", "prompt", "task"))):
            if k not in self.index and k not in seen:
                seen.add(k)
                todo.setdefault(t, []).append((k, p))
        fresh: dict[str, tuple] = {}
        errors: dict[str, str] = {}
        for name, items in todo.items():
            self.load()
            task = self.cfg.tasks[name]
            items.sort(key=lambda kp: len(kp[1]))
            for at in range(0, len(items), self.cfg.generate_batch_size):
                chunk = items[at:at + self.cfg.generate_batch_size]
                try:
                    results = self.generate([p for _, p in chunk], task.max_new_tokens, task.response_prefix)
                except Exception as e:  # noqa: BLE001 - one bad micro-batch must not end the run
                    log.warning("teacher: generate failed for %d prompts: %s: %s", len(chunk), type(e).__name__, e)
                    errors.update({k: f"generation failed: {type(e).__name__}: {e}"[:500] for k, _ in chunk})
                    continue
                fresh.update({k: r for (k, _), r in zip(chunk, results)})
        if fresh and self.cache:
            try:
                write_entries(self.cache, [{"key": k, "output": o, "score": s, "finished": f} for k, (o, s, f) in fresh.items()],
                              self.cfg.model, self.storage_options)
            except Exception as e:  # noqa: BLE001 - a cache that cannot be written costs a rerun's time, not this run
                log.warning("teacher: could not write %d entries to the cache %s: %s: %s", len(fresh), self.cache, type(e).__name__, e)
        self.index.update(fresh)
        return with_outputs(table, self.index, generated=seen, errors=errors)

    def generate(self, prompts: list[str], max_new_tokens: int, prefix: str) -> list[tuple[str, float | None, bool]]:
        """[(text, exp(mean token log-prob), finished)] for one left-padded batch."""
        import torch

        texts = [self.tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True) + prefix
                 for p in prompts]
        enc = self.tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        sampling = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        if not self.cfg.greedy:
            torch.manual_seed(self.cfg.seed)
            sampling = {"do_sample": True, "temperature": self.cfg.temperature, "top_p": self.cfg.top_p, "top_k": None}
        with torch.inference_mode():
            out = self.model.generate(**enc, max_new_tokens=max_new_tokens, return_dict_in_generate=True, output_scores=True,
                                      pad_token_id=self.tok.pad_token_id, eos_token_id=sorted(self.eos_ids), **sampling)
            logp = self.model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True).float().cpu().numpy()
        new = out.sequences[:, enc["input_ids"].shape[1]:].cpu().numpy()
        self.generated += len(prompts)
        results = []
        for tokens, lp in zip(new, logp):
            ends = [i for i, t in enumerate(tokens) if int(t) in self.eos_ids]
            n = ends[0] if ends else len(tokens)
            scored = lp[: n + 1] if ends else lp[:n]  # the end-of-sequence decision counts too
            scored = scored[np.isfinite(scored)]
            score = float(math.exp(scored.mean())) if len(scored) else None
            results.append((self.tok.decode(tokens[:n], skip_special_tokens=True), score, bool(ends)))
        return results
