"""A GGUF export served by llama.cpp (llama-cpp-python) behind the calls `ChatEngine` offers.

`sft-ray serve model.q8_0.gguf` runs the quantized exports of sft_ray/train/gguf_export.py on CPU
with llama.cpp's kernels (benchmarks/results/export_formats.md: 3-4x transformers' fp32 tokens/s at
a fraction of the memory), behind the same OpenAI-compatible app (serve/app.py). The chat template
is the one stored in the file (`tokenizer.chat_template`), rendered with llama-cpp-python's Jinja
formatter, so the prompt is the one the model was trained on.

One llama.cpp context per replica answers one request at a time: `generate` runs a batch's jobs in
turn (llama.cpp's own batching would need one sequence per slot; a replica is small, so scale with
`num_replicas`). llama-cpp-python is an optional dependency: PyPI serves it as source only and it
compiles llama.cpp (README, "Deploying small").
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Iterator

from sft_ray.serve.engine import GenJob, GenResult, _cut_at_stop

log = logging.getLogger("sft_ray")


def is_gguf(model: str) -> bool:
    return model.lower().endswith(".gguf")


def local_gguf(model: str, storage_options: dict[str, Any] | None = None) -> str:
    """A local path of the GGUF file `model` (local path or any fsspec URL, downloaded once per node
    into the sft_ray cache). FileNotFoundError names what is missing."""
    if "://" not in model or model.startswith("file://"):
        path = os.path.expanduser(model.removeprefix("file://"))
        if not os.path.isfile(path):
            raise FileNotFoundError(f"serve: GGUF file {model!r} does not exist")
        return path
    import hashlib

    from sft_ray.models import cache_dir
    from sft_ray.storage import get_fs

    fs, remote = get_fs(model, storage_options)
    if not fs.isfile(remote):
        raise FileNotFoundError(f"serve: GGUF file {model} does not exist")
    dest = os.path.join(str(cache_dir()), "gguf", hashlib.sha1(model.encode()).hexdigest()[:16], os.path.basename(remote))
    if not os.path.isfile(dest):
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        tmp = f"{dest}.tmp-{os.getpid()}"
        fs.get(remote, tmp)
        os.replace(tmp, dest)  # a whole file or none: two replicas on one node may both fetch it
    return dest


class LlamaCppEngine:
    """A GGUF file in llama.cpp with batched (in turn) and streamed chat generation."""

    def __init__(self, model: str, *, storage_options: dict[str, Any] | None = None, threads: int | None = None,
                 n_ctx: int = 0):
        try:
            from llama_cpp import Llama
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        except ImportError as e:
            raise RuntimeError("serving a .gguf needs llama-cpp-python (pip install llama-cpp-python; it compiles "
                               "llama.cpp, see README 'Deploying small')") from e
        self.path = local_gguf(model, storage_options)
        # n_ctx 0: the context length the file declares (the model's max_position_embeddings).
        self.llm = Llama(model_path=self.path, n_ctx=n_ctx, n_threads=threads, verbose=False)
        self.device = "cpu (llama.cpp)"
        self.max_positions = self.llm.n_ctx()
        meta = self.llm.metadata
        from sft_ray.train.chat_template import strip_generation_markers

        template = strip_generation_markers(meta.get("tokenizer.chat_template"))
        if not template:
            raise ValueError(f"serve: {model} has no tokenizer.chat_template: export it with sft_ray (train.export_gguf)")
        text = lambda key: self.llm.detokenize([int(meta[key])], special=True).decode() if key in meta else ""  # noqa: E731
        self._format = Jinja2ChatFormatter(template, eos_token=text("tokenizer.ggml.eos_token_id"),
                                           bos_token=text("tokenizer.ggml.bos_token_id"))
        # End of an answer: the file's eos, plus the end-of-turn token when the template has one (ChatML).
        eos = {self.llm.token_eos()}
        for marker in ("<|im_end|>", "<|eot_id|>", "<end_of_turn>"):
            ids = self.llm.tokenize(marker.encode(), add_bos=False, special=True)
            if len(ids) == 1 and marker in template:
                eos.add(ids[0])
        self.eos_ids = sorted(eos)
        self._lock = threading.Lock()  # one llama.cpp context: one generation at a time

    def encode(self, messages: list[dict]) -> list[int]:
        """The file's chat template, ending with the assistant prompt, as token ids."""
        prompt = self._format(messages=messages).prompt
        return self.llm.tokenize(prompt.encode(), add_bos=False, special=True)

    def _tokens(self, job: GenJob, cancel: threading.Event) -> Iterator[int]:
        """New token ids of `job` until eos, max_tokens or `cancel` (eos not yielded)."""
        if job.seed is not None:
            self.llm.set_seed(job.seed)
        greedy = job.temperature == 0
        gen = self.llm.generate(list(job.prompt_ids), top_k=1 if greedy else 0, top_p=1.0 if greedy else float(job.top_p),
                                min_p=0.0, temp=0.0 if greedy else float(job.temperature), repeat_penalty=1.0, reset=True)
        for n, t in enumerate(gen):
            if n >= job.max_tokens or cancel.is_set() or t in self.eos_ids:
                return
            yield t

    def _text(self, ids: list[int]) -> str:
        return self.llm.detokenize(ids).decode("utf-8", errors="replace")

    def generate(self, jobs: list[GenJob]) -> list[GenResult]:
        """Answer `jobs` in turn; results in the same order."""
        out = []
        for job in jobs:
            with self._lock:
                ids = list(self._tokens(job, threading.Event()))
            finish = "stop" if len(ids) < job.max_tokens else "length"
            text, stopped = _cut_at_stop(self._text(ids), job.stop)
            out.append(GenResult(text, "stop" if stopped else finish, len(job.prompt_ids), len(ids)))
        return out

    def stream(self, job: GenJob, cancel: threading.Event | None = None) -> Iterator[str | GenResult]:
        """Yield text deltas, then one GenResult; setting `cancel` stops at the next token."""
        cancel = cancel or threading.Event()
        ids: list[int] = []
        sent = ""
        hold = max((len(s) for s in job.stop), default=1) - 1  # a stop string may straddle tokens
        stopped = False
        with self._lock:
            for t in self._tokens(job, cancel):
                ids.append(t)
                text, stopped = _cut_at_stop(self._text(ids), job.stop)
                if stopped:
                    break
                safe = len(text) - hold  # hold back a possible stop-string prefix and a half-decoded character
                while safe > len(sent) and text[safe - 1] == "\ufffd":
                    safe -= 1
                if safe > len(sent):
                    yield text[len(sent):safe]
                    sent = text[:safe]
        text, stopped = _cut_at_stop(self._text(ids), job.stop)
        if len(text) > len(sent):
            yield text[len(sent):]
        finish = "stop" if stopped or len(ids) < job.max_tokens else "length"
        yield GenResult(text, finish, len(job.prompt_ids), len(ids))
