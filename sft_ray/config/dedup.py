"""`dedup`: exact, near (MinHash-LSH), semantic and SFT-example dedup, and decontamination.

The code is sft_ray/dedup/; survivors are always the smallest id, so results do not depend on partitioning.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from sft_ray.config.base import SourceKind, StrictModel


class ExactDedupConfig(StrictModel):
    """Exact duplicates (dedup/exact.py): a hash of the normalised text, or of the translation pair."""

    enabled: bool = Field(default=True, description="Global exact dedup on normalised text (docs) or (source, target) (pairs).")
    lowercase: bool = Field(default=False, description="Lowercase before hashing (catches case-only duplicates).")
    nfkc: bool = Field(
        default=True, description="NFKC-normalise before hashing: full-width ＡＢＣ１２３, half-width kana, ligatures and other compatibility forms equal their plain forms."
    )
    pair_key: Literal["pair", "source"] = Field(
        default="pair", description="Translation pairs are duplicates when the whole (source, target) pair matches, or already when the source side does."
    )


class NearDedupConfig(StrictModel):
    """MinHash-LSH near-duplicate detection (Broder 1997; bands x rows as DataTrove/FineWeb). See dedup/minhash.py."""

    enabled: bool = Field(default=True, description="Run near-duplicate detection.")
    kinds: list[SourceKind] = Field(
        default_factory=lambda: ["web", "news", "text", "sentiment"],
        description="Source kinds it applies to (translation pairs and QA, whose questions share passages: exact dedup only, by default).",
    )
    ngram_size: int = Field(default=5, ge=1, description="Shingle size in words (or characters when char_ngrams).")
    char_ngrams: bool = Field(default=False, description="Character shingles instead of words for every document (see script_shingles for a per-document choice).")
    script_shingles: bool = Field(
        default=True,
        description="Per document: character n-grams of `char_ngram_size` when at least `script_share` of its letters are "
        "Han, kana, Thai, Lao, Khmer, Myanmar or Tibetan (scripts written without spaces), word n-grams otherwise.",
    )
    # Measured on 40 XQuAD zh paragraphs with 3% of characters deleted: character 2-gram Jaccard >= 0.84
    # (3-grams 0.73, 5-grams 0.56: below verify_jaccard), while neighbouring unrelated paragraphs stay <= 0.11.
    char_ngram_size: int = Field(default=2, ge=1, description="Shingle size in characters for documents in scripts without spaces (a Chinese word is 1.7 characters on average).")
    script_share: float = Field(default=0.3, gt=0, le=1, description="Share of a document's letters in scripts without spaces that makes it shingle by characters.")
    nfkc: bool = Field(default=True, description="NFKC-normalise before shingling (full-width forms, ligatures and compatibility characters fold to their plain forms).")
    num_bands: int = Field(default=14, ge=1, description="LSH bands b.")
    rows_per_band: int = Field(default=8, ge=1, description="Rows per band r; b*r hash functions. 14x8 ~ threshold 0.72.")
    # 0.75, not 0.8: a deleted character touches a whole word and 5 of its word 5-grams, so copies of a
    # 150-300-word German or English document with 0.2% of characters deleted score Jaccard 0.72-0.82;
    # at 0.8 a tenth of them were kept (benchmarks/languages.py: de F1 0.92-0.95, now 0.97-1.0 on 300-word
    # documents), while no pair of unrelated documents there or in benchmarks/near_dedup.py comes near 0.75
    # (results in benchmarks/results/languages.md, near_dedup_verify.md). Above the 14x8 LSH threshold (0.72).
    verify_jaccard: float | None = Field(
        default=0.75, ge=0, le=1, description="Confirm LSH candidate pairs by exact shingle Jaccard >= this (null: trust LSH)."
    )
    lowercase: bool = Field(default=True, description="Lowercase before shingling.")
    strip_punctuation: bool = Field(default=True, description="Remove punctuation before shingling.")
    strip_digits: bool = Field(default=False, description="Map digits to 0 before shingling.")
    strip_diacritics: bool = Field(default=False, description="Remove diacritics before shingling.")
    seed: int = Field(default=1, description="Seed of the MinHash permutations.")
    broadcast_max_edges: int = Field(
        default=1_000_000,
        ge=0,
        description="Up to this many candidate edges, send the edge list (~100 MB per million) to every worker instead of "
        "shuffling texts and records by id, and find components in one task; above it, everything is shuffled (0: always).",
    )


class BenchmarkSetConfig(StrictModel):
    """An evaluation set that training data must not overlap (decontamination)."""

    name: str = Field(description="Name used in counts and in rejects' `duplicate_of` (`benchmark:<name>`).")
    path: str = Field(description="File, glob or prefix on any fsspec URL.")
    format: Literal["lines", "jsonl", "squad"] = Field(
        default="lines", description="lines: one item per line (WMT test sets); jsonl: the `fields` of each object; squad: SQuAD/XQuAD JSON (contexts, questions, answers)."
    )
    fields: list[str] = Field(default_factory=lambda: ["text"], description="jsonl: fields whose text forms the item.")
    storage_options: dict[str, Any] = Field(default_factory=dict, description="fsspec options for `path`.")


class DecontaminateConfig(StrictModel):
    """N-gram decontamination (GPT-3 appendix C; 13-grams as in GPT-3 and the OLMo/Dolma tooling)."""

    enabled: bool = Field(default=True, description="Run decontamination (it does nothing without benchmarks or a validation split).")
    ngram: int = Field(default=13, ge=1, description="A training record sharing one word n-gram with an evaluation item is `contaminated`.")
    min_ngram: int = Field(
        default=8, ge=1, description="Evaluation items shorter than `ngram` words count with their full length down to this; shorter ones are ignored."
    )
    benchmarks: list[BenchmarkSetConfig] = Field(default_factory=list, description="User-given evaluation sets (XQuAD, WMT test sets, ...).")
    validation_split: bool = Field(default=True, description="Also check training records against this build's own validation records.")
    broadcast_max_hits: int = Field(
        # ~40 bytes per id (a 25-character id, its offset and 64-bit hash): 1M ids ~40 MB per worker.
        default=1_000_000,
        ge=0,
        description="Up to this many validation-split hits (training ids found by the n-gram join), send the hit list "
        "to every worker and tag records by a map; above it, shuffle records and hits by id (0: always shuffle).",
    )


class SemanticDedupConfig(StrictModel):
    """Embedding-based dedup (SemDeDup, Abbas et al. 2023, arXiv:2303.09540): k-means over sentence
    embeddings, then within each cluster a record whose cosine similarity to a kept record of smaller
    id is >= `threshold` is a `semantic_duplicate`. Off by default: it runs an encoder over every
    record (~25 docs per CPU-second with MiniLM; meant for GPU nodes or small corpora). See dedup/semantic.py."""

    enabled: bool = Field(default=False, description="Run semantic dedup after exact and near dedup.")
    kinds: list[SourceKind] = Field(
        default_factory=lambda: ["web", "news", "text", "sentiment"], description="Source kinds it applies to (not qa: questions share passages)."
    )
    model: str = Field(default="all-minilm-l6-v2", description="Sentence embedding model (as label.model).")
    max_tokens: int = Field(default=128, ge=8, description="Word pieces per text seen by the model (the start of each text).")
    threshold: float = Field(
        # SemDeDup keeps pairs with cosine > 1 - eps; eps 0.05-0.1 removed 20-50% of LAION with no loss
        # of zero-shot accuracy (paper, Table 1). 0.95 = eps 0.05, the conservative end.
        default=0.95, gt=0, le=1, description="Cosine similarity at or above which two records are duplicates.",
    )
    cluster_size: int = Field(default=2_000, ge=10, description="Mean records per k-means cluster: k = ceil(records / cluster_size); bounds the per-cluster work.")
    sample_size: int = Field(default=20_000, ge=100, description="Records (a hash sample, partition-independent) the centroids are fitted on, on the driver.")
    kmeans_iterations: int = Field(default=20, ge=1, description="Lloyd iterations of spherical k-means.")
    seed: int = Field(default=0, description="Seed of the k-means++ initialisation.")
    batch_size: int = Field(default=256, ge=1, description="Rows per embedding actor call.")
    embed_batch_size: int = Field(default=32, ge=1, description="Texts per forward pass.")
    concurrency: int | None = Field(
        default=None, ge=1,
        description="Most embedding actors (the pool autoscales from 1); None: as many as the nodes placement.models selects hold (sft_ray/pools.py).",
    )
    num_cpus: float = Field(default=1, gt=0, description="CPUs per embedding actor.")
    num_gpus: float = Field(default=0, ge=0, description="GPUs per embedding actor (0: CPU).")


class SftDedupConfig(StrictModel):
    """Exact dedup of the formatted SFT examples (dedup/sft.py), global across splits and sources."""

    enabled: bool = Field(default=True, description="Deduplicate SFT examples after formatting.")
    on: Literal["example", "prompt"] = Field(
        default="example",
        description="`example`: the same prompt and response; `prompt`: the same prompt (every message before the last "
        "assistant turn) whatever the response, e.g. one question with paraphrased answers, or one source sentence "
        "with several translations.",
    )
    lowercase: bool = Field(default=True, description="Compare casefolded text (whitespace is always collapsed).")


class DedupConfig(StrictModel):
    """Global deduplication across all sources, blocks and nodes; survivor = smallest id."""

    enabled: bool = Field(default=True, description="Run the dedup stage.")
    exact: ExactDedupConfig = Field(default_factory=ExactDedupConfig, description="Exact duplicate detection.")
    near: NearDedupConfig = Field(default_factory=NearDedupConfig, description="MinHash-LSH near-duplicate detection.")
    decontaminate: DecontaminateConfig = Field(default_factory=DecontaminateConfig, description="Remove training records overlapping evaluation sets.")
    semantic: SemanticDedupConfig = Field(default_factory=SemanticDedupConfig, description="Embedding (MiniLM) + k-means semantic dedup (off by default).")
    sft: SftDedupConfig = Field(default_factory=SftDedupConfig, description="Exact dedup of the SFT examples (prompt+response or prompt only).")
    num_partitions: int | None = Field(
        default=None,
        ge=1,
        description="Hash partitions of every dedup shuffle; null (the default): from the records' size, "
        "ceil(bytes / partition_bytes) capped at max_partitions (dedup/partitions.py). A number here wins.",
    )
    partition_bytes: int = Field(
        # A reduce task holds its whole partition as one block and sorts or joins it (a copy or two more),
        # so its peak is a small multiple of this: 512 MiB stays well inside a worker's usual 2-4 GiB per CPU.
        default=512 * 2**20,
        ge=1,
        description="Target in-memory bytes of one shuffle partition (a reduce task peaks at a few times this).",
    )
    shuffle_map_bytes: int = Field(
        # Ray Data 2.60's shuffle map (ShuffleMapOp) gathers input blocks per node until
        # DataContext.shuffle_input_batch_bytes (1 GiB by default) and partitions them in one task, which
        # holds the input and its partitioned copy: the decontamination join's gram rows made that task
        # the build's largest, 2.2 GiB private at 20k documents (benchmarks/scale.py; one map task took
        # all 77 blocks, 1.02 GB). 256 MiB bounds a map task near 0.6 GiB; smaller values mean more map
        # tasks, and every map task writes one shard per partition, so at 1 TB and 2,048 partitions
        # 256 MiB keeps ~8M shards (1 GiB: ~2M).
        default=256 * 2**20,
        ge=1,
        description="Input bytes one shuffle map task partitions at once (Ray Data's shuffle_input_batch_bytes, "
        "1 GiB by default): a map task peaks at about twice this.",
    )
    max_partitions: int = Field(
        # Every shuffle keeps map x reduce intermediate objects (and per-partition aggregator state):
        # past a few thousand partitions that overhead costs more than bigger partitions do.
        default=2048,
        ge=1,
        description="Most partitions computed from bytes (2048 x 512 MiB = 1 TiB; larger corpora get larger partitions).",
    )
