#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Int8 per-channel and int4 group-wise quantization (kernels/cpu/Quant, the `deploy`
stage's formats) against reference libraries, on random weights and real SmolLM2 matrices
(dequantized from its GGUF by the `gguf` package):
  - int8: codes, per-row absmax and dequantized weights identical to bitsandbytes'
    `int8_vectorwise_quant` / `int8_vectorwise_dequant` (LLM.int8() row-wise absmax);
  - int4 with groups of 32: codes identical to gguf-py's Q4_0 quantizer (llama.cpp's
    reference rounding) and our fp32 scale rounded to fp16 equal to its stored scale;
    other group sizes (64, 192) against a numpy transcription of the same rounding.
Skips (exit 0 with a message) without torch/bitsandbytes/gguf; the SmolLM2 part without
the model. Usage: int_quant.py --quantize BIN
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

from smollm2_gguf import find_smollm2_gguf

SMOLLM_TENSORS = ["blk.0.attn_q.weight", "blk.3.ffn_up.weight", "blk.29.ffn_down.weight"]


def run_ours(binary, mode, w, args, tmp):
    d = tempfile.mkdtemp(dir=tmp)
    w.astype(np.float32).tofile(os.path.join(d, "in.f32"))
    subprocess.run([binary, mode, os.path.join(d, "in.f32")] + [str(a) for a in args] + [d],
                   capture_output=True, check=True)
    return lambda name, dtype: np.fromfile(os.path.join(d, name), dtype=dtype)


def q4_codes_numpy(w, group):
    """ggml's quantize_row_q4_0_ref rounding with an fp32 scale, in numpy."""
    g = w.reshape(-1, group)
    m = np.take_along_axis(g, np.abs(g).argmax(axis=-1, keepdims=True), axis=-1)
    d = (m / np.float32(-8)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(d == 0, np.float32(0), np.float32(1) / d).astype(np.float32)
    codes = np.minimum(np.float32(15), np.trunc(g * inv + np.float32(8.5))).astype(np.uint8)
    return codes.reshape(-1), d.reshape(-1)


def check(binary, name, w, tmp, F, torch, gguf, failures):
    rows, cols = w.shape
    # int8 vs bitsandbytes.
    rd = run_ours(binary, "int8", w, [rows, cols], tmp)
    q, stats, _ = F.int8_vectorwise_quant(torch.from_numpy(w.copy()))
    if not np.array_equal(rd("q.i8", np.int8), q.numpy().reshape(-1)):
        failures.append(f"{name} int8: codes differ")
    if not np.array_equal(rd("absmax.f32", np.float32), stats.numpy()):
        failures.append(f"{name} int8: absmax differs")
    ref = F.int8_vectorwise_dequant(q, stats).numpy().reshape(-1)
    if not np.array_equal(rd("dequant.f32", np.float32), ref):
        failures.append(f"{name} int8: dequantized values differ")
    err8 = np.abs(rd("dequant.f32", np.float32) - w.reshape(-1)).mean() / np.abs(w).mean()
    # int4, groups of 32, vs gguf-py's Q4_0: per block 2 bytes of fp16 scale, then 16 bytes
    # holding codes j (low nibble) and j + 16 (high nibble).
    rd4 = run_ours(binary, "int4", w, [rows, cols, 32], tmp)
    packed = rd4("packed.u8", np.uint8)
    ours = np.stack([packed >> 4, packed & 15], axis=-1).reshape(-1)
    blocks = gguf.quants.quantize(w, gguf.GGMLQuantizationType.Q4_0).reshape(-1, 18)
    qs = blocks[:, 2:]
    theirs = np.concatenate([qs & 15, qs >> 4], axis=-1).reshape(-1)
    if not np.array_equal(ours, theirs):
        failures.append(f"{name} int4/32: {int((ours != theirs).sum())} codes differ from Q4_0's")
    d16 = blocks[:, :2].copy().view(np.float16).reshape(-1)
    if not np.array_equal(rd4("scales.f32", np.float32).astype(np.float16), d16):
        failures.append(f"{name} int4/32: scales differ from Q4_0's fp16 scales")
    err4 = None
    for group in (32, 64, 192):  # SmolLM2 input dimensions are 576 and 1536
        rdg = run_ours(binary, "int4", w, [rows, cols, group], tmp)
        packed = rdg("packed.u8", np.uint8)
        ours = np.stack([packed >> 4, packed & 15], axis=-1).reshape(-1)
        codes, d = q4_codes_numpy(w, group)
        if not np.array_equal(ours, codes) or not np.array_equal(rdg("scales.f32", np.float32), d):
            failures.append(f"{name} int4/{group}: differs from the numpy reference")
        deq = ((codes.reshape(-1, group).astype(np.float32) - 8) * d[:, None]).reshape(-1)
        if not np.array_equal(rdg("dequant.f32", np.float32), deq):
            failures.append(f"{name} int4/{group}: dequantized values differ")
        if group == 64:
            err4 = np.abs(deq - w.reshape(-1)).mean() / np.abs(w).mean()
    print(f"{name:26s} {rows}x{cols}: mean |error| / mean |w| int8 {err8:.4f}, int4/64 {err4:.4f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quantize", required=True, help="the llmp-quantize test driver")
    args = ap.parse_args()
    try:
        import torch
        import bitsandbytes.functional as F
        import gguf
    except ImportError as e:
        print(f"SKIP: {e.name} is not installed (scripts/setup.sh --tests installs it)")
        return 0
    failures = []
    with tempfile.TemporaryDirectory(prefix="llmp_intq_") as tmp:
        rng = np.random.default_rng(1)
        check(args.quantize, "random normal", (rng.standard_normal((96, 384)) * 0.05).astype(np.float32),
              tmp, F, torch, gguf, failures)
        model = find_smollm2_gguf(tmp)
        if not model:
            print("SKIP (SmolLM2 part): no SmolLM2 GGUF (scripts/setup.sh --models)")
        else:
            tensors = {t.name: t for t in gguf.GGUFReader(model).tensors}
            for name in SMOLLM_TENSORS:
                t = tensors[name]
                w = np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32)
                check(args.quantize, "SmolLM2 " + name, w.reshape(w.shape[0], -1), tmp, F, torch, gguf,
                      failures)
    for f in failures:
        print("FAIL:", f)
    print(f"int8/int4 quantization: {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
