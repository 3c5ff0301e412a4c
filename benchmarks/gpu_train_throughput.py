"""Training throughput and model FLOPs utilisation (MFU) on one GPU, packing on vs off.

Two steps, because the GPU machine has no Ray, no tokenizer files and no network:

    # here (CPU): tokenize the demo's SFT train split exactly as training does (chat template,
    # assistant-only labels) and save the token ids
    python benchmarks/gpu_train_throughput.py prepare --sft runs/demo/sft/train --out .gpu/sft_tokens.npz
    # there (GPU): time the training step of sft_ray's loop on those tokens
    python benchmarks/gpu_train_throughput.py run --data .gpu/sft_tokens.npz --json out.json

The step is the training loop's own recipe (loop.py): fp32 master weights and AdamW state, bf16
autocast, SDPA attention, `loss.token_loss_sum` (fp32 loss on supervised positions only), batches
from `pack.collate_packed` (rows of `--seq-len` tokens, per-example position ids, block-diagonal
attention) or `pack.collate_padded` (one example per row, padded to the batch's longest). Both modes
get the same number of *real* tokens per step, so tokens/s compare directly.

Models are built from config files with random weights (no hub here): SmolLM2-135M's shape
(HuggingFaceTB/SmolLM2-135M config.json) and a ~1B Llama (Llama-3.2-1B's layer shape, SmolLM2's
49k vocabulary so the same token ids apply). Weights do not change speed.

MFU = model FLOPs per second / peak, with model FLOPs = 6 x (non-embedding params + LM head) per
real token plus causal attention 12 x layers x hidden x context per token (Chowdhery et al. 2022,
PaLM, appendix B), counting only real tokens (padding is waste, not work). Peak: 989 TFLOP/s, the
H100/H200 SXM dense bf16 datasheet figure (~790 measured for a large plain matmul on this machine).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PEAK_TFLOPS = 989.0

MODELS = {
    # HuggingFaceTB/SmolLM2-135M config.json
    "smollm2-135m": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                         num_key_value_heads=3, tie_word_embeddings=True, rope_theta=100000.0),
    # meta-llama/Llama-3.2-1B layer shape with the SmolLM2 vocabulary
    "llama-1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                     num_key_value_heads=8, tie_word_embeddings=True, rope_theta=500000.0),
    # smoke test of this script on CPU (--device cpu --models tiny)
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, tie_word_embeddings=True),
}
VOCAB = 49152


# ------------------------------------------------------------------------------------ prepare (CPU)
def prepare(sft: str, out: str, model: str, max_seq_len: int) -> None:
    import pyarrow.dataset as pads

    from train_throughput import tokenize_all  # benchmarks/ is this script's folder, first on sys.path

    from sft_ray.models import load_tokenizer, resolve_model

    tok = load_tokenizer(resolve_model(model))
    rows = pads.dataset(sft, format="parquet").to_table(columns=["messages"]).to_pylist()
    ids, labels = tokenize_all(tok, rows, max_seq_len)
    lengths = np.array([len(x) for x in ids])
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, ids=np.concatenate(ids), labels=np.concatenate(labels), lengths=lengths)
    print(f"{len(ids)} examples, {lengths.sum()} tokens, mean {lengths.mean():.1f}, max {lengths.max()} -> {out}")


# ---------------------------------------------------------------------------------------- run (GPU)
def _examples(path: str):
    with np.load(path) as d:  # each d[key] access decompresses the array again: read each once
        flat_ids, flat_labels, lengths = d["ids"], d["labels"], d["lengths"]
    offs = np.concatenate([[0], np.cumsum(lengths)])
    ids = [flat_ids[offs[i]:offs[i + 1]] for i in range(len(offs) - 1)]
    labels = [flat_labels[offs[i]:offs[i + 1]] for i in range(len(offs) - 1)]
    return ids, labels


def _batches(ids, labels, packed: bool, seq_len: int, rows_per_step: int, n_steps: int, seed: int):
    """n_steps batches (numpy dicts) with the same real tokens per step in both modes: packed, the
    step is `rows_per_step` packed rows; unpadded, it is randomly ordered examples up to the same
    token count (a random batch, as the loop's shuffled stream gives, not the length-sorted order
    best-fit decreasing leaves inside a packed row)."""
    from sft_ray.train.pack import collate_packed, collate_padded, pack_examples

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(ids))
    rows = pack_examples([ids[i] for i in order], [labels[i] for i in order], seq_len)
    rng.shuffle(rows)
    out, cursor, ex_cursor = [], 0, 0
    for _ in range(n_steps):
        chunk = rows[cursor:cursor + rows_per_step]
        cursor += rows_per_step
        target = sum(len(r["input_ids"]) for r in chunk)
        if packed:
            b = collate_packed({k: [r[k] for r in chunk] for k in ("input_ids", "labels", "position_ids", "n_examples")}
                               | {"drop_code": [0] * len(chunk)}, pad_id=0)
            lengths = [n for r in chunk for n in np.diff(list(np.flatnonzero(r["position_ids"] == 0))
                                                         + [len(r["input_ids"])])]
        else:
            sel, got = [], 0
            while got < target:
                k = order[ex_cursor % len(order)]
                ex_cursor += 1
                sel.append(k)
                got += len(ids[k])
            b = collate_padded({"input_ids": [ids[k] for k in sel], "labels": [labels[k] for k in sel],
                                "drop_code": [0] * len(sel)}, pad_id=0)
            lengths = [len(ids[k]) for k in sel]
        # causal attention context summed over real tokens: n(n+1)/2 per example
        b["attn_context"] = float(sum(n * (n + 1) / 2 for n in lengths))
        out.append(b)
    return out


def _check_packed_equals_unpacked(model, ids, labels, device, amp) -> float:
    """Relative difference of the summed loss of 8 examples, packed vs one per row, in bf16 on GPU."""
    import torch

    from sft_ray.train.loss import token_loss_sum
    from sft_ray.train.pack import collate_packed, collate_padded, pack_examples

    sel = list(range(8))
    rows = pack_examples([ids[i] for i in sel], [labels[i] for i in sel], 2048)
    p = collate_packed({k: [r[k] for r in rows] for k in ("input_ids", "labels", "position_ids", "n_examples")}
                       | {"drop_code": [0] * len(rows)}, pad_id=0)
    u = collate_padded({"input_ids": [ids[i] for i in sel], "labels": [labels[i] for i in sel],
                        "drop_code": [0] * 8}, pad_id=0)
    with torch.no_grad():
        lp, _ = token_loss_sum(model, {k: torch.as_tensor(v).to(device) for k, v in p.items()}, amp())
        lu, _ = token_loss_sum(model, {k: torch.as_tensor(v).to(device) for k, v in u.items()}, amp())
    return abs(lp.item() - lu.item()) / abs(lu.item())


def run(data: str, seq_len: int, steps: int, warmup: int, models: list[str], json_out: str | None,
        device_name: str = "cuda", rows_per_step: int | None = None,
        variants: tuple[str, ...] = ("packed:sdpa:foreach", "padded:sdpa:foreach")) -> list[dict]:
    """variants: "packed|padded:<attn_implementation>:foreach|fused" (AdamW implementation)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from sft_ray.train.loss import token_loss_sum

    device = torch.device(device_name)
    torch.backends.cuda.matmul.allow_tf32 = True
    gpu = device.type == "cuda"

    def amp():
        return torch.autocast("cuda", dtype=torch.bfloat16) if gpu else torch.autocast("cpu", enabled=False)

    def sync():
        if gpu:
            torch.cuda.synchronize()
    ids, labels = _examples(data)
    print(f"{torch.cuda.get_device_name(0) if gpu else 'CPU'}, torch {torch.__version__}; {len(ids)} SFT examples, "
          f"mean {np.mean([len(x) for x in ids]):.0f} tokens", flush=True)
    results = []
    for name in models:
        shape = MODELS[name]
        per_step = rows_per_step or (16 if name == "smollm2-135m" else 8)
        for variant in variants:
            mode, attn, optim = variant.split(":")
            packed = mode == "packed"
            torch.manual_seed(0)
            cfg = LlamaConfig(vocab_size=VOCAB, max_position_embeddings=8192, use_cache=False,
                              attn_implementation=attn, **shape)
            with device:  # initialise on the device: a 1B fp32 init on the host takes tens of seconds
                model = LlamaForCausalLM(cfg)
            model.train()
            n_params = sum(p.numel() for p in model.parameters())
            # matmul params: non-embedding + the (tied) LM head = all params when tied; the embedding
            # lookup itself does no FLOPs.
            n_dense = n_params
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), fused=optim == "fused",
                                    foreach=optim == "foreach")
            check = _check_packed_equals_unpacked(model, ids, labels, device, amp) if packed else None
            batches = _batches(ids, labels, packed, seq_len, per_step, warmup + steps, seed=0)
            if gpu:
                torch.cuda.reset_peak_memory_stats()
            real_tokens = slots = 0
            attn_flops = 0.0
            for i, b in enumerate(batches):
                if i == warmup:
                    sync()
                    t0 = time.perf_counter()
                tb = {k: torch.as_tensor(v).to(device, non_blocking=True) for k, v in b.items() if k != "attn_context"}
                loss, n_sup = token_loss_sum(model, tb, amp())
                (loss / n_sup).backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                opt.zero_grad(set_to_none=True)
                if i >= warmup:
                    real_tokens += int(b["num_tokens"])
                    slots += b["input_ids"].size
                    attn_flops += 12.0 * cfg.num_hidden_layers * cfg.hidden_size * b["attn_context"]
            sync()
            wall = time.perf_counter() - t0
            flops = 6.0 * n_dense * real_tokens + attn_flops
            row = {"model": name, "params_M": round(n_params / 1e6, 1), "packing": packed, "attn": attn, "optim": optim,
                   "seq_len": seq_len if packed else "longest in batch",
                   "tokens_per_step": real_tokens // steps, "real_token_share": round(real_tokens / slots, 4),
                   "tokens_per_s": round(real_tokens / wall), "step_s": round(wall / steps, 4),
                   "tflops": round(flops / wall / 1e12, 1), "mfu": round(flops / wall / 1e12 / PEAK_TFLOPS, 4),
                   "peak_mem_GiB": round(torch.cuda.max_memory_allocated() / 2**30, 1) if gpu else None,
                   "packed_vs_unpacked_loss_rel_diff": check}
            results.append(row)
            print(json.dumps(row), flush=True)
            del model, opt
            if gpu:
                torch.cuda.empty_cache()
    print()
    print(f"{'model':14} {'packing':8} {'attention':15} {'AdamW':8} {'real tok share':>14} {'tokens/s':>10} "
          f"{'TFLOP/s':>8} {'MFU':>6} {'mem GiB':>8}")
    for r in results:
        print(f"{r['model']:14} {str(r['packing']):8} {r['attn']:15} {r['optim']:8} {r['real_token_share']:>14.3f} "
              f"{r['tokens_per_s']:>10,} "
              f"{r['tflops']:>8.1f} {r['mfu']:>6.1%} {r['peak_mem_GiB'] or 0:>8.1f}")
    base = variants[0].split(":")[1:]
    for name in models:
        same = {r["packing"]: r for r in results if r["model"] == name and [r["attn"], r["optim"]] == base}
        if True in same and False in same:
            print(f"{name}: packing speed-up {same[True]['tokens_per_s'] / same[False]['tokens_per_s']:.2f}x "
                  f"({'/'.join(base)}); packed vs unpacked loss rel. diff "
                  f"{same[True]['packed_vs_unpacked_loss_rel_diff']:.2e}")
    if json_out:
        Path(json_out).write_text(json.dumps(results, indent=1))
    return results


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--sft", default="runs/demo/sft/train")
    p.add_argument("--out", default=".gpu/sft_tokens.npz")
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--max-seq-len", type=int, default=2048)
    r = sub.add_parser("run")
    r.add_argument("--data", default=".gpu/sft_tokens.npz")
    r.add_argument("--seq-len", type=int, default=2048)
    r.add_argument("--steps", type=int, default=12)
    r.add_argument("--warmup", type=int, default=3)
    r.add_argument("--models", default="smollm2-135m,llama-1b")
    r.add_argument("--json")
    r.add_argument("--device", default="cuda")
    r.add_argument("--variants", default="packed:sdpa:foreach,padded:sdpa:foreach",
                   help="comma list of packed|padded:<attn_implementation>:foreach|fused; the first one's "
                        "attention/optimizer pair is the one packing on/off is compared with")
    r.add_argument("--rows-per-step", type=int, default=None, help="packed rows per step (default 16 for 135M, 8 else)")
    a = ap.parse_args(argv)
    if a.cmd == "prepare":
        prepare(a.sft, a.out, a.model, a.max_seq_len)
    else:
        run(a.data, a.seq_len, a.steps, a.warmup, a.models.split(","), a.json, a.device, a.rows_per_step,
            tuple(a.variants.split(",")))


if __name__ == "__main__":
    main()
