#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""End to end: a model trained by llmp, exported with `llmpc export --format hf`, loads in
Hugging Face `transformers` and behaves the same; `llmpc import-hf` brings it back bit for bit.

The tiny model of Inputs/tiny.llmp (with context 64 instead of 32, so that a prompt and 32
greedy tokens fit in one window; llmp slides its window past the context, transformers
would not) trains for 30 steps on the King James Bible. Then:
1. `llmpc export FILE --run-dir RUN --format hf -o HF`; AutoModelForCausalLM loads HF in
   float32 with eager attention and AutoTokenizer loads its tokenizer.
2. Logits: `llmpc logits` (the compiled logits_step) against transformers on KJV prompts;
   max |llmp - hf| / max |hf| must be <= 1e-4.
3. Tokenizer: the HF tokenizer gives llmp's ids on every verse of the corpus (llmp's ids
   are the run's token cache, tokens.bin; the verse texts are those ids decoded by the
   `sentencepiece` package) and on odd strings (through `llmpc logits`).
4. Greedy generation: 32 tokens from each prompt, llmp (`--greedy 32`, temperature 0)
   against `model.generate(do_sample=False)`, token for token.
5. `llmpc import-hf HF -o RUN2` gives every llmp tensor bit for bit, and exporting RUN2
   again gives a byte-identical model.safetensors.
Skips (exit 0 with a message) without transformers/sentencepiece or the KJV.
"""
import argparse
import os
import re
import struct
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import KJV, file_or_skip, import_or_skip, rel_err, run  # noqa: E402
from torch_llama import read_safetensors  # noqa: E402

STEPS = 30
GREEDY = 32
PROMPTS = [
    "In the beginning God created",
    "And it came to pass, when the",
    "The LORD is my shepherd; I shall not",
    "Blessed are the poor in spirit: for theirs is",
    "And God said unto Moses,",
]
# Odd text for the tokenizer: runs of spaces, a tab, characters outside the vocabulary
# (byte fallback), literal "<unk>" and byte-piece spellings.
ODD = [
    "  two  leading spaces and   three",
    "tab\there, caf\u00e9 na\u00efve \u00c5ngstr\u00f6m \u03bb\u03cc\u03b3\u03bf\u03c2",
    "emoji \U0001F600 and \u20ac5 and \u4e2d\u6587",
    "<unk> and <0x41> are just text",
    "trailing space ",
]


def read_token_cache(path):
    """ids of a run's tokens.bin: "LLMPTOK1", u64 key length, key, u64 n, i32[n]."""
    with open(path, "rb") as f:
        assert f.read(8) == b"LLMPTOK1"
        (klen,) = struct.unpack("<Q", f.read(8))
        f.read(klen)
        (n,) = struct.unpack("<Q", f.read(8))
        return np.frombuffer(f.read(4 * n), dtype=np.int32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llmpc", required=True)
    ap.add_argument("file")
    args = ap.parse_args()
    modules = import_or_skip("sentencepiece", "torch", "transformers")
    if not modules or not file_or_skip(KJV, "apt-get install bibledit-data"):
        return
    sentencepiece, torch, transformers = modules
    torch.set_num_threads(2)

    with tempfile.TemporaryDirectory() as tmp:
        src = open(args.file).read()
        src, n = re.subn(r"context: 32\b", "context: 64", src)
        assert n == 1, "Inputs/tiny.llmp no longer declares 'context: 32'"
        llmp = os.path.join(tmp, "tiny64.llmp")
        open(llmp, "w").write(src)
        run_dir, hf_dir = os.path.join(tmp, "run"), os.path.join(tmp, "hf")
        run([args.llmpc, "run", llmp, "--run-dir", run_dir, "--steps", str(STEPS),
             "--samples", "0", "--progress", "quiet"])

        # 1. Export and load.
        print(run([args.llmpc, "export", llmp, "--run-dir", run_dir, "--format", "hf",
                   "-o", hf_dir]).strip())
        model = transformers.AutoModelForCausalLM.from_pretrained(
            hf_dir, dtype=torch.float32, attn_implementation="eager")
        model.eval()
        tok = transformers.AutoTokenizer.from_pretrained(hf_dir)

        # 2. Logits of the prompts (and the odd strings' ids), with greedy continuations.
        out = os.path.join(tmp, "llmp.safetensors")
        run([args.llmpc, "logits", llmp, "--run-dir", run_dir, "--greedy", str(GREEDY),
             "-o", out] + [a for p in PROMPTS + ODD for a in ("--prompt", p)])
        ref, meta = read_safetensors(out)
        worst = 0.0
        for i, prompt in enumerate(PROMPTS):
            ids = ref[f"ids.{i}"].astype(np.int64)
            with torch.no_grad():
                hf = model(torch.from_numpy(ids)[None]).logits[0].numpy()
            ours = ref[f"logits.{i}"]
            assert hf.shape == ours.shape, (hf.shape, ours.shape)
            rel = rel_err(ours, hf)
            worst = max(worst, rel)
            print(f"logits {prompt!r}: {len(ids)} tokens, max |llmp - hf| / max |hf| = {rel:.2e}")
        assert worst <= 1e-4, f"logits differ: relative error {worst:.2e} > 1e-4"

        # 3. Tokenizer ids: prompts and odd strings (llmp's ids from `llmpc logits`) ...
        for i, text in enumerate(PROMPTS + ODD):
            want = ref[f"ids.{i}"].tolist()
            got = tok(text, add_special_tokens=True)["input_ids"]
            assert got == want, f"ids of {text!r}: hf {got} != llmp {want}"
            assert tok.decode(got) == text, f"hf decode of {text!r} gives {tok.decode(got)!r}"
        # ... and every verse of the corpus (llmp encodes it line by line, '\n' a byte piece).
        sp = sentencepiece.SentencePieceProcessor(
            model_file=os.path.join(run_dir, "checkpoint", "tokenizer.model"))
        newline = sp.piece_to_id("<0x0A>")
        cache = read_token_cache(os.path.join(run_dir, "tokens.bin"))
        cuts = np.flatnonzero(cache == newline)
        lines, starts = [], np.concatenate([[0], cuts + 1])
        for b, e in zip(starts, np.concatenate([cuts, [len(cache)]])):
            if e > b:
                lines.append(cache[b:e].tolist())
        texts = [sp.decode(ids) for ids in lines]
        tok.model_max_length = 1 << 30  # whole verses, not model inputs: no length warning
        got = tok(texts, add_special_tokens=True)["input_ids"]
        mismatched = [i for i in range(len(texts)) if got[i] != lines[i]]
        assert not mismatched, (f"{len(mismatched)} of {len(texts)} verses differ; first: "
                                f"{texts[mismatched[0]]!r}")
        print(f"tokenizer: {len(texts)} verses, {sum(map(len, lines))} ids, all identical "
              f"(and {len(PROMPTS) + len(ODD)} prompts/odd strings)")

        # 4. Greedy generation.
        for i, prompt in enumerate(PROMPTS):
            ids = torch.from_numpy(ref[f"ids.{i}"].astype(np.int64))[None]
            with torch.no_grad():
                gen = model.generate(ids, attention_mask=torch.ones_like(ids),
                                     max_new_tokens=GREEDY, min_new_tokens=GREEDY,
                                     do_sample=False)
            hf_new = gen[0, ids.shape[1]:].tolist()
            ours = ref[f"greedy.{i}"].tolist()
            assert hf_new == ours, (f"greedy continuation of {prompt!r} differs:\n"
                                    f"  hf   {hf_new}\n  llmp {ours}")
            print(f"greedy {prompt!r}: {GREEDY} tokens identical: "
                  f"{tok.decode(ours)!r}")

        # 5. Import back, bit for bit; export again, byte for byte.
        run2, hf2 = os.path.join(tmp, "run2"), os.path.join(tmp, "hf2")
        print(run([args.llmpc, "import-hf", hf_dir, "-o", run2]).strip())
        a, _ = read_safetensors(os.path.join(run_dir, "checkpoint", "model.safetensors"))
        b, meta2 = read_safetensors(os.path.join(run2, "checkpoint", "model.safetensors"))
        assert sorted(a) == sorted(b), (sorted(a), sorted(b))
        for name in a:
            assert a[name].shape == b[name].shape and a[name].tobytes() == b[name].tobytes(), name
        assert meta2["source"] == "huggingface", meta2
        run([args.llmpc, "export", llmp, "--run-dir", run2, "--format", "hf", "-o", hf2])
        for f in ("model.safetensors", "config.json", "tokenizer.json"):
            assert open(os.path.join(hf_dir, f), "rb").read() == \
                open(os.path.join(hf2, f), "rb").read(), f"re-exported {f} differs"
        print(f"import-hf: {len(a)} tensors bitwise identical; re-export byte-identical")


if __name__ == "__main__":
    main()
