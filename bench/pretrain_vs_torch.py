#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Training throughput of llmp against PyTorch eager on the same model, batch and threads.

Usage: bench/pretrain_vs_torch.py [--file examples/pretrain.llmp] [--steps 40] [--threads 2]
                                  [--torch-compile] [--precision fp32|bf16]
       (bench/configs/llama-25m.llmp is the ~25M-parameter configuration of issue #4)

1. Runs `llmpc run FILE --steps S` and reads its plan.json (model, batch) and metrics.jsonl.
2. Builds the same model in PyTorch (test/e2e/torch_llama.py: same architecture, same
   parameter shapes) and times S AdamW training steps on batches of the same shape, in
   eager mode and, with --torch-compile, with the loss compiled by torch.compile (its
   compilation falls in the untimed warm-up steps).
3. Measures the GEMM rate of the precision llmp runs at (bench sgemm_rate: the better of
   OpenBLAS sgemm and llmp's fp32 GEMM call, which runs on oneDNN on AMD CPUs with AVX-512,
   or with --precision bf16 llmp's bf16 kernel on oneDNN).
With --precision bf16 the llmp stage gets `precision: bf16` and PyTorch runs its forward
under torch.autocast("cpu", dtype=torch.bfloat16) (bf16 matrix products, fp32 weights and
optimizer, as llmp). Prints tokens/s of both, their ratio, and each one's MFU: achieved
model FLOP/s over the measured GEMM rate. Model FLOPs per step count every matrix product of the forward pass
(2*m*n*k each, attention scores and values included) times 3 for forward + backward
(Kaplan et al. 2020, sec. 2.1; the attention term as in PaLM, Chowdhery et al. 2022, app. B).
The first quarter of the steps of each side is warm-up and is not timed.
Peak memory: each side trains in a process of its own (llmpc; PyTorch in a spawned Python
process), and the peak RSS of that whole process (getrusage ru_maxrss: Python, torch and its
libraries, or llmpc with MLIR, LLVM and the compilation, included) is printed, with llmpc's
own report of its peak while training and the compile-time plan of that peak.
"""
import argparse
import json
import multiprocessing
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "test", "e2e"))
import torch_llama  # noqa: E402


def train_flops_per_step(plan):
    B, T, D, V, L = plan["batch"], plan["seq_len"], plan["dim"], plan["vocab"], plan["layers"]
    matmul_params = sum(p["numel"] for p in plan["params"] if len(p["shape"]) == 2 and p["name"] != "embed")
    per_token_fwd = 2 * matmul_params + 2 * V * D + L * 4 * T * D  # linears, LM head, QK^T and PV
    return 3 * per_token_fwd * B * T


def steady_tokens_per_s(rows, warmup, tokens_per_step):
    rows = [r for r in rows if "loss" in r and r["step"] > warmup]
    elapsed = rows[-1]["elapsed_s"] - rows[0]["elapsed_s"]
    return (len(rows) - 1) * tokens_per_step / elapsed


def thread_env(threads):
    """The environment that gives llmp `threads` threads: its parallel loops and GEMMs run on
    OpenMP (libomp) threads; OpenBLAS is single-threaded inside llmp but the sgemm rate
    below uses OpenBLAS's own threads."""
    return dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))


def with_precision(path, precision, tmp):
    """`path`, or with bf16 a copy whose stages (each `stage ... {` line) say `precision: bf16`."""
    if precision == "fp32":
        return path
    src = open(path).read()
    out = []
    for line in src.splitlines():
        out.append(line)
        if line.lstrip().startswith("stage ") and line.rstrip().endswith("{"):
            out.append(f"  precision: {precision}")
    copy = os.path.join(tmp, os.path.basename(path))
    open(copy, "w").write("\n".join(out) + "\n")
    return copy  # the configs import the stdlib and read absolute data paths: it runs as is


def run_llmp(args, tmp):
    """Runs the stage with `llmpc run`; returns its plan.json, its steady tokens/s and the
    peak RSS of the llmpc process in bytes (the first child of this process: ru_maxrss of
    RUSAGE_CHILDREN is the largest child's)."""
    run_dir = os.path.join(tmp, "llmp")
    path = with_precision(args.file, args.precision, tmp)
    out = subprocess.run([args.llmpc, "run", path, "--steps", str(args.steps), "--run-dir",
                          run_dir, "--samples", "0"], check=True, env=thread_env(args.threads),
                         stdout=subprocess.PIPE, text=True).stdout
    print(out, end="")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    planned = re.search(r"training peak RSS (\d+) MiB vs plan (\d+) MiB", out)
    plan = json.load(open(os.path.join(run_dir, "plan.json")))
    # llmpc's own report: the RSS peak while training (compilation's peak comes before it)
    # and the compile-time plan of it.
    plan["training_peak_bytes"], plan["planned_peak_bytes"] = (
        (int(planned.group(1)) * 2**20, int(planned.group(2)) * 2**20) if planned else (None, None))
    rows = [json.loads(l) for l in open(os.path.join(run_dir, "metrics.jsonl"))]
    return plan, steady_tokens_per_s(rows, args.steps // 4, plan["batch"] * plan["seq_len"]), peak


def torch_child(plan, args, compiled, queue):
    queue.put((run_torch(plan, args, compiled),
               resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024))


def run_torch_process(plan, args, compiled=False):
    """run_torch in a fresh (spawned) Python process; returns its tokens/s and the peak RSS
    of that process in bytes."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=torch_child, args=(plan, args, compiled, queue))
    child.start()
    result = queue.get()
    child.join()
    if child.exitcode != 0:
        sys.exit(f"pretrain_vs_torch: the PyTorch process failed (exit status {child.exitcode})")
    return result


def run_torch(plan, args, compiled=False):
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    params = {p["name"]: (torch.randn(p["shape"]) * 0.02 if len(p["shape"]) == 2 else torch.ones(p["shape"]))
              .requires_grad_() for p in plan["params"]}
    opt = torch.optim.AdamW(params.values(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1, fused=False)
    B, T, V = plan["batch"], plan["seq_len"], plan["vocab"]
    hyper = torch_llama.model_hyper(args.llmpc, args.file)
    warmup = args.steps // 4

    def loss_of(params, tokens, targets):
        logits = torch_llama.forward(params, tokens, hyper["heads"], hyper["eps"], hyper["theta"])
        return torch_llama.next_token_loss(logits, targets)

    loss_fn = torch.compile(loss_of) if compiled else loss_of
    if args.precision == "bf16":
        inner = loss_fn
        def loss_fn(params, tokens, targets):  # noqa: E306
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return inner(params, tokens, targets).float()
    for step in range(args.steps):
        if step == warmup:
            t0 = time.perf_counter()
        batch = torch.randint(0, V, (B, T + 1))
        loss = loss_fn(params, batch[:, :-1], batch[:, 1:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params.values(), 1.0)
        opt.step()
    return (args.steps - warmup) * B * T / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--file", default=os.path.join(ROOT, "examples", "pretrain.llmp"))
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--torch-compile", action="store_true", help="also time torch.compile")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                    help="bf16: llmp's `precision: bf16` against PyTorch's bf16 autocast")
    args = ap.parse_args()
    args.llmpc = os.path.join(args.build, "bin", "llmpc")

    with tempfile.TemporaryDirectory() as tmp:
        plan, llmp_tps, llmp_peak = run_llmp(args, tmp)
    torch_tps, torch_peak = run_torch_process(plan, args)
    compiled_tps, compiled_peak = (run_torch_process(plan, args, compiled=True)
                                   if args.torch_compile else (None, None))
    sgemm = json.loads(subprocess.run([os.path.join(args.build, "bin", "sgemm_rate"), "1024", "10",
                                       args.precision], check=True,
                                      capture_output=True, text=True, env=thread_env(args.threads)).stdout)
    flops_per_token = train_flops_per_step(plan) / (plan["batch"] * plan["seq_len"])
    mfu = lambda tps: tps * flops_per_token / (sgemm["gflops"] * 1e9)
    print(f"model {plan['model']}: {plan['num_params']} params, batch {plan['batch']}x{plan['seq_len']}, "
          f"{args.threads} threads, {flops_per_token / 1e6:.1f} MFLOP/token")
    what = (f"best of OpenBLAS sgemm {sgemm['openblas_gflops']:.1f} and llmp's fp32 GEMM "
            f"{sgemm['llmp_gflops']:.1f}" if args.precision == "fp32" else "llmp bf16 GEMM (oneDNN)")
    print(f"{args.precision} GEMM rate ({what}, n=1024): {sgemm['gflops']:.1f} GFLOP/s")
    print(f"llmp          : {llmp_tps:10.0f} tokens/s   MFU {100 * mfu(llmp_tps):5.1f}%")
    print(f"PyTorch eager : {torch_tps:10.0f} tokens/s   MFU {100 * mfu(torch_tps):5.1f}%")
    if compiled_tps:
        print(f"torch.compile : {compiled_tps:10.0f} tokens/s   MFU {100 * mfu(compiled_tps):5.1f}%")
    print(f"ratio llmp / PyTorch eager: {llmp_tps / torch_tps:.2f}x")
    if compiled_tps:
        print(f"ratio llmp / torch.compile: {llmp_tps / compiled_tps:.2f}x")
    mib = lambda b: f"{b / 2**20:,.0f} MiB"
    print(f"peak RSS of the process: llmp {mib(llmp_peak)}"
          + (f" (compilation included; while training {mib(plan['training_peak_bytes'])}, "
             f"plan {mib(plan['planned_peak_bytes'])})" if plan["planned_peak_bytes"] else "")
          + f", PyTorch eager {mib(torch_peak)} (llmp / eager {llmp_peak / torch_peak:.2f}x)"
          + (f", torch.compile {mib(compiled_peak)} (llmp / compile {llmp_peak / compiled_peak:.2f}x)"
             if compiled_peak else ""))
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
