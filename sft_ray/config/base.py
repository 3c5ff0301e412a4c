"""What every config model shares: strictness, the user-facing error type, source kinds."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict


class ConfigError(ValueError):
    """A configuration problem, phrased for the user: which key, which file, what was expected."""


class StrictModel(BaseModel):
    """Base of every config model: an unknown key is an error (a typo must not silently fall back to
    a default), and assignments are validated like loaded values."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


SourceKind = Literal["web", "news", "text", "translation", "qa", "sentiment", "sft"]
"""What a source's records are; decides their columns, the filters that apply and the SFT tasks."""

ALL_KINDS: tuple[str, ...] = get_args(SourceKind)
"""Every source kind, in declaration order (the default of stages that apply to all kinds)."""
