#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""End to end: `llmpc report` on a real tiny run.

Trains the tiny model for 20 steps with one sample, runs `llmpc report RUN_DIR`, and checks
the charts (PNG signature and size, one SVG polyline per series with one point per metrics
row), report.html (plan figures, the validation loss ratio computed here from
metrics.jsonl, the sample HTML-escaped), `-o OUT_DIR`, and the error for a missing run
directory.
"""
import argparse
import html
import json
import os
import re
import struct
import subprocess
import sys
import tempfile

CHARTS = ["loss", "lr", "grad_norm", "throughput"]


def check_png(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path}: not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (800, 480), (path, width, height)


def polylines(svg):
    return [(name, pts.split()) for name, pts in
            re.findall(r'<polyline data-series="([^"]*)"[^>]*points="([^"]*)"', svg)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llmpc", required=True)
    ap.add_argument("file")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = os.path.join(tmp, "run")
        subprocess.run([args.llmpc, "run", args.file, "--steps", "20", "--samples", "1",
                        "--run-dir", run, "--progress", "quiet"], check=True)
        out = subprocess.run([args.llmpc, "report", run], check=True, capture_output=True,
                             text=True)
        print(out.stdout, out.stderr, end="")
        report = os.path.join(run, "report")
        assert f"report: {report}/report.html" in out.stdout, out.stdout
        assert out.stderr == "", f"unexpected warnings: {out.stderr}"

        rows = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl"))]
        train = [r for r in rows if "loss" in r]
        evals = [r for r in rows if "val_loss" in r]
        assert len(train) == 20
        for name in CHARTS:
            check_png(os.path.join(report, name + ".png"))
            assert os.path.getsize(os.path.join(report, name + ".svg")) > 0
        loss_svg = open(os.path.join(report, "loss.svg")).read()
        lines = polylines(loss_svg)
        assert [n for n, _ in lines] == ["train loss", "validation loss"], lines
        assert len(lines[0][1]) == len(train) and len(lines[1][1]) == len(evals)
        assert ">step</text>" in loss_svg
        assert not os.path.exists(os.path.join(report, "reward.svg")), "no reward fields"

        page = open(os.path.join(report, "report.html")).read()
        plan = json.load(open(os.path.join(run, "plan.json")))
        first, last = evals[0]["val_loss"], evals[-1]["val_loss"]
        expected = (f"first {first:.4f} (step {evals[0]['step']}) -&gt; last {last:.4f} "
                    f"(step {evals[-1]['step']}), ratio {last / first:.3f}")
        assert expected in page, expected
        assert f"{plan['num_params']:,}" in page
        assert f"{plan['batch']} x {plan['seq_len']} tokens" in page
        assert page.count("<svg") == 4
        samples = open(os.path.join(run, "samples.txt")).read()
        assert html.escape(samples, quote=True).replace("&#x27;", "&#39;") in page

        other = os.path.join(tmp, "elsewhere")
        subprocess.run([args.llmpc, "report", run, "-o", other], check=True,
                       capture_output=True)
        assert os.path.exists(os.path.join(other, "report.html"))

        missing = subprocess.run([args.llmpc, "report", os.path.join(tmp, "nope")],
                                 capture_output=True, text=True)
        assert missing.returncode == 1
        assert missing.stderr == f"llmpc: error: run directory '{tmp}/nope' does not exist\n", \
            missing.stderr
    print("report ok")


if __name__ == "__main__":
    sys.exit(main())
