"""The chat app under Ray Serve on a local Ray, answered over loopback HTTP by the official `openai`
client (non-streamed, streamed, concurrent) and by raw `requests` for malformed ones.

Two applications share one Serve instance: tiny-llama at `/`, and a model exported the way a
fine-tune exports it (`sft_ray.train.export.export_model` into `<run>/train/model`), served from
the *run folder* at `/exported`. Every bad request (sent raw with `requests`) must come back 4xx with a message naming the
problem, and the replica must still answer a good request afterwards.
"""

from __future__ import annotations

import json
import socket
import threading

import requests
import pytest

pytestmark = pytest.mark.slow

LIMIT = 48
TIMEOUT = 180  # a loaded 2-core CI machine; tiny-llama answers in well under a second when idle


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(ray_local, tmp_path_factory):
    """Serve on a free loopback port with the tiny app and the exported-run app; shut down after."""
    from ray import serve

    from sft_ray.models import load_model, load_tokenizer, resolve_model
    from sft_ray.serve.app import run_serve
    from sft_ray.serve.config import ServeConfig
    from sft_ray.train.export import export_model

    # The export a fine-tune writes: tiny-llama, saved by the training job's own exporter.
    run = tmp_path_factory.mktemp("serve") / "capitals-run"
    path = resolve_model("tiny-llama")
    export_model(load_model(path), load_tokenizer(path), str(run / "train" / "model"))

    port = _free_port()
    common = {"port": port, "num_cpus": 0.5, "max_tokens_limit": LIMIT, "default_max_tokens": 16,
              "max_prompt_tokens": 256, "max_batch_size": 8, "batch_wait_timeout_s": 0.2}
    run_serve(ServeConfig(model="tiny-llama", app_name="tiny", route_prefix="/", **common))
    run_serve(ServeConfig(model=str(run), app_name="exported", route_prefix="/exported", **common))
    yield {"base": f"http://127.0.0.1:{port}", "run_name": run.name}
    serve.shutdown()


def _client(base: str):
    import openai

    return openai.OpenAI(base_url=f"{base}/v1", api_key="none", timeout=TIMEOUT, max_retries=0)


def _assert_completion(c, model: str, max_tokens: int) -> None:
    assert c.object == "chat.completion" and c.id.startswith("chatcmpl-") and c.model == model
    assert len(c.choices) == 1
    ch = c.choices[0]
    assert ch.index == 0 and ch.message.role == "assistant" and isinstance(ch.message.content, str)
    assert ch.finish_reason in ("stop", "length")
    assert 0 <= c.usage.completion_tokens <= max_tokens and c.usage.prompt_tokens > 0
    assert c.usage.total_tokens == c.usage.prompt_tokens + c.usage.completion_tokens
    if ch.finish_reason == "length":
        assert c.usage.completion_tokens == max_tokens


def test_openai_client_chat_and_stream(served):
    client = _client(served["base"])
    msgs = [{"role": "system", "content": "Answer in one sentence."},
            {"role": "user", "content": "What is the capital of France?"}]
    c = client.chat.completions.create(model="tiny-llama", messages=msgs, max_tokens=12, temperature=0)
    _assert_completion(c, "tiny-llama", 12)
    # A random tiny model rarely emits its end token: it runs to max_tokens, which is what we check.
    assert c.choices[0].finish_reason == "length" and c.choices[0].message.content

    chunks = list(client.chat.completions.create(model="tiny-llama", messages=msgs, max_tokens=12, temperature=0,
                                                 stream=True, stream_options={"include_usage": True}))
    assert all(ch.object == "chat.completion.chunk" and ch.id == chunks[0].id for ch in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    finish = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert finish == [c.choices[0].finish_reason]
    assert chunks[-1].usage.completion_tokens == c.usage.completion_tokens
    # Greedy decoding: the streamed answer is the non-streamed one, token for token.
    assert text == c.choices[0].message.content

    sampled = client.chat.completions.create(model="tiny-llama", messages=msgs, max_tokens=5, temperature=0.8,
                                             top_p=0.9, seed=1)
    _assert_completion(sampled, "tiny-llama", 5)
    assert [m.id for m in client.models.list().data] == ["tiny-llama"]


def test_concurrent_requests_are_batched(served):
    client = _client(served["base"])
    results: list = [None] * 8
    errors: list = []

    def ask(i: int) -> None:
        try:
            results[i] = client.chat.completions.create(
                model="tiny-llama", messages=[{"role": "user", "content": f"Count to {i + 1}."}],
                max_tokens=4 + i, temperature=0)
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    before = requests.get(f"{served['base']}/health", timeout=TIMEOUT).json()
    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i, c in enumerate(results):
        _assert_completion(c, "tiny-llama", 4 + i)
        assert c.usage.completion_tokens == 4 + i  # each row cut at its own max_tokens inside a shared batch
    after = requests.get(f"{served['base']}/health", timeout=TIMEOUT).json()
    batches = after["batches"] - before["batches"]
    assert after["batched_requests"] - before["batched_requests"] == 8
    assert batches < 8 and after["max_batch"] > 1, after  # some requests shared a forward pass


BAD = [
    ("missing messages", {"model": "tiny-llama"}, 400, "messages"),
    ("messages not a list", {"messages": "hi"}, 400, "messages"),
    ("empty messages", {"messages": []}, 400, "messages"),
    ("unknown role", {"messages": [{"role": "robot", "content": "hi"}]}, 400, "role"),
    ("content not text", {"messages": [{"role": "user", "content": 42}]}, 400, "content"),
    ("max_tokens as string", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": "5"}, 400, "max_tokens"),
    ("too many tokens", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": LIMIT + 1}, 400,
     f"limit of {LIMIT}"),
    ("temperature out of range", {"messages": [{"role": "user", "content": "hi"}], "temperature": 9}, 400,
     "temperature"),
    ("n > 1", {"messages": [{"role": "user", "content": "hi"}], "n": 3}, 400, "n"),
    ("prompt too long", {"messages": [{"role": "user", "content": "word " * 400}]}, 400, "at most 256"),
    ("wrong model", {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}, 404, "'tiny-llama'"),
]


def test_bad_requests_get_4xx_with_a_message_and_the_replica_survives(served):
    url = f"{served['base']}/v1/chat/completions"
    with requests.Session() as http:
        for what, body, status, needle in BAD:
            r = http.post(url, json=body, timeout=TIMEOUT)
            assert r.status_code == status, (what, r.status_code, r.text)
            err = r.json()["error"]
            assert needle in err["message"], (what, err)
            assert err["type"] == "invalid_request_error"
        r = http.post(url, data=b"{not json", headers={"content-type": "application/json"}, timeout=TIMEOUT)
        assert r.status_code == 400 and "JSON" in r.json()["error"]["message"], r.text
        # The official client surfaces the message as a BadRequestError.
        import openai

        with pytest.raises(openai.BadRequestError, match=f"limit of {LIMIT}"):
            _client(served["base"]).chat.completions.create(
                model="tiny-llama", messages=[{"role": "user", "content": "hi"}], max_tokens=LIMIT * 10)
        # Still alive: health answers and a good request is answered.
        assert http.get(f"{served['base']}/health", timeout=TIMEOUT).json()["status"] == "ok"
        ok = http.post(url, json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}, timeout=TIMEOUT)
        assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["role"] == "assistant"
        assert ok.json()["usage"]["completion_tokens"] <= 3


def test_exported_run_folder_is_served(served):
    base = f"{served['base']}/exported"
    name = served["run_name"]
    health = requests.get(f"{base}/health", timeout=TIMEOUT).json()
    assert health["status"] == "ok" and health["model"] == name and health["device"] == "cpu"
    client = _client(base)
    assert [m.id for m in client.models.list().data] == [name]
    c = client.chat.completions.create(model=name, messages=[{"role": "user", "content": "Capital of Spain?"}],
                                       max_tokens=6, temperature=0)
    _assert_completion(c, name, 6)
    # Same weights as tiny-llama at `/`, same chat template: the same greedy answer.
    ref = _client(served["base"]).chat.completions.create(
        model="tiny-llama", messages=[{"role": "user", "content": "Capital of Spain?"}], max_tokens=6, temperature=0)
    assert c.choices[0].message.content == ref.choices[0].message.content
    # Raw SSE: OpenAI's framing, ending with [DONE].
    with requests.post(f"{base}/v1/chat/completions", stream=True, timeout=TIMEOUT,
                       json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "stream": True}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = [line[len("data: "):] for line in r.iter_lines(decode_unicode=True) if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    bodies = [json.loads(e) for e in events[:-1]]
    assert all(b["object"] == "chat.completion.chunk" for b in bodies)
    assert bodies[-1]["choices"][0]["finish_reason"] in ("stop", "length")
