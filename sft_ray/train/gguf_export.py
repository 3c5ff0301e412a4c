"""Write a fine-tuned Llama-architecture model as one GGUF file that llama.cpp loads (f16, Q8_0, Q5_0, Q4_0).

Layout as llama.cpp's own converter writes it (convert_hf_to_gguf.py, `LlamaModel`; the shipped
SmolLM2 GGUF, sft_ray/models.py, has the same keys): architecture `llama` with its hyperparameters,
tensor names from `gguf.get_tensor_name_map` (HF `model.layers.N.self_attn.q_proj` ->
`blk.N.attn_q`), q_proj / k_proj rows permuted from the HF rotary layout (rotate-half) to GGML's
interleaved pairs (`LlamaModel.permute`), a tied `lm_head` left out (llama.cpp reuses
`token_embd`), norms and other 1-D tensors kept F32. Which type each 2-D tensor gets follows
llama.cpp's own quantizer (src/llama-quant.cpp, `llama_tensor_get_type_impl`; see `tensor_type`).
Tokenizer: byte-level BPE (`gpt2`) with the
tokens, their types (special added tokens CONTROL), merges, special-token ids and chat template
(`gguf.SpecialVocab`). The pre-tokenizer name tells llama.cpp how to split text before BPE; only
the SmolLM2 tokenizer's (`smollm`) is known here, any other tokenizer is an error rather than a
file that tokenizes differently.

Quantization is `gguf.quants` (numpy, the reference implementation llama.cpp's tests compare to).
It quantizes the 32-value block types (Q8_0, Q5_0/Q5_1, Q4_0/Q4_1) but none of the 256-value
k-quants (Q4_K, Q6_K: dequantize only), so Q4_K/Q5_K files are not offered here.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from typing import Any

import numpy as np

from sft_ray.storage import get_fs, is_local
from sft_ray.train.chat_template import strip_generation_markers

log = logging.getLogger("sft_ray")

QTYPES = ("f16", "q8_0", "q5_0", "q4_0")
"""`train.export_gguf` names; each is the file's main type (llama.cpp's LLAMA_FTYPE_MOSTLY_*)."""

_BLOCK = 32
"""Values per block of Q8_0 / Q5_0 / Q4_0 (ggml-common.h QK8_0 = QK5_0 = QK4_0 = 32)."""


def tensor_type(name: str, shape: tuple[int, ...], qtype: str, tied: bool):
    """The GGML type llama.cpp's quantizer gives tensor `name` of a `qtype` file (src/llama-quant.cpp).

    - 1-D tensors and norms stay F32 (`tensor_allows_quantization`: `ggml_n_dims < 2`, `_norm.weight`).
    - The output matrix, and the token embeddings when they are tied to it (llama.cpp then reads
      the output from `token_embd`), are the most sensitive to rounding and get more bits than the
      rest: `llama_tensor_get_type_impl` gives them Q6_K (Q8_0 when the rows are not a multiple of
      256, as SmolLM2's 576 are) in Q4_0 / Q5_0 files. gguf.quants has no Q6_K quantizer, so
      they are always Q8_0 here: the type llama.cpp itself falls back to (for SmolLM2 the same
      choice; elsewhere ~1.3x Q6_K's bytes for this one matrix).
    - A row that is not a multiple of the 32-value block cannot be quantized: F16, as llama.cpp's
      `tensor_type_fallback` does for 32-block types ("must use F16 due to unusual shape").
    """
    import gguf

    T = gguf.GGMLQuantizationType
    if len(shape) <= 1 or name.endswith("_norm.weight"):
        return T.F32
    if qtype == "f16" or shape[-1] % _BLOCK:
        return T.F16
    if name == "output.weight" or (tied and name == "token_embd.weight"):
        return T.Q8_0
    return {"q8_0": T.Q8_0, "q5_0": T.Q5_0, "q4_0": T.Q4_0}[qtype]


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF rotate-half rows -> GGML interleaved rotary pairs, per head (convert_hf_to_gguf.py, LlamaModel.permute)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _tokenizer_pre(tok_dir: str) -> str:
    """llama.cpp's pre-tokenizer name for this tokenizer: `smollm` when its pre_tokenizer is SmolLM2's."""
    from sft_ray.models import smollm2_tokenizer_dir

    def pre(d) -> Any:
        with open(os.path.join(d, "tokenizer.json"), encoding="utf-8") as f:
            return json.load(f).get("pre_tokenizer")

    if pre(tok_dir) == pre(smollm2_tokenizer_dir()):
        return "smollm"
    raise ValueError("GGUF export: the tokenizer's pre-tokenizer is not SmolLM2's, the only one mapped to a llama.cpp "
                     "name here (tokenizer.ggml.pre); convert with llama.cpp's convert_hf_to_gguf.py instead")


def _vocab(tokenizer, vocab_size: int):
    import gguf

    added = tokenizer.get_added_vocab()
    specials = {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
            continue
        t = by_id[i]
        tokens.append(t)
        types.append(gguf.TokenType.CONTROL if i in specials else
                     gguf.TokenType.USER_DEFINED if t in added else gguf.TokenType.NORMAL)
    return tokens, types


def write_gguf(model, tokenizer, path: str, qtype: str = "q8_0") -> None:
    """Write `model` (a HF LlamaForCausalLM-like module) and `tokenizer` to the local file `path`."""
    import gguf
    import torch

    if qtype not in QTYPES:
        raise ValueError(f"GGUF export type {qtype!r}: expected one of {QTYPES}")
    model = getattr(model, "module", model)
    cfg = model.config
    if cfg.model_type not in ("llama",):
        raise ValueError(f"GGUF export handles Llama-architecture models (SmolLM2, tiny-llama), not {cfg.model_type!r}")
    n_head, n_kv = cfg.num_attention_heads, cfg.num_key_value_heads or cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // n_head
    rope = getattr(cfg, "rope_parameters", None) or {}
    theta = rope.get("rope_theta") or getattr(cfg, "rope_theta", None) or 10000.0
    if rope.get("rope_type", "default") not in ("default", None):
        raise ValueError(f"GGUF export: rope scaling {rope.get('rope_type')!r} is not handled")
    ftype = getattr(gguf.LlamaFileType, f"MOSTLY_{qtype.upper()}")

    w = gguf.GGUFWriter(path, "llama")
    w.add_name(os.path.basename(str(getattr(cfg, "_name_or_path", "") or "model")) or "model")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_rope_freq_base(float(theta))
    w.add_layer_norm_rms_eps(float(cfg.rms_norm_eps))
    w.add_file_type(ftype)
    w.add_vocab_size(cfg.vocab_size)
    w.add_rope_dimension_count(head_dim)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)

    with tempfile.TemporaryDirectory(prefix="sft_ray_tok_") as tok_dir:
        tokenizer.save_pretrained(tok_dir)
        tokens, types = _vocab(tokenizer, cfg.vocab_size)
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre(_tokenizer_pre(tok_dir))
        w.add_token_list(tokens)
        w.add_token_types(types)
        special = gguf.SpecialVocab(tok_dir, load_merges=True, n_vocab=len(tokens))
        special.chat_template = strip_generation_markers(special.chat_template)  # inference templates: no training marks
        special.add_to_gguf(w)

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, cfg.num_hidden_layers)
    tied = bool(getattr(cfg, "tie_word_embeddings", False))
    for hf_name, tensor in model.state_dict().items():
        if tied and hf_name == "lm_head.weight":
            continue
        if hf_name.endswith("rotary_emb.inv_freq"):
            continue
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise ValueError(f"GGUF export: no llama.cpp name for tensor {hf_name!r}")
        data = tensor.detach().to(torch.float32).cpu().numpy()
        if hf_name.endswith("q_proj.weight"):
            data = _permute(data, n_head)
        elif hf_name.endswith("k_proj.weight"):
            data = _permute(data, n_kv)
        kind = tensor_type(name, data.shape, qtype, tied)
        if kind == gguf.GGMLQuantizationType.F32:
            w.add_tensor(name, np.ascontiguousarray(data, dtype=np.float32))
        elif kind == gguf.GGMLQuantizationType.F16:
            w.add_tensor(name, np.ascontiguousarray(data, dtype=np.float16))
        else:
            w.add_tensor(name, gguf.quants.quantize(data, kind), raw_dtype=kind)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def export_gguf(model, tokenizer, url: str, qtype: str = "q8_0", storage_options: dict[str, Any] | None = None) -> str:
    """`write_gguf` to `url` (local: written beside and renamed over; else uploaded whole). Returns `url`."""
    if is_local(url):
        dest = url.removeprefix("file://")
        os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".gguf.", dir=os.path.dirname(os.path.abspath(dest)))
        os.close(fd)
        try:
            write_gguf(model, tokenizer, tmp, qtype)
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return url
    fs, path = get_fs(url, storage_options)
    with tempfile.TemporaryDirectory(prefix="sft_ray_gguf_") as tmp:
        local = os.path.join(tmp, "model.gguf")
        write_gguf(model, tokenizer, local, qtype)
        fs.put_file(local, path)
    return url


