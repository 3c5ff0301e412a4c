"""The model side of serving: chat template in, generated assistant text out. No Serve here.

`ChatEngine` loads the tokenizer and model once (docs/ARCHITECTURE.md, principle 3: anything holding a model is a
class that loads it once) and offers two calls:
- `generate(jobs)`: several requests in one left-padded batch (decoder-only models continue from
  the last position, so padding must sit on the left for every row to end at its prompt's end).
  Requests that sample differently (temperature, top_p, seed) go in separate `generate` calls;
  rows in one call share `max_new_tokens` = the largest asked, and each row is cut at its own
  `max_tokens`, first end-of-turn token or stop string afterwards.
- `stream(job)`: one request, yielding text deltas as tokens come out (a generate thread feeding a
  queue); closing the iterator stops the generation, so a client that hangs up frees the replica.

bf16 on GPU (the training dtype there), fp32 on CPU (bf16 matmuls are slow on most CPUs).
Kept free of Ray so the tests and the benchmark's no-Serve peer run the same generation code.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from typing import Any, Iterator

log = logging.getLogger("sft_ray")


@dataclass(frozen=True)
class GenJob:
    """One request, already templated and tokenized."""

    prompt_ids: tuple[int, ...]
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def sampling_key(self) -> tuple:
        """Requests with equal keys can share one `generate` call."""
        greedy = self.temperature == 0
        return (greedy, None if greedy else self.temperature, None if greedy else self.top_p, self.seed)


@dataclass(frozen=True)
class GenResult:
    text: str
    finish_reason: str  # "stop" (end of turn or stop string) | "length" (hit max_tokens)
    prompt_tokens: int
    completion_tokens: int


def _cut_at_stop(text: str, stops: tuple[str, ...]) -> tuple[str, bool]:
    """`text` up to the earliest stop string, and whether one was found."""
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    return (text[:min(hits)], True) if hits else (text, False)


class ChatEngine:
    """Tokenizer + causal LM on one device, with batched and streamed chat generation."""

    def __init__(self, model: str, *, storage_options: dict[str, Any] | None = None, use_gpu: bool = False,
                 torch_threads: int | None = None, trust_remote_code: bool = False):
        import torch

        from sft_ray.models import load_model, load_tokenizer, resolve_model
        from sft_ray.serve.location import model_location

        if torch_threads:
            torch.set_num_threads(torch_threads)
        path = resolve_model(model_location(model, storage_options), storage_options=storage_options)
        self.device = torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")
        if use_gpu and self.device.type != "cuda":
            log.warning("serve: num_gpus > 0 but CUDA is not available here; running on CPU")
        dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        self.tokenizer = load_tokenizer(path, trust_remote_code=trust_remote_code)
        self.tokenizer.padding_side = "left"
        self.model = load_model(path, dtype=dtype, trust_remote_code=trust_remote_code).to(self.device).eval()
        self.path = path
        # End of an answer: the tokenizer's eos plus whatever generation_config lists (SmolLM2's
        # chat turns end with <|im_end|>, which is its eos; other models list several).
        eos = self.model.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        if self.tokenizer.eos_token_id is not None:
            eos.append(self.tokenizer.eos_token_id)
        self.eos_ids = sorted(set(eos))
        self.max_positions = getattr(self.model.config, "max_position_embeddings", None)

    # ------------------------------------------------------------------------------ prompts
    def encode(self, messages: list[dict]) -> list[int]:
        """The model's own chat template, ending with the assistant prompt, as token ids."""
        enc = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                 return_dict=True)
        return list(enc["input_ids"])

    def _sampling_kwargs(self, job: GenJob) -> dict:
        if job.temperature == 0:
            return {"do_sample": False}
        return {"do_sample": True, "temperature": float(job.temperature), "top_p": float(job.top_p), "top_k": 0}

    def _finish(self, job: GenJob, new_ids: list[int]) -> GenResult:
        """Cut one row's new tokens at its eos / max_tokens / stop string."""
        finish = "length"
        for i, t in enumerate(new_ids[:job.max_tokens]):
            if t in self.eos_ids:
                new_ids, finish = new_ids[:i], "stop"
                break
        else:
            new_ids = new_ids[:job.max_tokens]
        text = self.tokenizer.decode(new_ids, skip_special_tokens=True)
        text, stopped = _cut_at_stop(text, job.stop)
        return GenResult(text, "stop" if stopped else finish, len(job.prompt_ids), len(new_ids))

    # ------------------------------------------------------------------------------ batched
    def generate(self, jobs: list[GenJob]) -> list[GenResult]:
        """Answer `jobs` (any mix of settings); results in the same order."""
        import torch

        groups: dict[tuple, list[int]] = {}
        for i, job in enumerate(jobs):
            groups.setdefault(job.sampling_key(), []).append(i)
        results: list[GenResult | None] = [None] * len(jobs)
        for idx in groups.values():
            group = [jobs[i] for i in idx]
            batch = self.tokenizer.pad({"input_ids": [list(j.prompt_ids) for j in group]}, return_tensors="pt")
            batch = {k: v.to(self.device) for k, v in batch.items()}
            if group[0].seed is not None:
                torch.manual_seed(group[0].seed)
            with torch.inference_mode():
                out = self.model.generate(**batch, max_new_tokens=max(j.max_tokens for j in group),
                                          eos_token_id=self.eos_ids, pad_token_id=self.tokenizer.pad_token_id,
                                          **self._sampling_kwargs(group[0]))
            new = out[:, batch["input_ids"].shape[1]:].tolist()
            for i, job, row in zip(idx, group, new):
                results[i] = self._finish(job, row)
        return results  # type: ignore[return-value]

    # ------------------------------------------------------------------------------ streamed
    def stream(self, job: GenJob, cancel: threading.Event | None = None) -> Iterator[str | GenResult]:
        """Yield text deltas, then one GenResult (full text, finish reason, token counts).

        Setting `cancel` (from any thread) stops the generation at its next token.
        """
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        tokens: queue.Queue = queue.Queue()
        cancel = cancel or threading.Event()

        class _Streamer:  # transformers' BaseStreamer protocol: put(ids) per step, end() once
            first = True

            def put(self, value):
                if self.first:  # generate hands over the prompt first
                    self.first = False
                    return
                tokens.put(value.reshape(-1).tolist())

            def end(self):
                tokens.put(None)

        class _Cancelled(StoppingCriteria):
            def __call__(self, input_ids, scores, **kw):
                return torch.full((input_ids.shape[0],), cancel.is_set(), dtype=torch.bool, device=input_ids.device)

        errors: list[BaseException] = []

        def run():
            try:
                ids = torch.tensor([list(job.prompt_ids)], device=self.device)
                if job.seed is not None:
                    torch.manual_seed(job.seed)
                with torch.inference_mode():
                    self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                        max_new_tokens=job.max_tokens, eos_token_id=self.eos_ids,
                                        pad_token_id=self.tokenizer.pad_token_id, streamer=_Streamer(),
                                        stopping_criteria=StoppingCriteriaList([_Cancelled()]),
                                        **self._sampling_kwargs(job))
            except BaseException as e:  # surfaced in the consumer, never lost in the thread
                errors.append(e)
                tokens.put(None)

        thread = threading.Thread(target=run, name="sft-ray-stream", daemon=True)
        thread.start()
        new_ids: list[int] = []
        sent = ""
        hold = max((len(s) for s in job.stop), default=1) - 1  # a stop string may straddle tokens
        finish = "length"
        try:
            while finish == "length":
                step = tokens.get()
                if step is None:
                    break
                for t in step:
                    if t in self.eos_ids:
                        finish = "stop"
                        break
                    new_ids.append(t)
                text, stopped = _cut_at_stop(self.tokenizer.decode(new_ids, skip_special_tokens=True), job.stop)
                if stopped or finish == "stop":
                    finish = "stop"
                    break
                # Hold back a possible stop-string prefix and a half-decoded character (U+FFFD).
                safe = len(text) - hold
                while safe > len(sent) and text[safe - 1] == "\ufffd":
                    safe -= 1
                if safe > len(sent):
                    yield text[len(sent):safe]
                    sent = text[:safe]
            cancel.set()
            if errors:
                raise errors[0]
            text, stopped = _cut_at_stop(self.tokenizer.decode(new_ids, skip_special_tokens=True), job.stop)
            if stopped:
                finish = "stop"
            if len(text) > len(sent):
                yield text[len(sent):]
            yield GenResult(text, finish, len(job.prompt_ids), len(new_ids))
        finally:
            cancel.set()  # the client went away (or we finished): stop generating
            thread.join(timeout=60)
