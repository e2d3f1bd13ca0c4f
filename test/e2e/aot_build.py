#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""End to end: `llmpc build` links a standalone trainer that trains a stage exactly as
`llmpc run` does, bit for bit, without the compiler or its build tree.

The tiny model of Inputs/tiny.llmp trains for STEPS steps on a generated corpus (the one
resume_exact.py writes), checkpointing every CKPT_EVERY steps, with 2 samples.
1. Reference: `llmpc run` (the JIT).
2. `llmpc build` with the same --steps; the binary is copied alone into an empty folder
   and run there with a bare environment (PATH=/usr/bin:/bin, no LD_LIBRARY_PATH); `ldd`
   must list no libMLIR/libLLVM and nothing from the build tree.
3. Both runs' metrics.jsonl rows (timing fields aside) must be equal as exact strings, and
   plan.json, tokenizer.model, samples.txt, checkpoint/model.safetensors and the last step
   checkpoint (weights, AdamW state, data state) equal byte for byte.
   The binary takes its options as `--name=value` (llmpc run as `--name value`).
4. A bad argument to the binary is one `trainer: error:` line with exit status 2
   (an unknown option, `--checkpoint-every 0` in both forms, a value on `--resume`).
"""
import argparse
import json
import math
import os
import re
import shutil
import subprocess
import tempfile

from common import run
from resume_exact import write_corpus

STEPS = 20
CKPT_EVERY = 10


def rows(run_dir):
    """metrics.jsonl rows with numbers kept as their exact text, timing fields removed."""
    out = []
    for line in open(os.path.join(run_dir, "metrics.jsonl")):
        r = json.loads(line, parse_float=str, parse_int=str)
        for key in ("elapsed_s", "tokens_per_s"):
            r.pop(key, None)
        out.append(r)
    return out


def same_metrics(jit, aot, steps):
    """Asserts that the run directories `jit` and `aot` have equal metrics.jsonl rows
    (rows()) with `steps` finite losses that change; returns (rows, losses)."""
    ra, rb = rows(jit), rows(aot)
    assert ra == rb, "metrics.jsonl rows differ:\n" + "\n".join(
        f"jit {a}\naot {b}" for a, b in zip(ra, rb) if a != b)
    losses = [float(r["loss"]) for r in ra if "loss" in r]
    assert len(losses) == steps and all(math.isfinite(x) for x in losses), losses
    assert len(set(losses)) > 1, "the losses do not change"
    return ra, losses


def bare_env(home):
    """The bare environment trainer binaries run in: PATH=/usr/bin:/bin, HOME=home, no
    LD_LIBRARY_PATH (OMP_NUM_THREADS kept, so both sides use the same threads)."""
    env = {"PATH": "/usr/bin:/bin", "HOME": home}
    if "OMP_NUM_THREADS" in os.environ:
        env["OMP_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"]
    return env


def read(path):
    with open(path, "rb") as f:
        return f.read()


def outputs(run_dir):
    last = os.path.join(run_dir, "checkpoint", f"step-{STEPS:08d}")
    names = {"plan.json": "plan.json", "tokenizer.model": "tokenizer.model",
             "samples.txt": "samples.txt",
             "checkpoint/model.safetensors": os.path.join("checkpoint", "model.safetensors")}
    files = {name: read(os.path.join(run_dir, rel)) for name, rel in names.items()}
    for piece in ("model", "optimizer", "data"):
        files[f"step-{STEPS}/{piece}.safetensors"] = read(os.path.join(last, f"{piece}.safetensors"))
    return files


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llmpc", required=True)
    ap.add_argument("file")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="llmp-aot-")
    try:
        corpus = os.path.join(tmp, "corpus.txt")
        write_corpus(corpus)
        src = open(args.file).read()
        src = re.sub(r"dataset corpus = .*", f'dataset corpus = text("{corpus}", split: 0.9)', src)
        src = re.sub(r"eval: every \d+", f"eval: every {CKPT_EVERY}", src)
        llmp = os.path.join(tmp, "aot.llmp")
        open(llmp, "w").write(src)
        common = ["--samples", "2", "--progress", "lines", "--checkpoint-every", str(CKPT_EVERY)]

        # 1. The JIT run.
        jit = os.path.join(tmp, "jit")
        run([args.llmpc, "run", llmp, "--steps", str(STEPS), "--run-dir", jit] + common)

        # 2. The built trainer, alone in an empty folder with a bare environment.
        os.mkdir(os.path.join(tmp, "build"))
        built = os.path.join(tmp, "build", "trainer")
        out = run([args.llmpc, "build", llmp, "--steps", str(STEPS), "-o", built])
        assert f"built {built}: trains stage 'pretrain'" in out, out
        alone = os.path.join(tmp, "alone")
        os.mkdir(alone)
        trainer = os.path.join(alone, "trainer")
        shutil.copy2(built, trainer)
        shutil.rmtree(os.path.join(tmp, "build"))
        ldd = run(["ldd", trainer])
        build_tree = os.path.dirname(os.path.dirname(os.path.abspath(args.llmpc)))
        bad = [l.strip() for l in ldd.splitlines()
               if re.search(r"libMLIR|libLLVM|mlir_c_runner", l) or build_tree in l]
        assert not bad, f"the trainer depends on the compiler or its build tree: {bad}"
        env = bare_env(tmp)
        # The binary takes `--name=value` as llmpc run does (llmpc above: `--name value`).
        common_eq = ["--samples=2", "--progress=lines", f"--checkpoint-every={CKPT_EVERY}"]
        p = subprocess.run(["./trainer", "--run-dir=aot"] + common_eq, cwd=alone, env=env,
                           capture_output=True, text=True)
        assert p.returncode == 0, f"trainer failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
        assert f"{STEPS} steps" in p.stdout, p.stdout
        aot = os.path.join(alone, "aot")

        # 3. Identical losses and files.
        ra, losses = same_metrics(jit, aot, STEPS)
        a, b = outputs(jit), outputs(aot)
        for name in a:
            assert a[name] == b[name], f"{name} differs between llmpc run and the trainer"
        print(f"{len(ra)} metrics rows identical (loss {losses[0]} -> {losses[-1]}); "
              f"identical {', '.join(a)}")

        # 4. A bad argument.
        p = subprocess.run([trainer, "--bogus"], capture_output=True, text=True)
        assert p.returncode == 2, p
        assert p.stderr == "trainer: error: unknown argument '--bogus' (--help lists the options)\n", p.stderr
        print("bad argument:", p.stderr.strip())
        # An explicit --checkpoint-every 0 (either form) and a value on a flag, as llmpc run.
        for bad, message in [
                (["--checkpoint-every", "0"], "--checkpoint-every must be at least 1, got 0 (leave "
                 "it out to checkpoint at each evaluation and the last step)"),
                (["--checkpoint-every=0"], "--checkpoint-every must be at least 1, got 0 (leave "
                 "it out to checkpoint at each evaluation and the last step)"),
                (["--resume=yes"], "--resume takes no value, got '--resume=yes'")]:
            p = subprocess.run([trainer] + bad, capture_output=True, text=True)
            assert p.returncode == 2 and p.stderr == f"trainer: error: {message}\n", (bad, p)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
