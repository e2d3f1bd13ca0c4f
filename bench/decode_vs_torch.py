#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Decode throughput with a KV cache: llmp's compiled prefill_step / decode_step against
PyTorch eager with a KV cache, on the same model, weights, prompts, batch and threads.

Usage: bench/decode_vs_torch.py [--file bench/configs/llama-25m.llmp] [--batches 1,16]
                                [--new 32] [--threads 2] [--repeats 1]

1. `llmpc run FILE --steps 1` writes a checkpoint (and the tokenizer) of FILE's model; the
   weights do not matter for speed, and both sides use the same ones.
2. llmp: `llmpc logits --greedy N --decode-batch B` with B copies of one prompt, for N = new
   and N = 1; the metadata's generate_seconds are the wall times of generation, so
   decode tokens/s = B (new - 1) / (t(new) - t(1)) (the prefill cancels). With --repeats R
   each t is the least of R runs (on a shared machine one slow prefill otherwise swamps a
   fast decode: t(1) came out above t(new)).
3. PyTorch eager (test/e2e/torch_llama.py forward_cached: per-layer caches
   [layers, B, kv_heads, context, head_dim], the new token attending over the cached
   positions): one prefill of the same prompt ids, then new - 1 timed decode steps of B
   tokens, greedy, R times (the fastest counts). Its ids must equal llmp's (both are greedy
   on the same weights).
Prints decode tokens/s of both and their ratio per batch size.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "test", "e2e"))
import torch_llama  # noqa: E402

PROMPT = ("In the beginning God created the heaven and the earth. And the earth was without "
          "form, and void; and darkness was upon the face of the deep.")


def thread_env(threads):
    return dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))


def llmp_generate(args, run_dir, batch, new, out):
    """Runs llmpc logits --repeats times; returns the last run's tensors and the least
    generate_seconds."""
    best = None
    for _ in range(args.repeats):
        tensors, seconds = llmp_generate_once(args, run_dir, batch, new, out)
        best = seconds if best is None else min(best, seconds)
    return tensors, best


def llmp_generate_once(args, run_dir, batch, new, out):
    subprocess.run([args.llmpc, "logits", args.file, "--run-dir", run_dir, "--greedy", str(new),
                    "--decode-batch", str(batch), "--prefill-len", str(args.prefill_len), "-o", out]
                   + ["--prompt", PROMPT] * batch, check=True, capture_output=True,
                   env=thread_env(args.threads))
    tensors, meta = torch_llama.read_safetensors(out)
    return tensors, float(meta["generate_seconds"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--file", default=os.path.join(ROOT, "bench", "configs", "llama-25m.llmp"))
    ap.add_argument("--llmpc", default=os.path.join(ROOT, os.environ.get("LLMP_BUILD_DIR", "build"),
                                                    "bin", "llmpc"))
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--new", type=int, default=32)
    ap.add_argument("--prefill-len", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1,
                    help="time each side this many times and keep the fastest")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    hyper = torch_llama.model_hyper(args.llmpc, args.file)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = os.path.join(tmp, "run")
        subprocess.run([args.llmpc, "run", args.file, "--steps", "1", "--run-dir", run_dir,
                        "--samples", "0", "--progress", "quiet"], check=True,
                       env=thread_env(args.threads))
        weights, _ = torch_llama.read_safetensors(os.path.join(run_dir, "checkpoint",
                                                               "model.safetensors"))
        params = {k: torch.tensor(v) for k, v in weights.items()}
        layers = torch_llama.layer_count(params)
        dim = params["embed"].shape[1]
        kv = hyper["kv_heads"]
        head_dim = dim // hyper["heads"]
        for batch in [int(b) for b in args.batches.split(",")]:
            out = os.path.join(tmp, "o.safetensors")
            _, t1 = llmp_generate(args, run_dir, batch, 1, out)
            got, tn = llmp_generate(args, run_dir, batch, args.new, out)
            llmp_rate = batch * (args.new - 1) / (tn - t1)

            ids = torch.tensor([got["ids.0"].tolist()] * batch, dtype=torch.int64)
            n = ids.shape[1]
            context = n + args.new
            torch_rate = 0.0
            for _ in range(args.repeats):
                with torch.no_grad():
                    cache = torch_llama.KVCache(layers, batch, kv, context, head_dim)
                    logits = torch_llama.forward_cached(params, ids, 0, cache, hyper["heads"],
                                                        hyper["eps"], hyper["theta"], kv)
                    nxt = logits[:, -1].argmax(-1)
                    new = [nxt]
                    t0 = time.perf_counter()
                    for step in range(args.new - 1):
                        logits = torch_llama.forward_cached(params, nxt[:, None], n + step,
                                                            cache, hyper["heads"], hyper["eps"],
                                                            hyper["theta"], kv)
                        nxt = logits[:, -1].argmax(-1)
                        new.append(nxt)
                    rate = batch * (args.new - 1) / (time.perf_counter() - t0)
                torch_rate = max(torch_rate, rate)
            torch_ids = torch.stack(new, 1)[0].tolist()
            same = torch_ids == got["greedy.0"].tolist()
            results.append((batch, n, llmp_rate, torch_rate, same))
            print(f"batch {batch}: prompt {n} tokens, {args.new} new: llmp {llmp_rate:.1f} "
                  f"tokens/s, PyTorch eager {torch_rate:.1f} tokens/s; greedy ids "
                  f"{'identical' if same else 'DIFFER'}", flush=True)
    print(f"\n{'batch':>5s} {'llmp':>10s} {'torch eager':>12s} {'ratio':>7s}   decode tokens/s, "
          f"{args.threads} threads, {os.path.basename(args.file)}")
    for batch, n, lr, tr, same in results:
        print(f"{batch:5d} {lr:10.1f} {tr:12.1f} {lr / tr:6.2f}x")
    return 0 if all(r[4] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
