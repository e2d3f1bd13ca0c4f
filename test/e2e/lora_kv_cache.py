#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""End to end: a LoRA and a QLoRA stage generate through the compiled prefill_step /
decode_step with a KV cache on their merged weights (`llmpc logits --greedy`, the default
--kv-cache: the model without adapter on W + scale * (B A)^T, the frozen base NF4
dequantized for QLoRA; runtime/Lora.h mergedStageParams) and give the tokens of the
stage's own unmerged forward (--kv-cache=false: one full-window logits_step per token of
the LoRA-rewritten model, x @ W + scale * (x @ A^T) @ B^T, reading the frozen buffer; for
QLoRA through the fused NF4 matmul).

Inputs/tiny_lora_kv.llmp: the tiny llama (context 64) pretrained for a few steps on the
King James Bible; stage `tune` (LoRA rank 4, rsLoRA, on wq, wv, w_down) and stage `qtune`
(QLoRA: NF4 base in blocks of 64 with double quantization, rank 4 on every linear layer).
Their checkpoints are written by this test with random nonzero A and B (B normal instead of
PEFT's zeros, so that the adapter changes the model), in llmp's names and PEFT's layout.

Checks, per stage and prompt:
1. The adapter matters: the stage's logits differ from the pretrained model's by more than
   1e-2 (relative; measured 5e-2 to 1.5e-1 when this test was written).
2. Greedy ids: merged + KV cache equals the unmerged reference token for token (a differing
   token is only accepted where the reference's two best logits are within 1e-4 of each
   other, a tie that rounding may break either way).
3. Logits of every generated token (the prefill's and each decode_step's):
   max |merged - unmerged| / max |unmerged| <= 1e-5. The bound is decode_vs_forward.py's
   for the KV cache against the full forward (fp32 sums in another order); merging adds one
   fp32 rounding of each merged weight (relative 2^-24), far below it (measured 2.9e-7 to
   3.8e-7).
Skips (exit 0 with a message) without numpy/safetensors or the KJV.
"""
import argparse
import os
import shutil
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import KJV, file_or_skip, import_or_skip, rel_err, run  # noqa: E402
from torch_llama import read_safetensors  # noqa: E402

STEPS = 20
RANK = 4
STAGES = {  # stage -> its LoRA targets (all_linear: every matrix but the embedding table)
    "tune": ["wq", "wv", "w_down"],
    "qtune": None,
}
PROMPTS = [
    "And God said",
    "In the beginning God created the heaven and the earth.",
]
NEW = 12
TOLERANCE = 1e-5
TIE = 1e-4


def greedy(llmpc, llmp, stage, tmp, out, extra):
    run([llmpc, "logits", llmp, "--stage", stage, "--greedy", str(NEW), "-o", out]
        + [a for p in PROMPTS for a in ("--prompt", p)] + extra, tmp)
    t, _ = read_safetensors(out)
    return t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llmpc", required=True)
    ap.add_argument("file")
    args = ap.parse_args()
    modules = import_or_skip("safetensors.numpy")
    if not modules or not file_or_skip(KJV, "apt-get install bibledit-data"):
        return
    (safetensors_numpy,) = modules
    llmpc = os.path.abspath(args.llmpc)

    with tempfile.TemporaryDirectory() as tmp:
        # The stages' run directories are the defaults, runs/main/<stage>, under tmp.
        src = os.path.dirname(os.path.abspath(args.file))
        llmp = os.path.basename(args.file)
        for f in (llmp, "tiny_lora.jsonl"):
            shutil.copy(os.path.join(src, f), tmp)
        run([llmpc, "run", llmp, "--stage", "pretrain", "--steps", str(STEPS), "--samples", "0",
             "--progress", "quiet"], tmp)
        base_ckpt = os.path.join(tmp, "runs", "main", "pretrain", "checkpoint")
        base, _ = read_safetensors(os.path.join(base_ckpt, "model.safetensors"))
        plain = greedy(llmpc, llmp, "pretrain", tmp, os.path.join(tmp, "plain.safetensors"), [])

        rng = np.random.default_rng(5)
        for stage, targets in STAGES.items():
            # Random nonzero adapters: A like PEFT's Kaiming-uniform init, B normal.
            adapters = {}
            for name, w in base.items():
                if w.ndim != 2 or name == "embed" or (
                        targets is not None and name.split(".")[-1] not in targets):
                    continue
                fan_in, fan_out = w.shape  # llmp W is [in, out]
                bound = 1 / np.sqrt(fan_in)
                adapters[f"{name}.lora_A"] = rng.uniform(
                    -bound, bound, (RANK, fan_in)).astype(np.float32)
                adapters[f"{name}.lora_B"] = rng.normal(0, 0.2, (fan_out, RANK)).astype(np.float32)
            ckpt = os.path.join(tmp, "runs", "main", stage, "checkpoint")
            os.makedirs(ckpt)
            safetensors_numpy.save_file(adapters, os.path.join(ckpt, "model.safetensors"))
            shutil.copy(os.path.join(base_ckpt, "tokenizer.model"), ckpt)

            merged = greedy(llmpc, llmp, stage, tmp, os.path.join(tmp, stage + ".kv.safetensors"),
                            [])
            ref = greedy(llmpc, llmp, stage, tmp, os.path.join(tmp, stage + ".ref.safetensors"),
                         ["--kv-cache=false"])
            print(f"{stage}: {len(adapters) // 2} adapted weights")
            for i, prompt in enumerate(PROMPTS):
                moved = rel_err(ref[f"logits.{i}"], plain[f"logits.{i}"])
                assert moved > 1e-2, f"{stage}: the adapter barely changes the logits ({moved:.2e})"
                want, got = ref[f"greedy.{i}"], merged[f"greedy.{i}"]
                assert len(want) == NEW and len(got) == NEW, (len(want), len(got))
                want_logits, got_logits = ref[f"greedy_logits.{i}"], merged[f"greedy_logits.{i}"]
                for j in range(NEW):
                    if got[j] != want[j]:
                        top2 = np.sort(want_logits[j])[-2:]
                        assert top2[1] - top2[0] <= TIE, (
                            f"{stage} {prompt!r}: token {j} is {got[j]} merged with the KV cache "
                            f"but {want[j]} unmerged (logit gap {top2[1] - top2[0]:.2e})")
                        break  # the continuations diverge after a broken tie
                else:
                    err = rel_err(got_logits, want_logits)
                    first = rel_err(got_logits[1], want_logits[1])  # the first decode_step
                    print(f"  {prompt!r}: {NEW} greedy ids equal; logits max rel diff {err:.2e} "
                          f"(first decode_step {first:.2e}); the adapter moves them by "
                          f"{moved:.2e}")
                    assert err <= TOLERANCE, f"{stage}: logits differ by {err:.2e} > {TOLERANCE}"


if __name__ == "__main__":
    main()
