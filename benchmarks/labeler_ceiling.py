"""How far the labeler encoder's cost per document can fall on this CPU, and what each cut costs in accuracy.

    .venv/bin/python benchmarks/labeler_ceiling.py                # 2,000 held-out AG News rows
    .venv/bin/python benchmarks/labeler_ceiling.py --rows 400     # a quick look

Issue 20 asks for >= 3x torch's docs per CPU-second at topic accuracy within 0.5 points;
`label.engine: onnx-int8` gives ~1.3-1.5x (benchmarks/labeler_engines.py). This script measures the
two remaining levers side by side:

1. Graph speed, 1 thread, the same rows, rounds interleaved (load falls on all alike): the shipped
   ONNX fp32 and int8 graphs (sft_ray/label/onnx_embed.py), the fp32 graph after onnxruntime's BERT
   optimizer (`onnxruntime.transformers.optimizer`, model_type bert: fused Attention,
   SkipLayerNormalization, BiasGelu, EmbedLayerNormalization) and that graph with every MatMul int8.
   Embedding agreement is the mean cosine of the last layer's pooled vectors with fp32's.
2. Depth: the topic head fitted (as the build fits it: `fit_head`, the 1,000-row seed) on the mean-
   pooled output of each encoder layer, and held-out accuracy. Stopping the encoder at layer k costs
   about k/6 of the compute, so this is the accuracy price of a shallower labeler.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from transformers import AutoConfig, AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import load_average, table, topic_seed_and_held_out
from sft_ray.config import LabelConfig
from sft_ray.label.classifier import fit_head
from sft_ray.label.embed import make_embedder
from sft_ray.label.onnx_embed import FP32, INT8, onnx_dir


def _optimized(fp32: Path, out: Path, cfg) -> dict[str, Path]:
    """onnxruntime's BERT optimizer on the shipped fp32 graph, and that graph with every MatMul int8."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model
    model = optimize_model(str(fp32), model_type="bert", num_heads=cfg.num_attention_heads, hidden_size=cfg.hidden_size, opt_level=1)
    fused = {k: v for k, v in model.get_fused_operator_statistics().items() if v}
    print(f"onnxruntime BERT optimizer fused: {fused}\n")
    model.save_model_to_file(str(out / "fused.onnx"))
    quantize_dynamic(str(out / "fused.onnx"), str(out / "fused-int8.onnx"), weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul", "Attention"],
                     extra_options={"MatMulConstBOnly": True, "DefaultTensorType": 1})  # 1 = FLOAT: fused ops lack inferred types
    return {"fused": out / "fused.onnx", "fused-int8 (all MatMuls)": out / "fused-int8.onnx"}


def _session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads, opts.log_severity_level = 1, 1, 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=2000, help="held-out AG News rows")
    ap.add_argument("--rounds", type=int, default=4, help="interleaved rounds (chunks of the rows)")
    args = ap.parse_args()

    spec, seed, texts, gold, names = topic_seed_and_held_out(args.rows)
    print(f"# Labeler ceiling: {len(seed.texts)} seed rows, {len(texts)} held-out AG News rows ({spec.path}); "
          f"load average before: {load_average()}\n")

    # 1. graph speed
    folder = onnx_dir()
    config = AutoConfig.from_pretrained(folder)
    tok = AutoTokenizer.from_pretrained(folder)  # the export's own tokenizer (no session needed for it)
    with tempfile.TemporaryDirectory() as tmp:
        graphs = {"onnx fp32 (shipped)": folder / FP32, "onnx int8 (shipped)": folder / INT8} | _optimized(folder / FP32, Path(tmp), config)
        sessions = {k: _session(p) for k, p in graphs.items()}
        batch = LabelConfig().embed_batch_size
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # length-sorted, as the embedders batch

        def run(sess, idx):
            names_in = [i.name for i in sess.get_inputs()]
            out = []
            for s in range(0, len(idx), batch):
                enc = tok([texts[i] for i in idx[s : s + batch]], padding=True, truncation=True, max_length=256, return_tensors="np")
                out.append(sess.run(None, {k: enc[k].astype(np.int64) for k in names_in})[0][:, -1])
            return np.concatenate(out)

        cpu = dict.fromkeys(sessions, 0.0)
        vecs = {k: np.zeros((len(texts), config.hidden_size), np.float32) for k in sessions}
        keys = list(sessions)
        for r, chunk in enumerate(np.array_split(np.array(order), args.rounds)):
            for k in keys[r % len(keys):] + keys[: r % len(keys)]:
                c = time.process_time()
                vecs[k][chunk] = run(sessions[k], list(chunk))
                cpu[k] += time.process_time() - c
    ref = keys[0]
    body = [[k, round(len(texts) / cpu[k], 1), round(cpu[ref] / cpu[k], 2), round(float((vecs[k] * vecs[ref]).sum(1).mean()), 5)] for k in keys]
    print(table(["graph", "docs/CPU-s", "x onnx fp32", "cosine to fp32"], body))

    # 2. depth
    emb = make_embedder(engine="torch", num_threads=1)
    layers = tuple(range(config.num_hidden_layers + 1))  # 0 = embeddings
    xs = emb.encode(seed.texts, batch, layers=layers).reshape(len(seed.texts), len(layers), -1)
    xh = emb.encode(texts, batch, layers=layers).reshape(len(texts), len(layers), -1)
    body, top = [], None
    for layer in reversed(layers[1:]):
        head = fit_head(xs[:, layer], seed.labels, seed.label_names, folds=spec.calibration_folds, seed=spec.sample_seed)
        acc = 100 * float((np.array([names.index(p) for p in head.predict(xh[:, layer])[0]]) == gold).mean())
        top = acc if top is None else top
        body.append([layer, f"{layer}/{layers[-1]}", round(acc, 2), round(acc - top, 2)])
    print("\n" + table(["features from layer", "encoder compute", "topic acc %", "vs last layer (pts)"], body))
    print(f"\nload average after: {load_average()}")


if __name__ == "__main__":
    main()
