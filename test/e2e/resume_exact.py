#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""End to end: a run killed with SIGKILL and resumed with `llmpc run --resume` ends bit for
bit like an uninterrupted one, across an epoch boundary.

The tiny model of Inputs/tiny.llmp trains on a small generated corpus (written here, so
the run crosses several epochs of its training windows) with a checkpoint every 7 steps.
1. Reference: an uninterrupted run.
2. The same run, killed with SIGKILL once metrics.jsonl reaches a step drawn by a seeded
   RNG; the newest checkpoint's model.safetensors is then truncated; `--resume` must name
   that file, fall back to the previous checkpoint and finish. Final weights
   (checkpoint/model.safetensors and step-<N>/model.safetensors), AdamW state
   (optimizer.safetensors) and data state must equal the reference byte for byte, and
   metrics.jsonl must have the same rows with the same loss values (timing fields aside).
3. A byte flipped in the reference's newest optimizer.safetensors is detected (crc32), the
   previous checkpoint is used, and the outputs come out identical again.
4. `--resume` with no checkpoint fails with a clear message.
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

CKPT_EVERY = 7
STEPS = 240


def write_corpus(path):
    """~40 KB of pseudo-English from a seeded RNG: enough for 512 BPE pieces, small enough
    that 240 steps of 8 windows run through the training split several times."""
    rng = random.Random(1234)
    syll = ["an", "be", "ca", "do", "el", "fi", "go", "ha", "is", "jo", "ki", "lo", "ma",
            "ne", "or", "pu", "qua", "re", "si", "th", "un", "ve", "wa", "xe", "yo", "ze"]
    words = ["".join(rng.choice(syll) for _ in range(rng.randint(1, 3))) for _ in range(400)]
    lines = []
    for _ in range(700):
        n = rng.randint(5, 12)
        lines.append(" ".join(rng.choice(words) for _ in range(n)).capitalize() + ".")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def st_header(path):
    """(tensors, metadata) of a safetensors file's header."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        h = json.loads(f.read(n))
    return h, h.pop("__metadata__", {})


def ckpt_steps(run):
    d = os.path.join(run, "checkpoint")
    return sorted(int(m.group(1)) for n in os.listdir(d) if (m := re.fullmatch(r"step-(\d+)", n)))


def ckpt_dir(run, step):
    return os.path.join(run, "checkpoint", f"step-{step:08d}")


def read(path):
    with open(path, "rb") as f:
        return f.read()


def untimed_rows(run):
    rows = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl"))]
    for r in rows:
        r.pop("elapsed_s", None)
        r.pop("tokens_per_s", None)
    return rows


def step_rows(run):
    path = os.path.join(run, "metrics.jsonl")
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return sum(1 for l in f if l.endswith("\n") and '"loss"' in l)


def outputs(run):
    """The files that must be identical: final weights, and the last checkpoint's pieces."""
    last = ckpt_dir(run, STEPS)
    return {name: read(path) for name, path in [
        ("checkpoint/model.safetensors", os.path.join(run, "checkpoint", "model.safetensors")),
        ("model.safetensors", os.path.join(last, "model.safetensors")),
        ("optimizer.safetensors", os.path.join(last, "optimizer.safetensors")),
        ("data.safetensors", os.path.join(last, "data.safetensors"))]}


def assert_same(ref_run, run, what):
    a, b = outputs(ref_run), outputs(run)
    for name in a:
        assert a[name] == b[name], f"{what}: {name} differs from the uninterrupted run"
    ra, rb = untimed_rows(ref_run), untimed_rows(run)
    assert [r["step"] for r in ra] == [r["step"] for r in rb], f"{what}: metrics rows differ"
    assert ra == rb, f"{what}: metrics values differ"
    print(f"{what}: weights, AdamW state, data state and {len(ra)} metrics rows identical")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llmpc", required=True)
    ap.add_argument("file")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus.txt")
        write_corpus(corpus)
        src = open(args.file).read()
        src = re.sub(r"dataset corpus = .*", f'dataset corpus = text("{corpus}", split: 0.9)', src)
        src = re.sub(r"steps: \d+", f"steps: {STEPS}", src)
        src = re.sub(r"eval: every \d+", "eval: every 50", src)
        llmp = os.path.join(tmp, "resume.llmp")
        open(llmp, "w").write(src)

        def cmd(run, *extra):
            return [args.llmpc, "run", llmp, "--run-dir", run, "--samples", "1",
                    "--progress", "lines", "--checkpoint-every", str(CKPT_EVERY), *extra]

        def run_ok(run, *extra):
            p = subprocess.run(cmd(run, *extra), capture_output=True, text=True)
            assert p.returncode == 0, f"llmpc failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
            return p.stdout

        # 1. The uninterrupted reference.
        ref = os.path.join(tmp, "ref")
        run_ok(ref)
        _, meta = st_header(os.path.join(ckpt_dir(ref, STEPS), "data.safetensors"))
        print(f"reference: {STEPS} steps, data epoch {meta['epoch']} at the end")
        assert int(meta["epoch"]) >= 1, "the run must cross an epoch boundary"

        # 2. Killed at a random step, newest checkpoint truncated, resumed.
        kill_at = random.Random(20240605).randint(3 * CKPT_EVERY, STEPS * 2 // 3)
        run = os.path.join(tmp, "killed")
        proc = subprocess.Popen(cmd(run), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        while step_rows(run) < kill_at and proc.poll() is None:
            time.sleep(0.001)
        assert proc.poll() is None, f"the run ended before step {kill_at}: {proc.stderr.read()}"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
        reached = step_rows(run)
        assert reached < STEPS, "killed too late"
        steps = ckpt_steps(run)
        print(f"killed at step {reached} (target {kill_at}); checkpoints {steps}")
        assert len(steps) >= 2, steps
        newest, previous = steps[-1], steps[-2]
        victim = os.path.join(ckpt_dir(run, newest), "model.safetensors")
        with open(victim, "r+b") as f:
            f.truncate(os.path.getsize(victim) // 2)
        out = run_ok(run, "--resume")
        want = f"checkpoint: skipping a newer checkpoint: '{victim}' is truncated or resized"
        assert want in out, f"expected '{want}' in:\n{out}"
        want = f"resume: from {ckpt_dir(run, previous)} (step {previous}/{STEPS}"
        assert want in out, f"expected '{want}' in:\n{out}"
        assert_same(ref, run, f"kill at {reached}, resume from {previous}")

        # 3. A corrupted byte in the newest checkpoint of a finished run.
        before = outputs(ref)
        opt = os.path.join(ckpt_dir(ref, STEPS), "optimizer.safetensors")
        with open(opt, "r+b") as f:
            f.seek(-13, os.SEEK_END)
            b = f.read(1)
            f.seek(-13, os.SEEK_END)
            f.write(bytes([b[0] ^ 0x01]))
        out = run_ok(ref, "--resume")
        want = f"'{opt}' is corrupt: crc32"
        assert want in out, f"expected '{want}' in:\n{out}"
        assert outputs(ref) == before, "a resume from the previous checkpoint changed the result"
        print("corrupt byte detected; resume from the previous checkpoint gave identical outputs")

        # 4. Nothing to resume from.
        empty = os.path.join(tmp, "empty")
        p = subprocess.run(cmd(empty, "--resume"), capture_output=True, text=True)
        assert p.returncode != 0 and "resume: no checkpoint in" in p.stderr, p.stderr
        print("no checkpoint:", p.stderr.strip())
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
