#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""End to end: data parallel over two processes (`mpiexec -np 2 llmpc run ...`).

The tiny model of Inputs/tiny.llmp (batch 8 x 32) trains on a small generated corpus:
1. Reference: one process, `batch: 8 x 32`.
2. Two ranks: the same file with `ranks: 2`, so each rank trains 4 rows of every step
   (rank r: rows [4r, 4r + 4) of the 8 rows the reference draws from the same seeded
   order), token counts and gradients all-reduced between grad_step and apply_step.
   The training loss, gradient norm and validation loss of every step must match the
   reference within TOLERANCE (absolute; what the two runs compute differently is only the
   fp32 summation order of the batch's mean and gradient, which Adam then carries on),
   and the final weights too. Only rank 0 prints and writes (one set of files, one
   progress log).
3. SIGTERM to rank 1 alone mid-run: both ranks stop after the same step, rank 0 writes
   the checkpoint and `--resume` under mpiexec ends with weights and metrics bitwise equal
   to an uninterrupted two-rank run.
4. Launch checks: `ranks: 2` without mpiexec, and `ranks: 1` under mpiexec -np 2, fail
   with a message saying how to launch.
"""
import argparse
import json
import math
import os
import re
import signal
import struct
import subprocess
import sys
import tempfile
import time
from array import array

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resume_exact import read, step_rows, untimed_rows, write_corpus  # noqa: E402

STEPS = 60
LONG_STEPS = 300  # the interrupted run (part 3)
# Absolute tolerance on losses, gradient norms (values ~0.4-6.3) and weights: fp32 rounding
# of two summation orders (about 1e-7 relative per operation), carried by 60 Adam steps.
# Measured: at most 3.1e-6 (docs/runtime.md, "Data parallel"). Consecutive steps' losses
# differ by ~1e-2 to 1e-1, so a shard that trained on other rows would fail by far.
TOLERANCE = 1e-4
# Peak learning rate of the comparison. At tiny.llmp's 1e-2 the loss curve is noisy enough
# (gradient norms jump past the clip at 1.0) that rounding differences grow from ~1e-6 to
# ~1e-3 within 60 steps, in any two runs that sum in different orders.
LR = "3e-3"


def read_f32_tensors(path):
    """{name: array('f')} of a safetensors file with F32 tensors (the format's spec:
    u64 header length, JSON header with data_offsets, raw little-endian data)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        assert t["dtype"] == "F32", (name, t["dtype"])
        a = array("f")
        a.frombytes(data[t["data_offsets"][0]:t["data_offsets"][1]])
        out[name] = a
    return out


def rank_pid(launcher, rank):
    """The pid of MPI rank `rank` among the children of the launcher process (from /proc:
    the parent pid in /proc/PID/stat, the rank in OMPI_COMM_WORLD_RANK of its environment)."""
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = open(f"/proc/{d}/stat").read()
            env = open(f"/proc/{d}/environ", "rb").read().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == launcher and f"OMPI_COMM_WORLD_RANK={rank}".encode() in env:
            return int(d)
    raise AssertionError(f"no rank {rank} among the children of {launcher}")


def rows(run):
    with open(os.path.join(run, "metrics.jsonl")) as f:
        return [json.loads(l) for l in f]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llmpc", required=True)
    ap.add_argument("--mpiexec", required=True)
    ap.add_argument("file")
    args = ap.parse_args()
    mpi = [args.mpiexec, "--allow-run-as-root", "--oversubscribe", "-np", "2"]
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus.txt")
        write_corpus(corpus)
        src = open(args.file).read()
        src = re.sub(r"dataset corpus = .*", f'dataset corpus = text("{corpus}", split: 0.9)', src)
        src = re.sub(r"steps: \d+", f"steps: {STEPS}", src)
        src = re.sub(r"eval: every \d+", "eval: every 20", src)
        src = re.sub(r"adamw\(lr: [0-9.e-]+", f"adamw(lr: {LR}", src)
        assert f"adamw(lr: {LR}," in src
        assert "batch: 8 x 32" in src and "ranks" not in src
        one = os.path.join(tmp, "one.llmp")
        two = os.path.join(tmp, "two.llmp")
        open(one, "w").write(src)
        open(two, "w").write(src.replace("  seed: 7\n", "  seed: 7\n  ranks: 2\n"))

        def run(launch, llmp, run_dir, *extra, ok=True):
            p = subprocess.run([*launch, args.llmpc, "run", llmp, "--run-dir", run_dir,
                                "--samples", "1", "--progress", "lines", "--checkpoint-every",
                                "10", *extra], capture_output=True, text=True)
            if ok:
                assert p.returncode == 0, f"llmpc failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
            return p

        # 1 and 2: one process with 8 rows, two ranks with 4 rows each.
        r1, r2 = os.path.join(tmp, "one"), os.path.join(tmp, "two")
        run([], one, r1)
        out = run(mpi, two, r2).stdout
        assert out.count("stage main.pretrain:") == 1, f"rank 0 alone prints:\n{out}"
        assert "batch 4 x 32 on each of 2 ranks" in out, out
        assert "data parallel: 2 ranks x 4 rows; parameters identical on every rank" in out, out
        plan = json.load(open(os.path.join(r2, "plan.json")))
        assert plan["ranks"] == 2 and plan["batch"] == 4, plan
        a, b = rows(r1), rows(r2)
        assert [(r["step"], sorted(r)) for r in a] == [(r["step"], sorted(r)) for r in b]
        worst = {}
        for ra, rb in zip(a, b):
            for key in ("loss", "grad_norm", "val_loss"):
                if key in ra:
                    d = abs(ra[key] - rb[key])
                    assert math.isfinite(rb[key]) and d <= TOLERANCE, \
                        f"step {ra['step']} {key}: 1 rank {ra[key]}, 2 ranks {rb[key]}"
                    worst[key] = max(worst.get(key, 0.0), d)
        wa = read_f32_tensors(os.path.join(r1, "checkpoint", "model.safetensors"))
        wb = read_f32_tensors(os.path.join(r2, "checkpoint", "model.safetensors"))
        assert wa.keys() == wb.keys()
        worst["weights"] = max(abs(x - y) for n in wa for x, y in zip(wa[n], wb[n]))
        assert worst["weights"] <= TOLERANCE, worst
        first, last = a[1]["loss"], a[-2]["loss"]
        assert last < first - 1.0, f"the reference must learn: loss {first} -> {last}"
        print(f"1 rank x 8 rows vs 2 ranks x 4 rows, {STEPS} steps (loss {first:.3f} -> "
              f"{last:.3f}): max |difference| " +
              ", ".join(f"{k} {v:.2e}" for k, v in worst.items()) + f" (tolerance {TOLERANCE})")

        # 3. SIGTERM to rank 1 alone once step 25 is written, then --resume under mpiexec;
        # against an uninterrupted two-rank run of the same length (300 steps, so the run is
        # still going when the signal arrives). Rank 0 never sees a signal: the ranks must
        # agree to stop after the same step. (A signal to mpiexec reaches the ranks only
        # after Open MPI's odls_base_sigkill_timeout; see docs/runtime.md.)
        long = ["--steps", str(LONG_STEPS)]
        r2long, r3 = os.path.join(tmp, "two-long"), os.path.join(tmp, "interrupted")
        run(mpi, two, r2long, *long)
        cmd = [*mpi, args.llmpc, "run", two, "--run-dir", r3, "--samples", "1", "--progress",
               "lines", "--checkpoint-every", "10", *long]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while step_rows(r3) < 25 and proc.poll() is None:
            time.sleep(0.005)
        assert proc.poll() is None, f"the run ended before step 25: {proc.communicate()}"
        os.kill(rank_pid(proc.pid, 1), signal.SIGTERM)
        stdout, stderr = proc.communicate()
        assert proc.returncode != 0, "an interrupted run must not report success"
        stopped = re.search(r"interrupted at step (\d+) of \d+; checkpoint (\S+)", stderr)
        assert stopped, f"expected 'interrupted at step N' in:\n{stdout}\n{stderr}"
        at = int(stopped.group(1))
        assert 25 <= at < LONG_STEPS, at
        assert os.path.exists(os.path.join(stopped.group(2), "manifest.json")), stopped.group(2)
        assert not os.path.exists(os.path.join(r3, "samples.txt"))
        assert "llmpc: continue with: mpirun -np 2 llmpc run" in stderr, stderr
        print(f"SIGTERM to rank 1: both ranks stopped after step {at}; rank 0 wrote "
              f"{stopped.group(2)}")
        out = run(mpi, two, r3, *long, "--resume").stdout
        assert f"resume: from {stopped.group(2)} (step {at}/{LONG_STEPS}" in out, out
        model = os.path.join("checkpoint", "model.safetensors")
        assert read(os.path.join(r3, model)) == read(os.path.join(r2long, model)), \
            "resumed two-rank weights differ from the uninterrupted two-rank run"
        assert untimed_rows(r3) == untimed_rows(r2long), "resumed metrics differ"
        print(f"resume under mpiexec: after {LONG_STEPS} steps, weights and metrics identical "
              "to the uninterrupted run")

        # 4. Launch checks.
        p = run([], two, os.path.join(tmp, "bad1"), ok=False)
        want = "llmpc: error: stage 'pretrain' has ranks: 2; launch it as 2 processes: mpirun -np 2"
        assert p.returncode == 1 and want in p.stderr, p.stderr
        p = run(mpi, one, os.path.join(tmp, "bad2"), ok=False)
        want = ("stage 'pretrain' has ranks: 1 but mpirun started 2 processes (rank 0); "
                "set 'ranks: 2' in the stage or launch with -np 1")
        assert p.returncode != 0 and want in p.stderr, p.stderr
        print("launch checks: clear errors for ranks != processes")


if __name__ == "__main__":
    main()
