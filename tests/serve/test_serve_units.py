"""Fast checks of the serving pieces that need no Ray: request validation, where a run keeps its
model, the config's limits, the engine's batched and streamed generation on tiny-llama."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sft_ray.config import ConfigError
from sft_ray.serve.config import ServeConfig, load_serve_config
from sft_ray.serve.location import model_location
from sft_ray.serve.protocol import ChatCompletionRequest

USER = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.mark.parametrize("body, field", [
    ({}, "messages"),
    ({"messages": []}, "messages"),
    ({"messages": "hello"}, "messages"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, "role"),
    ({"messages": [{"role": "user", "content": 5}]}, "content"),
    ({"messages": [{"role": "user"}]}, "content"),
    ({"messages": [{"role": "system", "content": "only a system prompt"}]}, "messages"),
    ({"messages": USER, "max_tokens": "5"}, "max_tokens"),
    ({"messages": USER, "max_tokens": 0}, "max_tokens"),
    ({"messages": USER, "temperature": 3}, "temperature"),
    ({"messages": USER, "stream": "yes"}, "stream"),
    ({"messages": USER, "n": 2}, "n"),
    ({"messages": USER, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"messages": USER, "tools": [{"type": "function"}]}, "tools"),
])
def test_bad_requests_are_refused_naming_the_field(body, field):
    with pytest.raises(ValidationError) as e:
        ChatCompletionRequest.model_validate(body)
    assert field in str(e.value)


def test_good_requests_parse_with_openai_extras_ignored():
    r = ChatCompletionRequest.model_validate({"model": "m", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]}],
        "max_completion_tokens": 7, "temperature": 0, "stop": "\n", "user": "abc", "presence_penalty": 0})
    assert r.messages[1].text() == "Hi there" and r.requested_max_tokens() == 7 and r.stop == ["\n"]


def test_model_location_accepts_run_train_and_model_folders(tmp_path):
    model = tmp_path / "run" / "train" / "model"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    for given in (tmp_path / "run", tmp_path / "run" / "train", model):
        assert model_location(str(given)) == str(model)
    assert model_location("tiny-llama") == "tiny-llama"
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="train/model"):
        model_location(str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        model_location(str(tmp_path / "missing"))


def test_serve_config_limits_and_unknown_keys(tmp_path):
    cfg = load_serve_config(None, ["num_replicas=2", "num_gpus=0.5"], model=str(tmp_path / "runs" / "demo"))
    assert cfg.num_replicas == 2 and cfg.num_gpus == 0.5 and cfg.model_name() == "demo"
    with pytest.raises(ConfigError, match="unknown key 'replicas'"):
        load_serve_config(None, ["replicas=2"])
    with pytest.raises(ConfigError, match="max_tokens_limit"):
        load_serve_config(None, ["max_tokens_limit=8"])  # below default_max_tokens
    with pytest.raises(ValidationError, match="max_batch_size"):
        ServeConfig(max_batch_size=16, max_ongoing_requests=4)


def test_cli_serve_with_a_missing_folder_exits_2(tmp_path, capsys):
    from sft_ray.cli import main

    assert main(["serve", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_engine_batches_left_padded_and_streams_the_same_greedy_text():
    from sft_ray.serve.engine import ChatEngine, GenJob

    eng = ChatEngine("tiny-llama", torch_threads=1)
    short = eng.encode(USER)
    long = eng.encode([{"role": "user", "content": "Tell me, in a few words and without a list, which city is the "
                                                   "capital of France and why it became the capital."}])
    assert len(long) > len(short)
    alone = eng.generate([GenJob(tuple(short), 6, 0.0)])[0]
    both = eng.generate([GenJob(tuple(long), 9, 0.0), GenJob(tuple(short), 6, 0.0)])
    # Left padding: the short prompt's greedy answer is the same alone and next to a longer one.
    assert both[1].text == alone.text
    assert both[0].completion_tokens <= 9 and alone.completion_tokens <= 6
    assert alone.prompt_tokens == len(short)
    parts = list(eng.stream(GenJob(tuple(short), 6, 0.0)))
    assert "".join(parts[:-1]) == parts[-1].text == alone.text
    assert parts[-1].finish_reason == alone.finish_reason


def test_serve_run_app_builder_takes_config_keys():
    """`serve run jobs.serve:app_builder model=... num_replicas=2` builds the app; a typo is refused."""
    import importlib
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    builder = importlib.import_module("jobs.serve").app_builder
    from ray.serve.deployment import Application

    assert isinstance(builder({"model": "tiny-llama", "num_replicas": "2", "max_batch_size": "4"}), Application)
    with pytest.raises(ConfigError, match="unknown key 'replica'"):
        builder({"model": "tiny-llama", "replica": "2"})
