#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""End to end: a LoRA stage with `precision: bf16` stores its frozen linear weights in bf16
(llmp-bf16-base; runtime/Frozen.h Storage::BF16) and trains like the same stage in fp32.

Two `llmpc run`s of a LoRA `sft` stage on SmolLM2-135M-Instruct (its Q4_1 GGUF; rank 8 on
every linear layer, a few steps on FAQ conversations, packed rows of 64 tokens), identical
but for `precision:`. Checks:
1. The plan (the run's plan.json): every frozen linear weight (the 2-D q/k/v/o, gate/up/down
   projections of the 30 blocks) takes exactly half its fp32 bytes (2 per element), the
   embedding (tied to the head) and the norms keep 4 per element, and frozen_bytes is the
   64-byte aligned sum computed here by hand from the shapes; `llmpc check` prints the same
   frozen figure. memory.json's plan has the same frozen bytes.
2. Losses: every bf16 loss within 2% of the fp32 one (this test's tolerance; bf16 rounds
   each operand of the matrix products to 8 significant bits, relative 2^-9), and on a CPU
   with bf16 dot products not equal to them (the bf16 products ran).
3. On a CPU with bf16 dot products, the computed step heap (llmp-step-heap-peak, which counts
   the 2 MK bytes of op(A)'s bf16 copy at each product with a stored bf16 B, 4 KN where B is
   widened) equals the measured one to the byte.
Skips (exit 0 with a message) without the GGUF (scripts/setup.sh --models) or the FAQ
(apt-get install debian-faq).
"""
import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import FAQ, file_or_skip, run  # noqa: E402
from precision_bf16 import cpu_has_bf16  # noqa: E402
from sft_smollm2 import faq_pairs  # noqa: E402
from smollm2_gguf import find_smollm2_gguf  # noqa: E402

SEQ, BATCH, STEPS, SEED, RANK = 64, 2, 4, 3, 8
LINEAR = ("wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down")
TOLERANCE = 0.02  # relative, per step loss


def source(gguf, data, precision):
    return f"""import std.models.llama
import std.losses
tokenizer smol_tok = from_gguf("{gguf}")
model smol = from_gguf("{gguf}", context: {SEQ})
dataset faq = jsonl("{data}", format: chat(messages: "messages", train_on: assistant), split: 0.9)
stage lora : sft {{
  model: smol; tokenizer: smol_tok; data: faq; packing: true
  adapter: lora(rank: {RANK}, alpha: {2 * RANK}, targets: all_linear)
  optimizer: adamw(lr: 2e-3, weight_decay: 0.0)
  precision: {precision}
  batch: {BATCH} x {SEQ}; steps: {STEPS}; seed: {SEED}
  eval: every {STEPS + 100}
}}
pipeline main = lora
"""


def train(llmpc, tmp, gguf, data, precision):
    """(losses, plan.json, memory.json, `llmpc check` output) of the stage in `precision`."""
    path = os.path.join(tmp, f"{precision}.llmp")
    with open(path, "w") as f:
        f.write(source(gguf, data, precision))
    run_dir = os.path.join(tmp, precision)
    run([llmpc, "run", path, "--run-dir", run_dir, "--samples", "0", "--progress", "quiet"])
    rows = [json.loads(l) for l in open(os.path.join(run_dir, "metrics.jsonl"))]
    losses = [r["loss"] for r in rows if "loss" in r and "tokens_per_s" in r]
    plan = json.load(open(os.path.join(run_dir, "plan.json")))
    memory = json.load(open(os.path.join(run_dir, "memory.json")))
    check = run([llmpc, "check", path])
    return losses, plan, memory, check


def frozen_params(plan):
    return [p for p in plan["params"] if p.get("frozen")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llmpc", required=True)
    args = ap.parse_args()
    if not file_or_skip(FAQ, "apt-get install debian-faq"):
        return 0
    with tempfile.TemporaryDirectory(prefix="llmp_bf16_base_") as tmp:
        gguf = find_smollm2_gguf(tmp)
        if not gguf:
            print("SKIP: no SmolLM2 GGUF (scripts/setup.sh --models)")
            return 0
        data = os.path.join(tmp, "faq.jsonl")
        with open(data, "w", encoding="utf-8") as f:
            for q, a in faq_pairs(24):
                f.write(json.dumps({"messages": [{"role": "user", "content": q},
                                                 {"role": "assistant", "content": a}]},
                                   ensure_ascii=False) + "\n")
        fp32, plan32, mem32, _ = train(args.llmpc, tmp, gguf, data, "fp32")
        bf16, plan16, mem16, check16 = train(args.llmpc, tmp, gguf, data, "bf16")

    # 1. The frozen layout, by hand: argument order, each tensor at a multiple of 64 bytes.
    base32, base16 = frozen_params(plan32), frozen_params(plan16)
    assert [p["name"] for p in base32] == [p["name"] for p in base16]
    cursor, converted = 0, 0
    for p32, p16 in zip(base32, base16):
        linear = p16["name"].split(".")[-1] in LINEAR and len(p16["shape"]) == 2
        assert p32["byte_size"] == 4 * p32["numel"], p32
        want = 2 * p16["numel"] if linear else 4 * p16["numel"]
        assert p16["byte_size"] == want, (p16["name"], p16["byte_size"], want)
        offset = (cursor + 63) // 64 * 64
        assert p16["byte_offset"] == offset, (p16["name"], p16["byte_offset"], offset)
        cursor = offset + want
        converted += linear
    assert converted == 7 * 30, converted  # SmolLM2-135M: 30 blocks of 7 linear weights
    assert plan16["frozen_bytes"] == cursor, (plan16["frozen_bytes"], cursor)
    assert mem16["plan"]["frozen"] == cursor, mem16["plan"]
    saved = plan32["frozen_bytes"] - plan16["frozen_bytes"]
    print(f"frozen base: fp32 {plan32['frozen_bytes']:,} bytes, bf16 {plan16['frozen_bytes']:,} "
          f"({converted} linear weights halved, {saved / 2**20:.1f} MiB saved)")
    assert f"frozen {cursor:,}," in check16, check16

    # 2. Losses.
    assert len(fp32) == len(bf16) == STEPS, (fp32, bf16)
    worst = max(abs(b - f) / f for b, f in zip(bf16, fp32))
    print(f"losses fp32 {fp32}\n       bf16 {bf16}\nlargest relative difference {worst:.2e}")
    assert worst < TOLERANCE, f"bf16 losses differ from fp32 by up to {worst:.2e}"

    # 3. The step heap.
    heap, measured = mem16["plan"]["step_heap"], mem16["measured"]["step_heap_peak"]
    print(f"bf16 step heap: {heap:,} bytes computed, {measured:,} measured")
    if cpu_has_bf16():
        assert bf16 != fp32, "bf16 losses are the fp32 ones: the bf16 products did not run"
        assert measured == heap, "computed step heap is not the measured one"
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
