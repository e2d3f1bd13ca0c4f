#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""End to end: Ctrl-C (SIGINT) during `llmpc run` finishes the step in progress, writes its
checkpoint, prints how to resume and exits 130; the run directory then holds no output of
an earlier run in the same folder (samples.txt, checkpoint/model.safetensors), and the
printed `--resume` command finishes the run with the same weights as an uninterrupted one.
"""
import argparse
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resume_exact import write_corpus  # noqa: E402

STEPS = 240


def step_rows(run):
    path = os.path.join(run, "metrics.jsonl")
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return sum(1 for l in f if l.endswith("\n") and '"loss"' in l)


def read(path):
    with open(path, "rb") as f:
        return f.read()


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
        llmp = os.path.join(tmp, "interrupt.llmp")
        open(llmp, "w").write(src)

        def run(run_dir, *extra):
            p = subprocess.run([args.llmpc, "run", llmp, "--run-dir", run_dir, "--samples", "1",
                                "--progress", "lines", *extra], capture_output=True, text=True)
            assert p.returncode == 0, f"llmpc failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"

        ref = os.path.join(tmp, "ref")
        run(ref)
        model = "checkpoint/model.safetensors"

        # An earlier, shorter run in the folder leaves samples and a final model behind.
        folder = os.path.join(tmp, "run")
        run(folder, "--steps", "20")
        assert os.path.exists(os.path.join(folder, "samples.txt"))

        proc = subprocess.Popen([args.llmpc, "run", llmp, "--run-dir", folder, "--samples", "1",
                                 "--progress", "lines"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while step_rows(folder) < 30 and proc.poll() is None:
            time.sleep(0.001)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate()
        assert proc.returncode == 130, f"rc {proc.returncode}, expected 130:\n{out}\n{err}"
        m = re.search(r"^llmpc: interrupted at step (\d+) of 240; checkpoint (\S+)$", err, re.M)
        assert m, f"no 'interrupted at step' line in:\n{err}"
        step = int(m.group(1))
        assert 30 <= step < STEPS, step
        assert m.group(2) == os.path.join(folder, "checkpoint", f"step-{step:08d}"), m.group(2)
        assert os.path.isdir(m.group(2))
        assert step_rows(folder) == step, f"{step_rows(folder)} step rows, stopped at {step}"
        for stale in ("samples.txt", model):
            assert not os.path.exists(os.path.join(folder, stale)), f"{stale} of the earlier run is still there"
        plan = json.load(open(os.path.join(folder, "plan.json")))
        assert plan["steps"] == STEPS, plan["steps"]
        m = re.search(r"^llmpc: continue with: (.*)$", err, re.M)
        assert m, f"no resume hint in:\n{err}"
        resume = shlex.split(m.group(1))
        assert resume[-1] == "--resume" and folder in resume, resume
        print(f"SIGINT: stopped at step {step} with a checkpoint; hint: {m.group(1)}")

        p = subprocess.run([args.llmpc] + resume[1:], capture_output=True, text=True)
        assert p.returncode == 0, f"resume failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
        assert step_rows(folder) == STEPS
        assert read(os.path.join(folder, model)) == read(os.path.join(ref, model)), \
            "resumed weights differ from the uninterrupted run"
        assert os.path.exists(os.path.join(folder, "samples.txt"))
        print("resumed: weights identical to the uninterrupted run")


if __name__ == "__main__":
    main()
