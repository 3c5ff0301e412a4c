"""Every GGUF export type loads in llama.cpp itself (llama-cpp-python) and answers like the model.

llama-cpp-python is not a dependency: PyPI serves it as source only, and building it takes minutes
(CMake, C++). The test skips, saying so, where it is not importable.
"""

from __future__ import annotations

import pytest
import torch

from sft_ray.models import DEFAULT_TINY, load_model, load_tokenizer, tiny_llama_dir
from sft_ray.train.gguf_export import QTYPES, export_gguf

llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (source-only on PyPI; optional)")

TEXT = "The quick brown fox jumps over the lazy dog"
# Greedy tokens equal to transformers' fp32 ones, of 16, measured with llama-cpp-python 0.3.36 on the
# tiny random model: f16, q8_0, q5_0 16; q4_0 10 (a random model's near-flat logits: test_export_formats.py).
MIN_EQUAL = {"f16": 16, "q8_0": 14, "q5_0": 12, "q4_0": 6}


@pytest.fixture(scope="module")
def tiny():
    path = str(tiny_llama_dir(DEFAULT_TINY, 0))
    return load_model(path).eval(), load_tokenizer(path)


@pytest.mark.parametrize("qtype", QTYPES)
def test_gguf_loads_in_llama_cpp_and_answers(tiny, tmp_path, qtype):
    model, tok = tiny
    path = tmp_path / f"model.{qtype}.gguf"
    export_gguf(model, tok, str(path), qtype)
    ids = tok(TEXT)["input_ids"]
    with torch.no_grad():
        want = model.generate(torch.tensor([ids]), max_new_tokens=16, min_new_tokens=16, do_sample=False)[0, len(ids):].tolist()
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=256, n_threads=1, verbose=False)
    try:
        # The same tokenizer: llama.cpp's BPE with the `smollm` pre-tokenizer, special tokens included.
        assert llm.tokenize(TEXT.encode(), add_bos=False, special=True) == ids
        assert llm.tokenize(b"<|im_start|>user\n12345 world!", add_bos=False, special=True) == \
            tok("<|im_start|>user\n12345 world!")["input_ids"]
        got = []
        for t in llm.generate(ids, top_k=1, temp=0.0):  # greedy
            got.append(t)
            if len(got) == 16:
                break
        assert sum(a == b for a, b in zip(got, want)) >= MIN_EQUAL[qtype], (got, want)
        # The chat template travels in the file: llama.cpp formats a chat request with it and answers.
        out = llm.create_chat_completion(messages=[{"role": "user", "content": "Hi"}], max_tokens=4, temperature=0)
        assert out["choices"][0]["message"]["role"] == "assistant" and out["usage"]["completion_tokens"] >= 1
    finally:
        llm.close()
