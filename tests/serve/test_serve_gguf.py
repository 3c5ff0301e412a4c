"""A GGUF export served by llama.cpp behind the same OpenAI-compatible app, answered by the official
`openai` client (non-streamed, streamed, concurrent), and the engine alone against llama.cpp's own
greedy decoding.

llama-cpp-python is optional (PyPI serves it as source only; it compiles llama.cpp): the module
skips, saying so, where it is not importable.
"""

from __future__ import annotations

import threading

import pytest

llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (source-only on PyPI; optional)")

TIMEOUT = 180


@pytest.fixture(scope="module")
def gguf_file(tmp_path_factory):
    """tiny-llama exported as the fine-tune exports it: markers in its chat template, then Q8_0 GGUF."""
    from sft_ray.models import load_model, load_tokenizer, resolve_model
    from sft_ray.train.chat_template import add_generation_markers
    from sft_ray.train.gguf_export import export_gguf

    path = resolve_model("tiny-llama")
    tok = load_tokenizer(path)
    assert add_generation_markers(tok)  # as train/loop.py does before exporting
    out = tmp_path_factory.mktemp("gguf") / "tiny.q8_0.gguf"
    export_gguf(load_model(path).eval(), tok, str(out), "q8_0")
    return str(out), tok


def test_engine_matches_llama_cpp_and_the_hf_template(gguf_file):
    from sft_ray.serve.engine import GenJob
    from sft_ray.serve.llama_engine import LlamaCppEngine

    path, tok = gguf_file
    eng = LlamaCppEngine(path, threads=1)
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of Spain?"}]
    # The template stored in the file, markers stripped, renders exactly as transformers renders it.
    assert eng.encode(msgs) == list(tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"])
    job = GenJob(tuple(eng.encode(msgs)), max_tokens=8, temperature=0)
    [res] = eng.generate([job])
    want = []
    for t in eng.llm.generate(list(job.prompt_ids), top_k=1, temp=0.0, reset=True):  # llama.cpp greedy, by hand
        if t in eng.eos_ids or len(want) == 8:
            break
        want.append(t)
    assert res.completion_tokens == len(want) and res.text == eng.llm.detokenize(want).decode("utf-8", errors="replace")
    assert res.finish_reason == ("length" if len(want) == 8 else "stop") and res.prompt_tokens == len(job.prompt_ids)
    parts = list(eng.stream(job))
    assert "".join(p for p in parts if isinstance(p, str)) == res.text and parts[-1] == res
    cancel = threading.Event()
    cancel.set()
    assert list(eng.stream(GenJob(job.prompt_ids, max_tokens=8, temperature=0), cancel))[-1].completion_tokens == 0


def test_missing_gguf_fails_before_deploying(tmp_path):
    from sft_ray.serve.app import run_serve
    from sft_ray.serve.config import ServeConfig

    with pytest.raises(FileNotFoundError, match="GGUF file"):
        run_serve(ServeConfig(model=str(tmp_path / "nope.gguf")))


@pytest.mark.slow
def test_openai_client_against_the_gguf_app(ray_local, gguf_file):
    import socket

    import openai
    from ray import serve

    from sft_ray.serve.app import run_serve
    from sft_ray.serve.config import ServeConfig

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path, _ = gguf_file
    run_serve(ServeConfig(model=path, app_name="gguf", route_prefix="/", port=port, num_cpus=0.5, max_tokens_limit=32,
                          default_max_tokens=8, max_prompt_tokens=256, max_batch_size=4, batch_wait_timeout_s=0.2))
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", timeout=TIMEOUT, max_retries=0)
        assert [m.id for m in client.models.list().data] == ["tiny.q8_0.gguf"]
        msgs = [{"role": "user", "content": "Capital of Spain?"}]
        c = client.chat.completions.create(model="tiny.q8_0.gguf", messages=msgs, max_tokens=8, temperature=0)
        ch = c.choices[0]
        assert ch.message.role == "assistant" and ch.finish_reason in ("stop", "length")
        assert c.usage.completion_tokens <= 8 and c.usage.prompt_tokens > 0
        chunks = list(client.chat.completions.create(model="tiny.q8_0.gguf", messages=msgs, max_tokens=8, temperature=0,
                                                     stream=True))
        assert "".join(x.choices[0].delta.content or "" for x in chunks if x.choices) == ch.message.content  # same greedy answer
        done = []
        threads = [threading.Thread(target=lambda i=i: done.append(client.chat.completions.create(
            model="tiny.q8_0.gguf", messages=[{"role": "user", "content": f"Count to {i}."}], max_tokens=4, temperature=0)))
            for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT)
        assert len(done) == 3 and all(d.usage.completion_tokens <= 4 for d in done)
        with pytest.raises(openai.BadRequestError, match="max_tokens"):
            client.chat.completions.create(model="tiny.q8_0.gguf", messages=msgs, max_tokens=1000)
    finally:
        serve.delete("gguf")
