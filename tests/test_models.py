"""resolve_model: named models, local dirs, hub ids, object-store dirs; the GGUF conversion cache."""

from __future__ import annotations

import os
import shutil
import time

import pytest
import torch

from sft_ray import models
from sft_ray.models import load_model, load_tokenizer, resolve_model


def _seed_cache_with_tokenizer(cache) -> None:
    """Copy the converted SmolLM2 tokenizer into a fresh cache (skips a ~10 s GGUF read)."""
    src = models.smollm2_tokenizer_dir()
    shutil.copytree(src, cache / src.name)


def test_tiny_llama_is_cached_deterministic_and_loadable(tmp_path, monkeypatch):
    a = resolve_model("tiny-llama")
    assert resolve_model("tiny-llama") == a  # same config, same folder
    assert resolve_model("tiny-llama", seed=1) != a  # the seed is part of the key
    m = load_model(a)
    assert m.config.model_type == "llama" and m.config.num_hidden_layers == 2 and m.config.hidden_size == 64
    tok = load_tokenizer(a)
    assert m.config.vocab_size == len(tok) == 49152
    assert tok.pad_token is not None and tok.chat_template
    # Deterministic weights: a second build into a fresh cache yields the same tensors, whatever
    # the global RNG state.
    _seed_cache_with_tokenizer(tmp_path)
    monkeypatch.setenv("SFT_RAY_CACHE", str(tmp_path))
    torch.manual_seed(123)
    b = resolve_model("tiny-llama")
    assert b != a and b.startswith(str(tmp_path))
    for (k, v), (k2, v2) in zip(m.state_dict().items(), load_model(b).state_dict().items()):
        assert k == k2 and torch.equal(v, v2)


def test_tiny_overrides_change_the_model():
    path = resolve_model("tiny-llama", tiny={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                                              "num_attention_heads": 2, "num_key_value_heads": 1})
    m = load_model(path)
    assert m.config.hidden_size == 32 and m.config.num_hidden_layers == 1


def test_local_dir_and_hub_id_pass_through(tmp_path):
    assert resolve_model(str(tmp_path)) == str(tmp_path)
    assert resolve_model(f"file://{tmp_path}") == str(tmp_path)
    assert resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    with pytest.raises(FileNotFoundError, match="not a directory"):
        resolve_model(str(tmp_path / "missing"))


def test_fsspec_url_is_downloaded_to_cache(tmp_path, monkeypatch):
    # memory:// is a real fsspec filesystem; s3:// goes through the same code (get_fs + find + get_file).
    import fsspec

    src = resolve_model("tiny-llama")
    monkeypatch.setenv("SFT_RAY_CACHE", str(tmp_path / "cache"))
    fs = fsspec.filesystem("memory")
    for name in os.listdir(src):
        fs.put_file(os.path.join(src, name), f"/models/tiny/{name}")
    local = resolve_model("memory://models/tiny")
    assert local.startswith(str(tmp_path / "cache"))
    assert sorted(os.listdir(local)) == sorted(os.listdir(src))
    assert load_model(local).config.hidden_size == 64
    with pytest.raises(FileNotFoundError):
        resolve_model("memory://models/nothing-here")


@pytest.mark.slow
def test_smollm2_gguf_converts_once_and_reloads_fast():
    # The real cache: on a fresh machine this converts (~40 s), later runs reuse it.
    path = resolve_model("smollm2-135m-instruct")
    files = set(os.listdir(path))
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= files
    assert "quantization_config" not in open(os.path.join(path, "config.json")).read()
    mtime = os.path.getmtime(os.path.join(path, "model.safetensors"))
    t = time.time()
    assert resolve_model("smollm2-135m-instruct") == path  # cache hit: no reconversion
    tok = load_tokenizer(path)
    assert time.time() - t < 5
    assert os.path.getmtime(os.path.join(path, "model.safetensors")) == mtime
    assert not [f for f in os.listdir(models.cache_dir()) if f.startswith(".smollm2")]  # no temp folders left
    model = load_model(path)
    assert model.config.model_type == "llama" and sum(p.numel() for p in model.parameters()) > 130e6
    ids = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                  add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    assert "Paris" in tok.decode(out[0][ids["input_ids"].shape[1]:])


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SFT_RAY_CACHE", str(tmp_path))
    assert models.cache_dir() == tmp_path
