#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Encode throughput (MB/s) of llmp's byte-level BPE vs the Hugging Face `tokenizers`
package on the same documents and threads, and whether the ids agree.

    scripts/python.sh bench/tokenizer_vs_hf.py [--threads 2] [--data ../shared/data]

Documents: the 233 State of the Union addresses (10.7 MB), one document each; the
tokenizers: GPT-2, Llama-3 and Qwen3 tokenizer.json from ../shared/data/tokenizers."""
import argparse
import glob
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", default=os.environ.get("LLMP_SHARED_DATA", os.path.join(ROOT, "..", "shared", "data")))
    ap.add_argument("--build", default=os.environ.get("LLMP_BUILD_DIR", "build"))
    args = ap.parse_args()
    os.environ["RAYON_NUM_THREADS"] = str(args.threads)
    from tokenizers import Tokenizer  # after RAYON_NUM_THREADS is set

    files = sorted(glob.glob(os.path.join(args.data, "corpora", "sotu", "*.txt")))
    docs = [open(f, encoding="utf-8").read() for f in files]
    nbytes = sum(len(d.encode("utf-8")) for d in docs)
    bench = os.path.join(ROOT, args.build, "bin", "tokenizer_bench")
    print(f"{len(docs)} documents, {nbytes / 1e6:.1f} MB, {args.threads} threads")
    print(f"{'tokenizer':10s} {'llmp MB/s':>10s} {'HF MB/s':>10s} {'ratio':>7s} ids")
    for name in ("gpt2", "llama3", "qwen3"):
        path = os.path.join(args.data, "tokenizers", name, "tokenizer.json")
        out = subprocess.run([bench, path, str(args.threads)] + files, check=True,
                             capture_output=True, text=True).stdout.split()
        llmp_rate, llmp_ids = float(out[2]), int(out[4])
        tok = Tokenizer.from_file(path)
        best, hf_ids = 0.0, 0
        for _ in range(3):
            t0 = time.perf_counter()
            encs = tok.encode_batch(docs, add_special_tokens=False)
            best = max(best, nbytes / (time.perf_counter() - t0) / 1e6)
            hf_ids = sum(len(e.ids) for e in encs)
        same = "same" if hf_ids == llmp_ids else f"DIFFER ({llmp_ids} vs {hf_ids})"
        print(f"{name:10s} {llmp_rate:10.2f} {best:10.2f} {llmp_rate / best:6.2f}x {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
