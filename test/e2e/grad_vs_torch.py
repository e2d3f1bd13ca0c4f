#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Compares llmp's compiled loss and every parameter gradient with PyTorch on the same weights.

1. `llmpc grads FILE -o out.safetensors` initialises the model from the stage's seed, takes the
   first training batch and runs the compiled train_step once; it writes the weights, the
   batch, the loss and every gradient.
2. The model's hyper-parameters (heads, kv_heads, RMSNorm eps, RoPE theta) are read from the
   llmp IR that `llmpc emit --compile-to=llmp` prints, so this file restates none of the
   stdlib. ctest runs it on Inputs/tiny.llmp and on Inputs/tiny_gqa.llmp (grouped-query
   attention, 4 query heads sharing 2 key/value heads).
3. test/e2e/torch_llama.py, an independent implementation, recomputes the loss and the
   gradients with autograd in float64 on the same weights and batch.
Passes when the loss and each gradient agree to a relative error (||a - b|| / ||b||) of at
most 1e-4, the bound of issue #2.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_llama  # noqa: E402

TOLERANCE = 1e-4


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llmpc", required=True)
    ap.add_argument("file")
    args = ap.parse_args()

    hyper = torch_llama.model_hyper(args.llmpc, args.file)
    heads, kv_heads, eps, theta = hyper["heads"], hyper["kv_heads"], hyper["eps"], hyper["theta"]

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "grads.safetensors")
        subprocess.run([args.llmpc, "grads", args.file, "-o", out, "--run-dir", tmp], check=True)
        tensors, _ = torch_llama.read_safetensors(out)

    names = [n for n in tensors if n not in ("tokens", "targets", "loss") and not n.startswith("grad.")]
    params = {n: torch.tensor(tensors[n], dtype=torch.float64, requires_grad=True) for n in names}
    tokens = torch.tensor(tensors["tokens"], dtype=torch.int64)
    targets = torch.tensor(tensors["targets"], dtype=torch.int64)
    logits = torch_llama.forward(params, tokens, heads, eps, theta, kv_heads)
    loss = torch_llama.next_token_loss(logits, targets)
    loss.backward()

    failures = 0
    llmp_loss = float(tensors["loss"].reshape(-1)[0])
    rel = abs(llmp_loss - loss.item()) / abs(loss.item())
    print(f"loss: llmp {llmp_loss:.7f} torch {loss.item():.7f} rel {rel:.2e}")
    failures += rel > TOLERANCE
    worst = 0.0
    for n in names:
        ref = params[n].grad.numpy()
        got = tensors["grad." + n].astype(np.float64)
        err = np.linalg.norm(got - ref) / max(np.linalg.norm(ref), 1e-30)
        worst = max(worst, err)
        status = "ok" if err <= TOLERANCE else "FAIL"
        failures += err > TOLERANCE
        print(f"{status:4} grad.{n:24} shape {list(ref.shape)!s:16} rel {err:.2e}")
    print(f"{len(names)} gradients, worst relative error {worst:.2e} (tolerance {TOLERANCE:g})")
    if failures:
        sys.exit(f"grad_vs_torch: {failures} mismatches")


if __name__ == "__main__":
    main()
