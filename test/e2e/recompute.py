#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""End to end: `recompute: attention | layers` trains exactly as `recompute: none` with a
smaller step heap.

Runs the three stages of Inputs/tiny_recompute.llmp (same model, data and seed; they differ
only in `recompute`) for 20 steps each and checks:
- the per-step training and validation losses, gradient norms and the final checkpoint's
  weights of
  `attention` and `layers` equal those of `none` bit for bit (the recomputed forward ops are
  the same ops on the same inputs, llmp-recompute; the reference is the `none` run itself);
- the computed step heap (the plan's `step_heap`, llmp-step-heap-peak) shrinks: layers <
  attention < none;
- each stage's computed step heap equals its measured peak (memory.json) to the byte.
"""
import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_llama  # noqa: E402
from common import KJV, file_or_skip, run  # noqa: E402


def train(llmpc, file, stage, run_dir):
    """Per-step losses (training and validation rows of metrics.jsonl), the checkpoint's
    tensors (name -> bytes) and memory.json of `stage`."""
    run([llmpc, "run", file, "--stage", stage, "--run-dir", run_dir, "--samples", "0"])
    rows = [json.loads(l) for l in open(os.path.join(run_dir, "metrics.jsonl"))]
    losses = [(r["step"], r.get("loss"), r.get("val_loss"), r.get("grad_norm")) for r in rows]
    tensors, _ = torch_llama.read_safetensors(os.path.join(run_dir, "checkpoint", "model.safetensors"))
    memory = json.load(open(os.path.join(run_dir, "memory.json")))
    return losses, {name: t.tobytes() for name, t in tensors.items()}, memory


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llmpc", required=True)
    ap.add_argument("file")
    args = ap.parse_args()
    if not file_or_skip(KJV, "scripts/setup.sh installs bibledit-data"):
        return
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for stage in ("none", "attention", "layers"):
            runs[stage] = train(args.llmpc, args.file, stage, os.path.join(tmp, stage))
    losses, weights, _ = runs["none"]
    train_losses = [l[1] for l in losses if l[1] is not None]
    assert len(train_losses) == 20, losses
    assert train_losses[-1] < 0.95 * train_losses[0], "the model did not learn"
    heaps = {}
    for stage, (l, w, memory) in runs.items():
        computed, measured = memory["plan"]["step_heap"], memory["measured"]["step_heap_peak"]
        heaps[stage] = computed
        t = [x[1] for x in l if x[1] is not None]
        print(f"{stage}: loss {t[0]:.6f} -> {t[-1]:.6f}; step heap {computed} bytes "
              f"computed, {measured} measured")
        assert measured == computed, f"{stage}: computed step heap {computed} != measured {measured}"
        if stage != "none":
            assert l == losses, f"{stage}: losses differ from recompute: none"
            assert w == weights, f"{stage}: weights differ from recompute: none"
    assert heaps["layers"] < heaps["attention"] < heaps["none"], heaps
    print("attention and layers: losses and weights equal none bit for bit")


if __name__ == "__main__":
    main()
