"""Safety defaults: nothing executes or escapes unless the user asks for it.

The job-server half (submission refused without the token) is tests/e2e/test_job_submit.py.
"""

from __future__ import annotations

import pytest

from sft_ray import storage
from sft_ray.config import ConfigError, RunConfig, load_config


def test_remote_code_is_off_by_default():
    assert RunConfig().train.trust_remote_code is False
    assert load_config(None).train.trust_remote_code is False


def test_yaml_is_loaded_safely(tmp_path):
    """A YAML tag that would construct Python objects (yaml.load's classic RCE) is refused, not run."""
    marker = tmp_path / "pwned"
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"output: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ConfigError):
        load_config(str(bad))
    with pytest.raises(ConfigError):
        load_config(None, overrides=[f"output=!!python/object/apply:os.system ['touch {marker}']"])
    assert not marker.exists()


@pytest.mark.parametrize("name", ["../evil", "/abs", "a/b", ".hidden", "x y", ""])
def test_source_names_cannot_become_paths(name):
    with pytest.raises(ConfigError, match="name"):
        load_config(None, overrides=[f"sources.0.name={name}"])


@pytest.mark.parametrize("part", ["../x", "a/../../x", "/etc/passwd"])
def test_output_paths_cannot_leave_the_prefix(part):
    with pytest.raises(ValueError, match="leave the output prefix"):
        storage.join("s3://bucket/runs/a", part)
    with pytest.raises(ValueError, match="leave the output prefix"):
        storage.join("/tmp/runs/a", part)


def test_secrets_are_redacted_in_the_saved_config():
    from sft_ray.config import config_dict

    cfg = RunConfig.model_validate({"storage_options": {"key": "AKIAXYZ", "secret": "s3cr3t", "endpoint_url": "http://x"},
                                    "sources": [{"name": "a", "kind": "text", "path": "s3://b/x.jsonl", "format": "jsonl",
                                                 "storage_options": {"token": "tok", "client_kwargs": {"aws_secret_access_key": "k2"}}}]})
    dumped = repr(config_dict(cfg))
    for secret in ("AKIAXYZ", "s3cr3t", "tok", "k2"):
        assert f"'{secret}'" not in dumped
    assert "http://x" in dumped
