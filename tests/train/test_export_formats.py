"""Smaller exports of the fine-tuned model: half-precision HF folders, checkpoints turned into HF
folders, GGUF (f16 / Q8_0) read back with gguf.GGUFReader and transformers' GGUF loader."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sft_ray.config.train import TrainConfig
from sft_ray.models import DEFAULT_TINY, load_model, load_tokenizer, tiny_llama_dir
from sft_ray.train.export import checkpoint_to_hf, export_dtypes, export_model
from sft_ray.train.gguf_export import _permute, export_gguf
from sft_ray.train.parallel import add_lora

PROMPT = "The quick brown fox jumps over the lazy dog"


@pytest.fixture(scope="module")
def tiny():
    path = str(tiny_llama_dir(DEFAULT_TINY, 0))
    return load_model(path), load_tokenizer(path)


def _logits(model, tok):
    with torch.no_grad():
        return model(tok(PROMPT, return_tensors="pt")["input_ids"]).logits.float()


def test_half_precision_folders_load_with_from_pretrained(tiny, tmp_path):
    from transformers import AutoModelForCausalLM

    model, tok = tiny
    export_model(model, tok, str(tmp_path / "model"))
    urls = export_dtypes(model, tok, str(tmp_path), ["fp32", "bf16", "f16", "bf16"])
    assert urls == [str(tmp_path / "model-bf16"), str(tmp_path / "model-f16")]
    ref = _logits(model, tok)
    for name, dtype in (("bf16", torch.bfloat16), ("f16", torch.float16)):
        folder = tmp_path / f"model-{name}"
        loaded = AutoModelForCausalLM.from_pretrained(folder)  # the folder's own dtype
        assert next(loaded.parameters()).dtype == dtype
        size = sum(f.stat().st_size for f in folder.glob("*.safetensors"))
        assert size < 0.55 * (tmp_path / "model" / "model.safetensors").stat().st_size
        assert (_logits(loaded, tok) - ref).abs().max() < 0.05
    assert next(model.parameters()).dtype == torch.float32  # the casts were copies


@pytest.mark.parametrize("lora", [False, True])
def test_checkpoint_becomes_a_from_pretrained_folder(tiny, tmp_path, lora):
    from transformers import AutoModelForCausalLM

    _, tok = tiny
    tc = TrainConfig(model="tiny-llama", lora={"enabled": lora})
    trained = load_model(str(tiny_llama_dir(DEFAULT_TINY, 0)))
    if lora:
        trained = add_lora(trained, tc.lora)
    torch.manual_seed(1)
    with torch.no_grad():  # "training": move the weights a checkpoint holds (LoRA: only the adapters)
        for p in trained.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    state = {n: p.detach().clone() for n, p in trained.named_parameters() if p.requires_grad or not lora}
    ckpt = tmp_path / "step_000010"
    ckpt.mkdir()
    torch.save(state, ckpt / "model.pt")
    (ckpt / "state.json").write_text(json.dumps({"step": 10, "config": {"train": tc.model_dump()}}))
    expect = _logits(trained.merge_and_unload() if lora else trained, tok)

    out = checkpoint_to_hf(str(ckpt), str(tmp_path / "hf"), dtype="bf16")
    loaded = AutoModelForCausalLM.from_pretrained(out)
    assert next(loaded.parameters()).dtype == torch.bfloat16
    assert not any("lora" in n for n, _ in loaded.named_parameters())
    assert (_logits(loaded, tok) - expect).abs().max() < 0.05
    with pytest.raises(FileNotFoundError, match="not a training checkpoint"):
        checkpoint_to_hf(str(tmp_path), str(tmp_path / "x"))
    from sft_ray.cli import main  # the same through `sft-ray export`

    assert main(["export", str(ckpt), str(tmp_path / "hf16"), "--dtype", "f16"]) == 0
    assert next(AutoModelForCausalLM.from_pretrained(str(tmp_path / "hf16")).parameters()).dtype == torch.float16
    if not lora:
        with pytest.raises(ValueError, match="needs a LoRA run"):
            checkpoint_to_hf(str(ckpt), str(tmp_path / "ad"), adapter=True)
        return
    from peft import PeftModel  # the adapter alone, from the same checkpoint

    assert main(["export", str(ckpt), str(tmp_path / "ad"), "--adapter"]) == 0
    assert not (tmp_path / "ad" / "model.safetensors").exists() and (tmp_path / "ad" / "adapter_config.json").exists()
    on_base = PeftModel.from_pretrained(load_model(str(tiny_llama_dir(DEFAULT_TINY, 0))), str(tmp_path / "ad")).eval()
    assert (_logits(on_base, tok) - expect).abs().max() < 1e-4


def test_permute_matches_llama_cpp_rotary_layout():
    # Head of 4 rows (2 rotary pairs): HF rows [x0, x1 | y0, y1] (rotate-half) -> GGML [x0, y0, x1, y1].
    w = np.arange(8, dtype=np.float32).reshape(8, 1)
    assert _permute(w, 2).ravel().tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


@pytest.mark.parametrize("qtype,tol", [("f16", 1e-3), ("q8_0", 0.02)])
def test_gguf_export_reads_back_and_loads(tiny, tmp_path, qtype, tol):
    import gguf
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tok = tiny
    path = tmp_path / f"model.{qtype}.gguf"
    export_gguf(model, tok, str(path), qtype)
    r = gguf.GGUFReader(str(path))
    field = lambda k: r.fields[k].contents()  # noqa: E731
    cfg = model.config
    assert field("general.architecture") == "llama" and field("llama.block_count") == cfg.num_hidden_layers
    assert field("llama.attention.head_count_kv") == cfg.num_key_value_heads
    assert field("tokenizer.ggml.model") == "gpt2" and field("tokenizer.ggml.pre") == "smollm"
    assert field("tokenizer.ggml.eos_token_id") == tok.eos_token_id and "im_start" in field("tokenizer.chat_template")
    tensors = {t.name: t for t in r.tensors}
    assert "output.weight" not in tensors  # tied: llama.cpp reuses token_embd
    assert len(tensors) == 2 + 9 * cfg.num_hidden_layers  # token_embd, output_norm; 9 per block
    want = "F16" if qtype == "f16" else "Q8_0"
    assert tensors["blk.0.ffn_down.weight"].tensor_type.name == want and tensors["blk.0.attn_norm.weight"].tensor_type.name == "F32"
    down = gguf.quants.dequantize(tensors["blk.1.ffn_down.weight"].data, tensors["blk.1.ffn_down.weight"].tensor_type)
    ref = model.model.layers[1].mlp.down_proj.weight.detach().numpy()
    assert down.shape == ref.shape and np.abs(down - ref).max() < tol * np.abs(ref).max() * 5
    q = gguf.quants.dequantize(tensors["blk.0.attn_q.weight"].data, tensors["blk.0.attn_q.weight"].tensor_type)
    q_ref = _permute(model.model.layers[0].self_attn.q_proj.weight.detach().numpy(), cfg.num_attention_heads)
    assert np.abs(q - q_ref).max() < tol * np.abs(q_ref).max() * 5

    # transformers' GGUF loader (it undoes the rotary permutation) answers like the original.
    loaded = AutoModelForCausalLM.from_pretrained(str(tmp_path), gguf_file=path.name, dtype=torch.float32)
    ref_logits = _logits(model, tok)
    assert (_logits(loaded, tok) - ref_logits).abs().max() < tol * ref_logits.abs().max() * 10
    gtok = AutoTokenizer.from_pretrained(str(tmp_path), gguf_file=path.name)
    text = "Hello <|im_start|>user\n12345 world!"
    assert gtok(text)["input_ids"] == tok(text)["input_ids"]
    # Weights only (the tokenizer's 49k tokens and merges are ~3 MB of metadata): 2 bytes a value, Q8_0 34 per 32.
    fp32_bytes = 4 * sum(p.numel() for p in model.parameters())
    assert sum(int(t.n_bytes) for t in r.tensors) < (0.51 if qtype == "f16" else 0.28) * fp32_bytes


def test_low_bit_tensor_types_follow_llama_cpp():
    # src/llama-quant.cpp: 1-D and norms F32; output (or tied token_embd) above 4 bits; odd rows F16.
    from sft_ray.train.gguf_export import tensor_type

    t = lambda *a: tensor_type(*a).name  # noqa: E731
    assert t("blk.0.attn_norm.weight", (64,), "q4_0", True) == "F32"
    assert t("blk.0.ffn_down.weight", (64, 128), "q4_0", True) == "Q4_0"
    assert t("blk.0.ffn_down.weight", (64, 128), "q5_0", True) == "Q5_0"
    assert t("token_embd.weight", (49152, 64), "q4_0", True) == "Q8_0"  # tied: it is also the output
    assert t("token_embd.weight", (49152, 64), "q4_0", False) == "Q4_0"
    assert t("output.weight", (49152, 64), "q4_0", False) == "Q8_0"
    assert t("blk.0.ffn_down.weight", (64, 100), "q4_0", True) == "F16"  # rows not whole 32-value blocks
    assert t("blk.0.ffn_down.weight", (64, 128), "f16", True) == "F16"


# Measured on the tiny random model (SmolLM2 tokenizer, hidden 64), PROMPT, max |logit| error over
# max |logit|: Q5_0 0.034, Q4_0 0.081; greedy tokens equal to fp32's over 24 new tokens: Q5_0 24/24,
# Q4_0 18/24. A random model's logits are nearly flat, so a 4-bit rounding flips near-ties that a trained
# model's would not (SmolLM2-135M: benchmarks/results/export_formats.md). Bounds: ~2x the measurement.
@pytest.mark.parametrize("qtype,rel,greedy", [("q5_0", 0.07, 0.9), ("q4_0", 0.16, 0.6)])
def test_low_bit_gguf_reads_back_and_answers_like_fp32(tiny, tmp_path, qtype, rel, greedy):
    import gguf
    from transformers import AutoModelForCausalLM

    model, tok = tiny
    path = tmp_path / f"model.{qtype}.gguf"
    export_gguf(model, tok, str(path), qtype)
    r = gguf.GGUFReader(str(path))
    assert r.fields["general.file_type"].contents() == int(getattr(gguf.LlamaFileType, f"MOSTLY_{qtype.upper()}"))
    types = {t.name: t.tensor_type.name for t in r.tensors}
    assert types["token_embd.weight"] == "Q8_0" and types["output_norm.weight"] == "F32"
    body = {n: k for n, k in types.items() if n.startswith("blk.") and not n.endswith("_norm.weight")}
    assert set(body.values()) == {qtype.upper()}
    # 4-bit: 18 bytes per 32 values (2-byte scale + 16 bytes of nibbles); 5-bit: 22 (ggml-common.h block_q4_0 / q5_0).
    per_block = {"q4_0": 18, "q5_0": 22}[qtype]
    for t in r.tensors:
        if t.name in body:
            assert int(t.n_bytes) == int(t.n_elements) // 32 * per_block

    loaded = AutoModelForCausalLM.from_pretrained(str(tmp_path), gguf_file=path.name, dtype=torch.float32)
    ref = _logits(model, tok)
    assert (_logits(loaded, tok) - ref).abs().max() < rel * ref.abs().max()
    ids = tok(PROMPT, return_tensors="pt")["input_ids"]
    want = model.generate(ids, max_new_tokens=24, do_sample=False)[0, ids.shape[1]:]
    got = loaded.generate(ids, max_new_tokens=24, do_sample=False)[0, ids.shape[1]:]
    assert (want == got).float().mean() >= greedy


def test_lora_adapter_exports_alone_and_loads_with_peft(tiny, tmp_path):
    from peft import PeftModel
    from transformers import AutoTokenizer

    from sft_ray.train.export import export_adapter

    _, tok = tiny
    path = str(tiny_llama_dir(DEFAULT_TINY, 0))
    trained = add_lora(load_model(path), TrainConfig(model="tiny-llama", lora={"enabled": True, "r": 4, "alpha": 8}).lora)
    torch.manual_seed(2)
    with torch.no_grad():
        for p in trained.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    expect = _logits(trained.eval(), tok)  # eval: no LoRA dropout
    url = export_adapter(trained, tok, str(tmp_path / "adapter"))
    names = {p.name for p in (tmp_path / "adapter").iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= names
    assert not any(n.startswith("model") for n in names)  # the adapter only, not the base weights
    adapter_bytes = (tmp_path / "adapter" / "adapter_model.safetensors").stat().st_size
    assert adapter_bytes < 0.1 * 4 * sum(p.numel() for p in trained.parameters())

    loaded = PeftModel.from_pretrained(load_model(path), url)
    assert (_logits(loaded, tok) - expect).abs().max() < 1e-5
    assert (_logits(loaded.merge_and_unload(), tok) - expect).abs().max() < 1e-4
    assert "{% generation %}" in AutoTokenizer.from_pretrained(url).chat_template  # the training template
    with pytest.raises(TypeError, match="needs a PEFT model"):
        export_adapter(load_model(path), tok, str(tmp_path / "x"))
