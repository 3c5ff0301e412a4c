"""staging: how read + clean is cut into work units, and whether staged work outlives a build."""

from __future__ import annotations

from pydantic import Field

from sft_ray.config.base import StrictModel

GIB = 1 << 30


class StagingConfig(StrictModel):
    """Work units of read + clean (sft_ray/staging.py). One Ray task per input file makes a million
    small HTML files a million tasks (scheduling, not reading, dominates) and one 50 GB JSONL a
    single straggler; units of about `unit_bytes` bound both."""

    unit_bytes: int = Field(
        default=GIB, ge=1,
        description="Target bytes of input per read+clean task. Files smaller than this are grouped into units of about "
        "this size (content-defined boundaries, so adding a file changes only its own unit); uncompressed JSONL/CSV/TSV/"
        "lines files larger than this are read as byte ranges at line boundaries. 1 GiB is minutes of extraction and "
        "filtering per task: long enough that per-task overhead is noise, short enough that a retry or resume redoes little.",
    )
    min_units: int = Field(
        default=64, ge=1,
        description="A source smaller than min_units x unit_bytes gets smaller units (a power of two, at least 16 MiB, "
        "from the source's size), so a small corpus still runs as many parallel read+clean tasks.",
    )
    group_small_files: bool = Field(
        default=True,
        description="Group files smaller than unit_bytes into one unit (false: one unit per file, e.g. to resume at file granularity).",
    )
    keep_work: bool = Field(
        default=False,
        description="Keep <output>/_work/ after a successful build, so that a rebuild with overwrite=true after adding "
        "input files reads and cleans only the units that are new (staged units are reused while their inputs and the "
        "read/clean configuration are unchanged). Costs the staged records' disk space.",
    )
