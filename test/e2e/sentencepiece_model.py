#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""SentencePiece `.model` files through libsentencepiece (runtime/Tokenizer::load) against
the `sentencepiece` pip package.

The test trains three models with the pip package on the State of the Union addresses of
1790-1899 (../shared/data/corpora/sotu, one sentence a line): a unigram model and a BPE model with
SentencePiece's defaults (NFKC normalisation, dummy prefix, unknown characters as <unk>)
and a BPE model with byte fallback; then both our runtime (through the llmp-spm-encode
driver) and the pip package encode every line of the addresses of 1900-2023, a corpus
the models never saw. Ids must be identical on every line, and so must the decoded text,
except unigram lines with two segmentations of exactly equal total score (a Viterbi tie
that Debian's libsentencepiece 0.1.97 and the pip package 0.2.x break differently; both
must then decode to the line).

Skips (exit 0 with a message) without the sentencepiece package or the corpus.
Usage: sentencepiece_model.py --encode BIN
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
DATA = os.environ.get("LLMP_SHARED_DATA", os.path.join(SOURCE, "..", "shared", "data"))
SOTU = os.path.join(DATA, "corpora", "sotu")

MODELS = [
    ("unigram", dict(model_type="unigram", vocab_size=4000)),
    ("bpe", dict(model_type="bpe", vocab_size=4000)),
    ("bpe-byte-fallback", dict(model_type="bpe", vocab_size=4000, byte_fallback=True,
                               character_coverage=0.9995)),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--encode", required=True, help="the llmp-spm-encode test driver")
    args = ap.parse_args()
    try:
        import sentencepiece as spm
    except ImportError as e:
        print(f"SKIP: {e.name} is not installed (scripts/setup.sh --tests installs it)")
        return 0
    files = sorted(glob.glob(os.path.join(SOTU, "*.txt")))
    if not files:
        print(f"SKIP: the State of the Union corpus is not at {SOTU} (set LLMP_SHARED_DATA)")
        return 0
    train = [f for f in files if os.path.basename(f)[:4] < "1900"]
    held_out = [f for f in files if os.path.basename(f)[:4] >= "1900"]

    failures = []
    with tempfile.TemporaryDirectory(prefix="llmp_spm_") as tmp:
        train_txt = os.path.join(tmp, "train.txt")
        test_txt = os.path.join(tmp, "test.txt")
        for paths, out in ((train, train_txt), (held_out, test_txt)):
            with open(out, "w", encoding="utf-8") as f:
                for p in paths:
                    with open(p, encoding="utf-8") as src:
                        # One sentence a line (the files hold an address a line).
                        text = src.read().strip().replace(". ", ".\n")
                        f.write(text + "\n")
        with open(test_txt, encoding="utf-8") as f:
            lines = f.read().split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        for name, opts in MODELS:
            prefix = os.path.join(tmp, name)
            spm.SentencePieceTrainer.train(input=train_txt, model_prefix=prefix, num_threads=2,
                                           minloglevel=2, **opts)
            sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
            out = subprocess.run([args.encode, prefix + ".model", test_txt], capture_output=True,
                                 check=True)
            ours = [json.loads(r) for r in out.stdout.decode("utf-8").splitlines()]
            if len(ours) != len(lines):
                failures.append(f"{name}: {len(ours)} lines encoded, want {len(lines)}")
                continue
            bad = ties = n_ids = 0
            for i, (line, row) in enumerate(zip(lines, ours)):
                want = sp.encode(line)
                n_ids += len(want)
                if row["ids"] == want and row["decoded"] == sp.decode(want):
                    continue
                # A unigram line may have two segmentations of exactly the same total score;
                # Debian's libsentencepiece (0.1.97) and the pip package (0.2.x) break such
                # Viterbi ties differently. Both are maximum-likelihood segmentations.
                score = lambda ids: sum(sp.get_score(t) for t in ids)  # noqa: E731
                if (name == "unigram" and score(row["ids"]) == score(want)
                        and sp.decode(row["ids"]) == line == sp.decode(want)):
                    ties += 1
                    continue
                bad += 1
                if bad <= 3:
                    failures.append(f"{name}: line {i} differs: {line[:80]!r}")
            if bad:
                failures.append(f"{name}: {bad} of {len(lines)} lines differ")
            print(f"{name}: {len(lines)} lines, {sum(len(s.encode()) for s in lines)} bytes, "
                  f"{n_ids} ids, {bad} lines differ, {ties} equal-score Viterbi ties")
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
