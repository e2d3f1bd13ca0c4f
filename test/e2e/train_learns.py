#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""End to end: `llmpc run` trains the tiny model on the King James Bible and it learns.

Checks what a run must produce (metrics.jsonl with one row per step, eval rows, a
safetensors checkpoint holding every parameter of plan.json, samples) and that the last
validation loss is below 75% of the first. The first is near ln(vocab) = ln(512) = 6.24
for a freshly initialised model (weights ~ N(0, 0.02) give near-uniform logits); a model
that learned nothing stays there.
"""
import argparse
import json
import math
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_llama  # noqa: E402
import subprocess  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llmpc", required=True)
    ap.add_argument("file")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as run:
        subprocess.run([args.llmpc, "run", args.file, "--run-dir", run, "--samples", "2"], check=True)
        plan = json.load(open(os.path.join(run, "plan.json")))
        rows = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl"))]
        train = [r for r in rows if "loss" in r]
        evals = [r for r in rows if "val_loss" in r]
        assert [r["step"] for r in train] == list(range(1, plan["steps"] + 1)), "one row per step"
        assert all(math.isfinite(r["loss"]) for r in train)
        first, last = evals[0]["val_loss"], evals[-1]["val_loss"]
        print(f"val loss {first:.3f} -> {last:.3f} ({100 * last / first:.0f}%), ln(vocab) = {math.log(plan['vocab']):.3f}")
        assert abs(first - math.log(plan["vocab"])) < 0.1 * math.log(plan["vocab"]), "first eval near ln(vocab)"
        assert last < 0.75 * first, "the model did not learn"
        tensors, _ = torch_llama.read_safetensors(os.path.join(run, "checkpoint", "model.safetensors"))
        for p in plan["params"]:
            assert list(tensors[p["name"]].shape) == p["shape"], p["name"]
        samples = open(os.path.join(run, "samples.txt")).read()
        assert len(samples.split()) > 10, "samples were written"
        print(samples)


if __name__ == "__main__":
    main()
