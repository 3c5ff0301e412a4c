"""Is a finished output still what its config and inputs would build? (`_SUCCESS` alone is not enough.)

A finished build records what it was built from in `manifest.json`: the config sections that decide
its records (`BUILD_SECTIONS`: sources, clean, dedup, label, teacher, format, and augment when on; not train, placement,
staging or where Ray runs) and every input file with its size and content version
(ingest/files.py: an object store's ETag or generation; locally mtime in ns + inode). A rerun on a
finished output compares both: equal means "already complete"; different is refused with what
changed (or rebuilt with `overwrite`), so appended rows or `--set clean.min_chars=200` never
silently train on the old data.
"""

from __future__ import annotations

import hashlib
import json

from sft_ray.config import RunConfig, config_dict

BUILD_SECTIONS = ("sources", "clean", "dedup", "label", "teacher", "format")


def _sections(d: dict) -> dict:
    """BUILD_SECTIONS of a config dict, and `augment` when it is on (only then, so builds made before
    the section existed keep their fingerprint)."""
    out = {k: d.get(k) for k in BUILD_SECTIONS}
    if (d.get("augment") or {}).get("enabled"):
        out["augment"] = d["augment"]
    return out


def build_config(cfg: RunConfig) -> dict:
    """The part of the (redacted) config that decides a build's records."""
    return _sections(config_dict(cfg))


def digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def fingerprint(cfg: RunConfig, described_inputs: list[dict]) -> dict:
    """{"config": hash, "inputs": hash}, stored in the manifest."""
    return {"config": digest(build_config(cfg)), "inputs": digest(described_inputs)}


def changes(manifest: dict, cfg: RunConfig, described_inputs: list[dict]) -> list[str]:
    """What differs between a finished build's manifest and this config + inputs ([] = nothing)."""
    old_fp, new_fp = manifest.get("fingerprint") or {}, fingerprint(cfg, described_inputs)
    out = []
    if old_fp.get("config") != new_fp["config"]:
        old_cfg = _sections(manifest.get("config") or {})
        keys = _diff(old_cfg, build_config(cfg))
        out.append("config changed: " + (", ".join(keys[:8]) + (f" and {len(keys) - 8} more" if len(keys) > 8 else "") if keys
                                         else "the build was made by a version of sft_ray that did not record its config hash"))
    if old_fp.get("inputs") != new_fp["inputs"]:
        out.append("inputs changed: " + _input_diff(manifest.get("inputs") or [], described_inputs))
    return out


def _diff(a, b, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ, with old -> new for leaves."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [k for key in sorted(set(a) | set(b), key=str) for k in _diff(a.get(key), b.get(key), f"{prefix}{key}.")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [k for i, (x, y) in enumerate(zip(a, b)) for k in _diff(x, y, f"{prefix}{i}.")]
    return [] if a == b else [f"{prefix.rstrip('.')} ({_short(a)} -> {_short(b)})"]


def _short(v) -> str:
    s = json.dumps(v, default=str)
    return s if len(s) <= 40 else s[:37] + "..."


def _input_diff(old: list[dict], new: list[dict]) -> str:
    def files(described):
        return {(d["source"], f["path"]): (f.get("bytes"), f.get("version")) for d in described for f in d["files"]}
    a, b = files(old), files(new)
    added, removed = sorted(set(b) - set(a)), sorted(set(a) - set(b))
    changed = sorted(k for k in set(a) & set(b) if a[k] != b[k])
    parts = [f"{len(x)} file(s) {what} (e.g. {x[0][1]})" for x, what in ((added, "added"), (removed, "removed"), (changed, "changed")) if x]
    return "; ".join(parts) or "the input list changed"
