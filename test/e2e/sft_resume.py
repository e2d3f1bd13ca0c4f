#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""End to end: `llmpc run --resume` of `sft` stages ends with the run directory of an
uninterrupted run, samples.txt included.

An sft run answers held-out questions before and after training (samples.txt). A resumed
run starts from a checkpoint and used to skip the answers before training, so its
samples.txt held only those after (found by trying a --resume by hand). The reference here
is the same run uninterrupted, not a stored text.

No download: the tiny from_gguf model, its byte-level BPE tokenizer with a ChatML template
and the conversations are those of aot_build_sft.py (random weights, written by the test).
Per stage (`full`: every parameter, weights from the GGUF; `qlora`: NF4 base, seeded LoRA
adapters):
1. Reference: `llmpc run --steps 6 --checkpoint-every 3 --samples 2`.
2. A copy of it with the step-6 checkpoint, the final model and samples.txt removed is the
   state of a run stopped after step 3's checkpoint (what Ctrl-C or a kill leaves, see
   interrupt_resume.py and resume_exact.py for those of pretrain); `--resume` continues it
   from step 3.
3. samples.txt, checkpoint/model.safetensors and the metrics rows (timing fields aside)
   equal the reference's; samples.txt holds both rounds of answers.
4. `--resume` of the finished reference itself (nothing left to train) rewrites the same
   samples.txt.
"""
import argparse
import os
import shutil
import subprocess
import tempfile

from aot_build import read, rows
from aot_build_sft import CONTEXT, LLMP, write_conversations, write_tiny_gguf

STEPS, CKPT_EVERY, SAMPLES = 6, 3, 2


def run(cmd, cwd):
    """Runs `cmd`; its stdout as bytes (the samples of a random model may print bytes that
    are not UTF-8), or an AssertionError with both streams if it fails."""
    p = subprocess.run(cmd, capture_output=True, cwd=cwd)
    assert p.returncode == 0, f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout!r}\n{p.stderr!r}"
    return p.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llmpc", required=True)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        gguf, data = os.path.join(tmp, "tiny.gguf"), os.path.join(tmp, "qa.jsonl")
        write_tiny_gguf(gguf)
        write_conversations(data)
        llmp = os.path.join(tmp, "sft.llmp")
        with open(llmp, "w") as f:
            f.write(LLMP.format(gguf=gguf, data=data, context=CONTEXT))
        for stage in ("full", "qlora"):
            common = [args.llmpc, "run", llmp, "--stage", stage, "--steps", str(STEPS),
                      "--checkpoint-every", str(CKPT_EVERY), "--samples", str(SAMPLES),
                      "--progress", "lines"]
            ref = os.path.join(tmp, "ref-" + stage)
            run(common + ["--run-dir", ref], cwd=tmp)
            samples = read(os.path.join(ref, "samples.txt"))
            assert samples.count(b"--- before training:") == SAMPLES, samples
            assert samples.count(b"--- after training:") == SAMPLES, samples

            stopped = os.path.join(tmp, "stopped-" + stage)
            shutil.copytree(ref, stopped)
            shutil.rmtree(os.path.join(stopped, "checkpoint", f"step-{STEPS:08d}"))
            os.remove(os.path.join(stopped, "checkpoint", "model.safetensors"))
            os.remove(os.path.join(stopped, "samples.txt"))
            out = run(common + ["--run-dir", stopped, "--resume"], cwd=tmp)
            assert f"(step {CKPT_EVERY}/{STEPS},".encode() in out, out
            for name in ("samples.txt", os.path.join("checkpoint", "model.safetensors")):
                assert read(os.path.join(stopped, name)) == read(os.path.join(ref, name)), \
                    f"{stage}: {name} of the resumed run differs from the uninterrupted run's"
            assert rows(stopped) == rows(ref), f"{stage}: metrics.jsonl rows differ"

            run(common + ["--run-dir", ref, "--resume"], cwd=tmp)
            assert read(os.path.join(ref, "samples.txt")) == samples, \
                f"{stage}: --resume of a finished run rewrote samples.txt differently"
            print(f"{stage}: resumed from step {CKPT_EVERY}: samples.txt "
                  f"({len(samples)} bytes), model and metrics as uninterrupted")
    print("ok")


if __name__ == "__main__":
    main()
