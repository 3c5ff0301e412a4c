"""Reading a run config: YAML (safe), `--set` overrides, validation with errors that name the key
and the file, relative paths resolved against the config's folder, and redacted dumps."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from sft_ray.config.base import ConfigError
from sft_ray.config.run import RunConfig
from sft_ray.schema import LABELERS

# Names of credentials: s3fs's `key`/`secret`, botocore's `aws_secret_access_key`, `token`,
# `password`, ... (the whole name or its last `_` part, so `num_key_value_heads` is not one).
_SECRET_KEY = re.compile(
    r"(^|_)(key|secret|token|password|passwd|credentials?|access_key(_id)?|secret_access_key|session_token|api_key)$", re.IGNORECASE
)
# An environment value shorter than this is not searched for inside other strings (a "1" or "on"
# would be "redacted" everywhere); storage options' credentials are replaced wherever they stand.
_MIN_ENV_SECRET = 8


def secret_values(obj: Any) -> set[str]:
    """The secrets a config holds or its run can see: values under credential names inside any
    `storage_options` (nested `client_kwargs` included), and environment variables with such names
    (AWS_SECRET_ACCESS_KEY, HF_TOKEN, ...)."""
    found = {v for k, v in os.environ.items() if _SECRET_KEY.search(k) and len(v) >= _MIN_ENV_SECRET}

    def creds(d: Any) -> None:
        if isinstance(d, dict):
            for k, v in d.items():
                if isinstance(v, str) and v and _SECRET_KEY.search(str(k)):
                    found.add(v)
                creds(v)
        elif isinstance(d, list):
            for v in d:
                creds(v)

    def walk(d: Any) -> None:
        if isinstance(d, dict):
            for k, v in d.items():
                (creds if k == "storage_options" else walk)(v)
        elif isinstance(d, list):
            for v in d:
                walk(v)

    walk(obj)
    return found


def redact(obj: Any, secrets: set[str] | None = None) -> Any:
    """Copy of config data with every secret *value* (secret_values) replaced by '***', wherever it
    stands. By value, not by key name: a field that merely looks like a credential
    (`dedup.exact.pair_key`) keeps its value, so a saved config (manifest, checkpoint) runs again."""
    secrets = secret_values(obj) if secrets is None else secrets
    if isinstance(obj, dict):
        return {k: redact(v, secrets) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact(v, secrets) for v in obj]
    if isinstance(obj, str) and secrets:
        if obj in secrets:
            return "***"
        for s in secrets:
            if len(s) >= _MIN_ENV_SECRET and s in obj:
                obj = obj.replace(s, "***")
    return obj


def apply_override(data: dict, dotted: str) -> None:
    """Apply one `a.b.0.c=value` override in place; the value is parsed as YAML (so 3 is an int)."""
    if "=" not in dotted:
        raise ConfigError(f"--set {dotted!r}: expected dotted.key=value")
    key, raw = dotted.split("=", 1)
    try:
        value = yaml.safe_load(raw)  # safe: a `!!python/...` tag is an error, never executed
    except yaml.YAMLError as e:
        raise ConfigError(f"--set {key}: value is not valid YAML: {e}") from e
    parts = key.strip().split(".")
    node: Any = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"--set {key}: {part!r} is not an index of a list of {len(node)}")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        else:
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
                if not isinstance(node, (dict, list)):
                    raise ConfigError(f"--set {key}: {'.'.join(parts[: i + 1])} is not a mapping")


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The config model class that holds the key at `loc` (list indexes and dict keys skipped)."""
    import typing

    cls: Any = model
    for part in loc:
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or part not in cls.model_fields:
            return None
        ann = cls.model_fields[part].annotation
        while True:  # unwrap Optional / list / dict down to a model class
            args = [a for a in typing.get_args(ann) if a is not type(None)]
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                break
            if not args:
                break
            ann = args[-1]
        cls = ann
    return cls if isinstance(cls, type) and issubclass(cls, BaseModel) else None


def _did_you_mean(model: type[BaseModel], loc: tuple) -> str:
    import difflib

    keys = [p for p in loc if isinstance(p, str)]
    holder = _model_at(model, tuple(p for p in loc[:-1] if isinstance(p, str))) if keys else None
    if holder is None or not isinstance(loc[-1], str):
        return ""
    close = difflib.get_close_matches(loc[-1], list(holder.model_fields), n=2, cutoff=0.6)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def _format_errors(err: ValidationError, origin: str, model: type[BaseModel] | None = None) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "<root>"
        if e["type"] == "extra_forbidden":
            lines.append(f"unknown key '{loc}' in {origin}" + (_did_you_mean(model, tuple(e["loc"])) if model else ""))
        else:
            lines.append(f"'{loc}' in {origin}: {e['msg']} (got {e.get('input')!r:.80})")
    return "invalid config:\n  " + "\n  ".join(lines)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Load YAML (or the embedded demo when `path` is None), apply overrides, validate.

    Relative local paths inside the file are resolved against the file's folder, so a config can
    sit next to its data and be run from anywhere.
    """
    if path is None:
        from sft_ray.demo import demo_config_dict

        data, origin = demo_config_dict(), "<embedded demo config>"
    else:
        p = Path(path)
        data, origin = read_yaml_mapping(p, "config"), str(p)
        data = _resolve_relative(data, p.parent.resolve())
    return validated(RunConfig, data, overrides, origin)


def require_output(cfg: RunConfig, origin: str) -> None:
    """A run from a config file names its output: the default is the demo's folder, where another
    corpus must never land (or be skipped as "already complete")."""
    if "output" not in cfg.model_fields_set:
        raise ConfigError(f"'output' in {origin}: required (a local folder or fsspec URL for this run's outputs); "
                          "a config file never falls back to the demo's folder")


def validated(model: type[BaseModel], data: dict, overrides: list[str] | None, origin: str):
    """Apply `--set` overrides to a copy of `data` and validate it; errors name the key and `origin`."""
    data = copy.deepcopy(data)
    for o in overrides or []:
        apply_override(data, o)
    if overrides:
        origin += " (with --set overrides)"
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_errors(e, origin, model)) from None


def read_yaml_mapping(p: Path, what: str) -> dict:
    """A YAML file holding a mapping, loaded safely (no `!!python` tags); errors name the file."""
    if not p.is_file():
        raise ConfigError(f"{what} file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{what} file {p} is not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{what} file {p} must hold a mapping at the top level")
    return data


def _is_relative_local(p: Any) -> bool:
    return isinstance(p, str) and "://" not in p and not p.startswith("/")


def _resolve_relative(data: dict, base: Path) -> dict:
    """Source paths and label seed paths (a URL or a {key: URL} mapping) relative to the config's folder."""
    data = copy.deepcopy(data)
    holders = [src for src in data.get("sources") or [] if isinstance(src, dict)]
    for name in LABELERS:  # label seed sets sit next to the config as often as sources do
        seed = ((data.get("label") or {}).get(name) or {}).get("seed")
        holders += [seed] if isinstance(seed, dict) else []
    for h in holders:
        p = h.get("path")
        if isinstance(p, dict):
            h["path"] = {k: _resolve_path(v, base) for k, v in p.items()}
        elif p is not None:
            h["path"] = _resolve_path(p, base)
    return data


def _resolve_path(p: Any, base: Path) -> Any:
    return os.path.normpath(base / p) if _is_relative_local(p) else p


def config_dict(cfg: RunConfig, *, redacted: bool = True) -> dict:
    """The config as JSON-ready data (saved in the manifest and the training run), secrets redacted unless asked."""
    d = cfg.model_dump(mode="json")
    return redact(d) if redacted else d


def config_yaml(cfg: RunConfig) -> str:
    """The redacted config as YAML in field order, as the CLI prints it."""
    return yaml.safe_dump(config_dict(cfg), sort_keys=False, width=110)


def explain(cfg: BaseModel) -> str:
    """Every key of the config with its value (secrets redacted), and its description when it
    differs from the default, the default too: what `validate-config --explain` prints."""
    import json

    values = redact(cfg.model_dump(mode="json"))
    lines: list[str] = []

    def walk(obj: BaseModel, data: dict, prefix: str) -> None:
        for name, field in type(obj).model_fields.items():
            value, raw = data.get(name), getattr(obj, name)
            key = f"{prefix}{name}"
            if isinstance(raw, BaseModel):
                lines.append(f"{key}:  # {field.description or ''}")
                walk(raw, value, key + ".")
            elif isinstance(raw, list) and raw and all(isinstance(v, BaseModel) for v in raw):
                lines.append(f"{key}:  # {field.description or ''}")
                for i, (item, item_data) in enumerate(zip(raw, value)):
                    walk(item, item_data, f"{key}.{i}.")
            else:
                if field.is_required():
                    changed = "  (required)"
                else:
                    default = json.loads(json.dumps(field.get_default(call_default_factory=True), default=str))
                    changed = "" if default == value else f"  (default: {json.dumps(default)[:60]})"
                lines.append(f"{key} = {json.dumps(value, default=str)[:100]}{changed}\n    {field.description or ''}")

    walk(cfg, values, "")
    return "\n".join(lines)
