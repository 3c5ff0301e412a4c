"""The label encoder on ONNX Runtime: the same weights exported once per node, fp32 or int8.

Why: the labelers are the slowest curation stage on CPUs (docs/ARCHITECTURE.md, "Scale"); ONNX
Runtime's fused BERT kernels and int8 matrix products cut the cost per document
(benchmarks/labeler_engines.py measures docs/s per CPU and accuracy of each engine side by side).

The export (`torch.onnx.export`, TorchScript exporter) wraps the encoder so the graph itself
mean-pools every hidden state over the attention mask and L2-normalises it: the output is
(batch, num_hidden_layers + 1, dim), indexed like `hidden_states` (0 = embeddings, -1 = last), so
one file serves every `feature_layers` choice and the caller only picks rows of it — the contract of
`Embedder.encode` (sft_ray/label/embed.py). int8 is onnxruntime's dynamic quantization (weights
int8 per output channel, activations quantized per batch at run time; no calibration set needed) of
the weight MatMuls except the feed-forward outputs (`_ffn_outputs`); embeddings, attention scores,
layer norms and pooling stay fp32.

Built at first use into `$SFT_RAY_CACHE/onnx-<key>/` (sft_ray.models._cached: a file lock plus an
atomic rename, so concurrent Ray actors on a node build it once and never read half a file). The
key covers the model's resolved path and weight files (size, mtime), and the torch, onnxruntime and
export-code versions, so a changed model or toolchain never reuses a stale graph.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np

from sft_ray.label.embed import MINILM, BaseEmbedder, model_dir

log = logging.getLogger("sft_ray")

# Bumped when the export below changes, so stale cache entries are not reused.
_EXPORT_VERSION = "2"
FP32, INT8 = "model.onnx", "model-int8.onnx"
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_OPSET = 17


def _key(path: str) -> str:
    import onnxruntime
    import torch

    files = sorted(p for p in Path(path).iterdir() if p.is_file()) if os.path.isdir(path) else []
    src = json.dumps({
        "model": path, "files": [(p.name, p.stat().st_size, int(p.stat().st_mtime)) for p in files],
        "torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "v": _EXPORT_VERSION, "opset": _OPSET,
    }, sort_keys=True)
    return "onnx-" + hashlib.sha256(src.encode()).hexdigest()[:16]


def export_onnx(path: str, out: Path) -> None:
    """Write `out/model.onnx` (fp32, pooled per layer), `out/model-int8.onnx`, tokenizer and config."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    # Eager attention: a plain MatMul/Softmax graph that onnxruntime fuses and quantizes.
    enc_model = AutoModel.from_pretrained(path, attn_implementation="eager").eval()
    sample = tok(["an example sentence", "another, longer example sentence to pad against"], padding=True, return_tensors="pt")
    names = [k for k in _INPUTS if k in sample]

    class Pooled(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, *inputs):
            kw = dict(zip(names, inputs))
            h = torch.stack(self.m(**kw, output_hidden_states=True).hidden_states, 1)  # (b, L+1, s, d)
            mask = kw["attention_mask"][:, None, :, None].to(h.dtype)
            pooled = (h * mask).sum(2) / mask.sum(2).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=-1)

    wrapper = Pooled(enc_model).eval()  # eval() on the wrapper: the exporter restores the wrapper's mode afterwards
    axes = {k: {0: "batch", 1: "seq"} for k in names} | {"pooled": {0: "batch"}}
    with torch.no_grad():
        torch.onnx.export(wrapper, tuple(sample[k] for k in names), str(out / FP32), input_names=names,
                          output_names=["pooled"], dynamic_axes=axes, opset_version=_OPSET, dynamo=False)
    quantize_dynamic(str(out / FP32), str(out / INT8), weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul"], nodes_to_exclude=_ffn_outputs(out / FP32),
                     extra_options={"MatMulConstBOnly": True})
    tok.save_pretrained(out)
    shutil.copy2(Path(path) / "config.json", out / "config.json")  # written last: _cached's "complete" marker


def _ffn_outputs(path: Path) -> list[str]:
    """The feed-forward output projections (BERT naming: `layer.N.output.dense`), kept fp32 in the int8 graph.

    Their inputs (GELU outputs, long-tailed) lose the most to 8-bit activations. Measured on 400 AG
    News rows not in a 200-row seed, topic labels equal to torch's: every MatMul int8 97.3%; weight
    MatMuls only (attention scores and embeddings fp32) 98.0%; also these six fp32 99.5%, at 1.5x
    torch's docs per CPU-second instead of 1.6x (AVX2 CPU without VNNI).
    """
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return [n.name for n in graph.node if n.op_type == "MatMul" and "/output/dense" in n.name and "/attention/" not in n.name]


def onnx_dir(model: str = MINILM) -> Path:
    """The cached ONNX export of `model` (built on first use, once per node)."""
    from sft_ray.models import _cached

    path = model_dir(model)
    if not os.path.isdir(path):
        from huggingface_hub import snapshot_download

        path = snapshot_download(path)
    return _cached(_key(path), lambda tmp: export_onnx(path, tmp))


class OnnxEmbedder(BaseEmbedder):
    """`Embedder` on ONNX Runtime (CPU): same tokenizer, same pooled, normalised layers."""

    return_tensors = "np"

    def __init__(self, model: str = MINILM, max_tokens: int = 256, *, num_threads: int | None = None, quantized: bool = False):
        import onnxruntime as ort
        from transformers import AutoConfig, AutoTokenizer

        folder = onnx_dir(model)
        self.engine = "onnx-int8" if quantized else "onnx"
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.max_tokens = max_tokens
        self.dim = int(AutoConfig.from_pretrained(folder).hidden_size)
        opts = ort.SessionOptions()
        # As for torch (sft_ray/label/embed.py): an actor reserving N CPUs uses N threads, not the node's cores.
        opts.intra_op_num_threads = max(1, int(num_threads)) if num_threads else 0
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3  # errors only: the quantized graph's shape-inference notes are noise in job logs
        self.path = folder / (INT8 if quantized else FP32)
        self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def _pooled(self, enc, layers: tuple[int, ...]) -> np.ndarray:
        feeds = {k: np.asarray(enc[k], dtype=np.int64) for k in self.inputs}
        pooled = self.session.run(None, feeds)[0]  # (b, L+1, dim)
        return np.ascontiguousarray(pooled[:, list(layers), :].reshape(len(pooled), -1), dtype=np.float32)
