#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""End to end: supervised fine-tuning of SmolLM2-135M-Instruct (all parameters, from its
GGUF file) on a slice of Debian's FAQ, against Hugging Face `transformers` on the same
GGUF (dequantized to float32 by gguf-py):

1. Data: a JSONL chat file of FAQ question -> answer conversations (read here from
   debian-faq.en.txt.gz with a small parser of this file, one conversation of two turns
   with a system message). `llmp-sft-encode` (runtime/SftData) renders, tokenises and
   labels each; transformers' `apply_chat_template(..., return_assistant_tokens_mask=True)`
   on the GGUF's template with its assistant part in `{% generation %}` gives the
   reference tokens and mask; tokens and targets (next token where it is an assistant
   token, else -100) must be equal. The two-turn conversation is longer than the rows of
   128 tokens and is cut (its last kept token without a target).
2. `llmpc run` on an `sft` stage (packing: true, batch 2 x 128, seed 3) for a few steps.
   The reference rebuilds the same split (std::mt19937_64 Fisher-Yates, reimplemented here
   and checked against the C++ standard's 10000th value), packs the training and
   held-out conversations greedily into rows of 128 as packDocuments does, and takes the
   rows of step 1 from the rows' shuffle (the same generator). Packed rows attend inside
   each conversation with positions from 0, so each conversation runs alone through
   transformers' LlamaForCausalLM; the masked cross-entropy summed over the target tokens
   and divided by their number must equal llmp's first training loss and its held-out
   loss before step 1 (metrics.jsonl) within 1e-4 relative.
3. The held-out loss after the last step is below the one before the first.

Skips (exit 0 with a message) without the GGUF, the FAQ (apt-get install debian-faq) or
transformers/gguf.
Usage: sft_smollm2.py --llmpc BIN --encode BIN
"""
import argparse
import gzip
import json
import math
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chat_template import tagged_smollm2  # noqa: E402
from smollm2_gguf import find_smollm2_gguf  # noqa: E402
from common import FAQ, file_or_skip, import_or_skip, run  # noqa: E402

SEQ, BATCH, SEED, STEPS, SPLIT = 128, 2, 3, 4, 0.75
TOLERANCE = 1e-4
MASK64 = (1 << 64) - 1


class MT19937_64:
    """std::mt19937_64 (C++ [rand.predef]; Matsumoto and Nishimura's 64-bit MT19937)."""

    def __init__(self, seed):
        self.mt = [seed & MASK64]
        for i in range(1, 312):
            prev = self.mt[-1]
            self.mt.append((6364136223846793005 * (prev ^ (prev >> 62)) + i) & MASK64)
        self.index = 312

    def __call__(self):
        if self.index >= 312:
            for i in range(312):
                x = (self.mt[i] & 0xFFFFFFFF80000000) | (self.mt[(i + 1) % 312] & 0x7FFFFFFF)
                xa = x >> 1
                if x & 1:
                    xa ^= 0xB5026F5AA96619E9
                self.mt[i] = self.mt[(i + 156) % 312] ^ xa
            self.index = 0
        y = self.mt[self.index]
        self.index += 1
        y ^= (y >> 29) & 0x5555555555555555
        y ^= (y << 17) & 0x71D67FFFEDA60000
        y ^= (y << 37) & 0xFFF7EEE000000000
        y ^= y >> 43
        return y & MASK64


def shuffled(n, rng):
    """Fisher-Yates as runtime/SftData and runtime/Data: i from n-1 down, j = rng() % (i+1)."""
    order = list(range(n))
    for i in range(n - 1, 0, -1):
        j = rng() % (i + 1)
        order[i], order[j] = order[j], order[i]
    return order


def faq_pairs(limit):
    """(question, first answer paragraph) pairs of the FAQ, short answers only."""
    text = gzip.open(FAQ, "rt", encoding="utf-8").read().replace("\u00a0", " ")
    lines = text.split("\n")
    pairs, i = [], 0
    while i < len(lines) and len(pairs) < limit:
        m = re.match(r"^\d+(?:\.\d+)+\. (.*)$", lines[i])
        i += 1
        if not m:
            continue
        q = [m.group(1).strip()]
        while i < len(lines) and lines[i].strip():
            q.append(lines[i].strip())
            i += 1
        while i < len(lines) and not lines[i].strip():
            i += 1
        para = []
        while i < len(lines) and lines[i].strip() and lines[i].startswith("    "):
            para.append(lines[i].strip())
            i += 1
        question, answer = " ".join(q), " ".join(para)
        if question.endswith("?") and answer and len(answer) < 320:
            pairs.append((question, answer))
    return pairs


def pack(docs):
    """Greedy rows as lrt::packDocuments: lists of document indices per row."""
    rows, used = [], SEQ
    for d, doc in enumerate(docs):
        if used + len(doc) > SEQ:
            rows.append([])
            used = 0
        rows[-1].append(d)
        used += len(doc)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llmpc", required=True)
    ap.add_argument("--encode", required=True, help="the llmp-sft-encode test driver")
    args = ap.parse_args()
    rng = MT19937_64(5489)
    for _ in range(9999):
        rng()
    assert rng() == 9981545732273789042, "MT19937_64 reimplementation is wrong"
    if not file_or_skip(FAQ, "apt-get install debian-faq"):
        return 0
    # gguf: transformers dequantizes GGUF files with it.
    modules = import_or_skip("torch", "gguf", "transformers")
    if not modules:
        return 0
    torch, _, transformers = modules
    AutoModelForCausalLM, AutoTokenizer = transformers.AutoModelForCausalLM, transformers.AutoTokenizer
    with tempfile.TemporaryDirectory(prefix="llmp_sft_") as tmp:
        gguf_path = find_smollm2_gguf(tmp)
        if not gguf_path:
            print("SKIP: no SmolLM2 GGUF (scripts/setup.sh --models)")
            return 0
        pairs = faq_pairs(13)
        convs = [[{"role": "user", "content": q}, {"role": "assistant", "content": a}]
                 for q, a in pairs[:11]]
        # Two turns after a system message: both answers are trained on.
        convs.append([{"role": "system", "content": "You answer questions about Debian."},
                      {"role": "user", "content": pairs[11][0]},
                      {"role": "assistant", "content": pairs[11][1]},
                      {"role": "user", "content": pairs[12][0]},
                      {"role": "assistant", "content": pairs[12][1]}])
        data = os.path.join(tmp, "faq.jsonl")
        with open(data, "w", encoding="utf-8") as f:
            for c in convs:
                f.write(json.dumps({"messages": c}, ensure_ascii=False) + "\n")

        # 1. Tokens and targets against transformers.
        tok = AutoTokenizer.from_pretrained(os.path.dirname(gguf_path),
                                            gguf_file=os.path.basename(gguf_path))
        tagged = tagged_smollm2(tok.chat_template)
        spec = os.path.join(tmp, "spec.json")
        with open(spec, "w") as f:
            json.dump({"path": data, "format": "chat"}, f)
        ours = json.loads(run([args.encode, gguf_path, spec]))
        assert "error" not in ours, ours
        docs, targets = [], []
        for i, (c, got) in enumerate(zip(convs, ours["conversations"])):
            ref = tok.apply_chat_template(c, chat_template=tagged, tokenize=True,
                                          return_dict=True, return_assistant_tokens_mask=True)
            ids, mask = list(ref["input_ids"]), list(ref["assistant_masks"])
            want = [ids[t + 1] if mask[t + 1] else -100 for t in range(len(ids) - 1)] + [-100]
            assert got["tokens"] == ids, f"conversation {i}: tokens differ from transformers'"
            assert got["targets"] == want, f"conversation {i}: targets differ from transformers'"
            if len(ids) > SEQ:
                # Cut to the row length, as truncating the text before labelling would: the
                # new last token has no target.
                ids, want = ids[:SEQ], want[:SEQ - 1] + [-100]
            docs.append(ids)
            targets.append(want)
        print(f"data: {len(convs)} conversations, tokens and targets equal transformers'")

        # 2. Fine-tune with llmpc.
        llmp = os.path.join(tmp, "sft.llmp")
        with open(llmp, "w") as f:
            f.write(f"""import std.models.llama
import std.losses
tokenizer smol_tok = from_gguf("{gguf_path}")
model smol = from_gguf("{gguf_path}", context: {SEQ})
dataset faq = jsonl("{data}", format: chat(messages: "messages", train_on: assistant), split: {SPLIT})
stage sft {{
  model: smol; tokenizer: smol_tok; data: faq; packing: true
  optimizer: adamw(lr: 5e-5, weight_decay: 0.0)
  batch: {BATCH} x {SEQ}; steps: {STEPS}; seed: {SEED}
}}
pipeline main = sft
""")
        rundir = os.path.join(tmp, "run")
        log = run([args.llmpc, "run", llmp, "--run-dir", rundir, "--samples", "0",
                   "--progress", "lines"])
        rows = [json.loads(line) for line in open(os.path.join(rundir, "metrics.jsonl"))]
        val = [r["val_loss"] for r in rows if "val_loss" in r]
        first_loss = next(r["loss"] for r in rows if r.get("step") == 1 and "loss" in r)

        # The reference split, rows and step-1 rows.
        order = shuffled(len(convs), MT19937_64(SEED))
        n_train = min(max(round(SPLIT * len(convs)), 1), len(convs) - 1)
        train, held = sorted(order[:n_train]), sorted(order[n_train:])
        train_rows = pack([docs[i] for i in train])
        step1 = shuffled(len(train_rows), MT19937_64(SEED))[:BATCH]

        model = AutoModelForCausalLM.from_pretrained(
            os.path.dirname(gguf_path), gguf_file=os.path.basename(gguf_path),
            torch_dtype=torch.float32)
        model.eval()

        def masked_loss(conv_ids):
            total, count = 0.0, 0
            with torch.no_grad():
                for i in conv_ids:
                    logits = model(torch.tensor([docs[i]])).logits[0].double()
                    tg = torch.tensor(targets[i])
                    keep = tg != -100
                    lp = torch.log_softmax(logits[keep], dim=-1)
                    total += float(-lp[torch.arange(int(keep.sum())), tg[keep]].sum())
                    count += int(keep.sum())
            return total / count

        ref_first = masked_loss([train[d] for r in step1 for d in train_rows[r]])
        ref_val = masked_loss(held)
        print(f"step 1 loss: llmp {first_loss:.6f}, transformers {ref_first:.6f}")
        print(f"held-out loss before training: llmp {val[0]:.6f}, transformers {ref_val:.6f}")
        print(f"held-out loss: {val[0]:.4f} -> {val[-1]:.4f} after {STEPS} steps")
        failures = []
        if not math.isclose(first_loss, ref_first, rel_tol=TOLERANCE):
            failures.append(f"step 1 loss {first_loss} vs transformers {ref_first}")
        if not math.isclose(val[0], ref_val, rel_tol=TOLERANCE):
            failures.append(f"held-out loss {val[0]} vs transformers {ref_val}")
        # 3. Fine-tuning lowers the held-out loss.
        if not val[-1] < val[0]:
            failures.append(f"held-out loss did not drop: {val}")
        if failures:
            print(log)
            print("FAIL:\n  " + "\n  ".join(failures))
            return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
