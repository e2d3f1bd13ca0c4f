#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""End to end: generation with the compiled prefill_step / decode_step and a KV cache
against the training graph's full forward (logits_step), through `llmpc logits --greedy`.

The reference is `--kv-cache=false`: each new token runs logits_step over the whole prefix
(the forward that training differentiates), and the logits each id was drawn from are that
forward's last row. With the KV cache, prompts of different lengths go through one
prefill_step (padded to --prefill-len) and then one decode_step per token for all rows.
Checks, per prompt:
1. Greedy ids: the KV cache run equals the reference token for token (a differing token
   is only accepted where the reference's two best logits are within 1e-4 of each other,
   a tie that rounding may break either way; none occurred when this test was written).
2. Logits: max |cached - reference| / max |reference| <= 1e-5 at every generated token.
3. Batching: the ids of all prompts decoded together (--decode-batch = number of prompts)
   equal those of each prompt decoded alone (--decode-batch 1), also when prompts are
   longer than the prefill (--prefill-len 4: the rest of each prompt goes through
   decode_step before generation starts).
FILE is a .llmp file: a `pretrain` stage is trained first for its steps (its checkpoint is
the model); a `from_gguf` model (SmolLM2) runs its GGUF weights and the test skips when the
file is missing.
"""
import argparse
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import rel_err, run  # noqa: E402
from torch_llama import read_safetensors  # noqa: E402

PROMPTS = [
    "And God said",
    "In the beginning God created the heaven and the earth.",
    "Jesus wept. Then said the Jews, Behold",
]
TOLERANCE = 1e-5
TIE = 1e-4


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llmpc", required=True)
    ap.add_argument("--new", type=int, default=8, help="greedy tokens per prompt")
    ap.add_argument("file")
    args = ap.parse_args()
    src = open(args.file).read()
    gguf = "from_gguf(" in src
    if gguf:
        path = os.path.expanduser(src.split('from_gguf("')[1].split('"')[0])
        if not os.path.exists(path):
            print(f"SKIP: {path} not found (scripts/setup.sh --models installs it)")
            return
    with tempfile.TemporaryDirectory() as tmp:
        common = [args.llmpc, "logits", args.file, "--greedy", str(args.new)]
        if not gguf:
            run([args.llmpc, "run", args.file, "--run-dir", tmp, "--samples", "0"])
            common += ["--run-dir", tmp]
        common += [a for p in PROMPTS for a in ("--prompt", p)]
        outs = {}
        for name, extra in [("ref", ["--kv-cache=false"]),
                            ("alone", ["--decode-batch", "1"]),
                            ("batch", ["--decode-batch", str(len(PROMPTS))]),
                            ("chunked", ["--decode-batch", str(len(PROMPTS)), "--prefill-len", "4"])]:
            out = os.path.join(tmp, name + ".safetensors")
            run(common + extra + ["-o", out])
            outs[name], _ = read_safetensors(out)

    ref = outs["ref"]
    worst = 0.0
    for i in range(len(PROMPTS)):
        n = len(ref[f"ids.{i}"])
        want = ref[f"greedy.{i}"].tolist()
        want_logits = ref[f"greedy_logits.{i}"]
        assert len(want) == args.new and want_logits.shape[0] == args.new, (len(want), want_logits.shape)
        for name in ("alone", "batch", "chunked"):
            got = outs[name][f"greedy.{i}"].tolist()
            got_logits = outs[name][f"greedy_logits.{i}"]
            assert len(got) == args.new, f"{name} prompt {i}: {len(got)} ids"
            for j, (a, b) in enumerate(zip(got, want)):
                if a != b:
                    top2 = np.sort(want_logits[j])[-2:]
                    assert top2[1] - top2[0] <= TIE, (
                        f"{name} prompt {i} token {j}: {got} != reference {want} "
                        f"(margin {top2[1] - top2[0]:.3g})")
                    print(f"{name} prompt {i}: token {j} differs at a tie; stopping the comparison")
                    break
                rel = rel_err(got_logits[j], want_logits[j])
                worst = max(worst, rel)
                assert rel <= TOLERANCE, f"{name} prompt {i} token {j}: relative logits error {rel}"
        for name in ("batch", "chunked"):
            assert outs[name][f"greedy.{i}"].tolist() == outs["alone"][f"greedy.{i}"].tolist(), (
                f"prompt {i}: {name} {outs[name][f'greedy.{i}'].tolist()} != alone "
                f"{outs['alone'][f'greedy.{i}'].tolist()}")
        print(f"prompt {i}: {n} tokens + {args.new} greedy {want}: identical alone, batched "
              f"and chunked")
    print(f"ok: {len(PROMPTS)} prompts, logits within {worst:.3g} of the full forward (<= {TOLERANCE})")


if __name__ == "__main__":
    main()
