"""Config: unknown keys and bad values name the key and the file; overrides; redaction."""

from __future__ import annotations

import pytest

from sft_ray.cli import main
from sft_ray.config import ConfigError, apply_override, config_dict, load_config, redact
from tests.conftest import REPO

CONFIGS = sorted((REPO / "jobs" / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    cfg = load_config(path)
    assert cfg.sources, path


def test_embedded_demo_equals_demo_yaml():
    a = config_dict(load_config(None), redacted=False)
    b = config_dict(load_config(REPO / "jobs" / "configs" / "demo.yaml"), redacted=False)
    assert a == b


def test_unknown_key_names_key_and_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("output: x\nclean: {enabled: true, min_charz: 3}\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert "clean.min_charz" in str(e.value) and str(p) in str(e.value)


def test_bad_value_names_key(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train: {num_workers: 0}\n")
    with pytest.raises(ConfigError, match=r"train\.num_workers"):
        load_config(p)


def test_source_shape_errors(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("sources: [{name: t, kind: translation, path: a.txt, format: bitext, langs: {src: en, tgt: de}}]\n")
    with pytest.raises(ConfigError, match="bitext needs path"):
        load_config(p)


def test_overrides_are_typed_and_reach_lists():
    cfg = load_config(None, ["train.max_steps=7", "sources.1.limit=5", "format.system_prompt=Be brief."])
    assert cfg.train.max_steps == 7 and cfg.sources[1].limit == 5 and cfg.format.system_prompt == "Be brief."
    with pytest.raises(ConfigError, match="unknown key 'train.nope'"):
        load_config(None, ["train.nope=1"])
    d = {"a": [1]}
    with pytest.raises(ConfigError, match="not an index"):
        apply_override(d, "a.3=1")


def test_relative_paths_resolve_against_config_file(tmp_path):
    (tmp_path / "sub").mkdir()
    p = tmp_path / "sub" / "c.yaml"
    p.write_text("sources: [{name: a, kind: text, path: data/*.jsonl, format: jsonl}]\n")
    assert load_config(p).sources[0].path == str(tmp_path / "sub" / "data" / "*.jsonl")
    p.write_text("sources: [{name: a, kind: text, path: a.jsonl, format: jsonl}]\n"
                 "label: {sentiment: {enabled: true, seed: {format: lines, path: {pos: s/p.txt, neg: /abs/n.txt}}}}\n")
    assert load_config(p).label.sentiment.seed.path == {"pos": str(tmp_path / "sub" / "s" / "p.txt"), "neg": "/abs/n.txt"}


def test_redaction_hides_credentials_only():
    red = redact({"storage_options": {"key": "AKIA", "secret": "s3cr3t", "endpoint_url": "http://h"}, "num_key_value_heads": 2})
    assert red["storage_options"] == {"key": "***", "secret": "***", "endpoint_url": "http://h"}
    assert red["num_key_value_heads"] == 2


def test_validate_config_cli(capsys, tmp_path):
    assert main(["validate-config", str(CONFIGS[0])]) == 0
    assert "config OK" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("outptu: x\n")
    assert main(["validate-config", str(bad)]) == 2
    assert "unknown key 'outptu'" in capsys.readouterr().err
