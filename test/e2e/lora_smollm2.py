#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""End to end: a LoRA `sft` stage on SmolLM2-135M-Instruct (from its Q4_1 GGUF file), trained
by `llmpc run`, ends in a PEFT adapter folder (<run>/adapter) that the `peft` package loads
onto the transformers model of the same GGUF, with llmp's logits.

1. `llmpc run` of a LoRA stage (rank 8, alpha 16, targets q/v/down projections of every
   layer; a few steps on FAQ question -> answer conversations, packed rows of 64 tokens)
   answers a held-out question before and after training through the KV cache on the merged
   weights, compiling prefill/decode_step and no logits_step (--timing names what each
   module compiles); it prints where it wrote the adapter; adapter_config.json has the stage's rank, alpha and
   target modules, and every lora_B of adapter_model.safetensors is nonzero after training
   (they start at zero: PEFT's and llmp's init).
2. `llmpc logits` on the LoRA stage (its compiled logits_step with the frozen base read from
   the GGUF and the adapters of the run's checkpoint, unmerged) on held-out FAQ questions
   equals transformers + `PeftModel.from_pretrained(base, <run>/adapter)` (the reference:
   peft applying the adapter itself, y = x W^T + alpha/r * B(A(x))):
   max |llmp - peft| / max |peft| <= 1e-4 per prompt. The adapter moves peft's logits away
   from the base model's by at least 1e-3 relative (so a missing or zero adapter fails).
Skips (exit 0 with a message) without the GGUF (scripts/setup.sh --models), the FAQ
(apt-get install debian-faq) or peft/transformers/torch/gguf.
"""
import argparse
import json
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import FAQ, file_or_skip, import_or_skip, rel_err, run  # noqa: E402
from sft_smollm2 import faq_pairs  # noqa: E402
from smollm2_gguf import find_smollm2_gguf  # noqa: E402
from torch_llama import read_safetensors  # noqa: E402

SEQ, BATCH, STEPS, SEED = 64, 2, 4, 3
RANK, ALPHA = 8, 16
TOLERANCE = 1e-4  # relative to the largest |logit|
MIN_MOVE = 1e-3   # how far the trained adapter must move the logits, same measure
TRAIN, HELD_OUT = 12, 3  # FAQ pairs: conversations to train on, questions held out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llmpc", required=True)
    args = ap.parse_args()
    if not file_or_skip(FAQ, "apt-get install debian-faq"):
        return 0
    # gguf: transformers dequantizes GGUF files with it.
    modules = import_or_skip("gguf", "peft", "torch", "transformers")
    if not modules:
        return 0
    _, peft, torch, transformers = modules
    AutoModelForCausalLM = transformers.AutoModelForCausalLM
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory(prefix="llmp_lora_") as tmp:
        gguf_path = find_smollm2_gguf(tmp)
        if not gguf_path:
            print("SKIP: no SmolLM2 GGUF (scripts/setup.sh --models)")
            return 0
        pairs = faq_pairs(TRAIN + HELD_OUT)
        data = os.path.join(tmp, "faq.jsonl")
        with open(data, "w", encoding="utf-8") as f:
            for q, a in pairs[:TRAIN]:
                f.write(json.dumps({"messages": [{"role": "user", "content": q},
                                                 {"role": "assistant", "content": a}]},
                                   ensure_ascii=False) + "\n")
        prompts = [q for q, _ in pairs[TRAIN:]]

        # 1. Train the adapter; the run writes it in PEFT's format.
        llmp = os.path.join(tmp, "lora.llmp")
        with open(llmp, "w") as f:
            f.write(f"""import std.models.llama
import std.losses
tokenizer smol_tok = from_gguf("{gguf_path}")
model smol = from_gguf("{gguf_path}", context: {SEQ})
dataset faq = jsonl("{data}", format: chat(messages: "messages", train_on: assistant), split: 0.75)
stage lora : sft {{
  model: smol; tokenizer: smol_tok; data: faq; packing: true
  adapter: lora(rank: {RANK}, alpha: {ALPHA}, targets: [wq, wv, w_down])
  optimizer: adamw(lr: 2e-3, weight_decay: 0.0)
  batch: {BATCH} x {SEQ}; steps: {STEPS}; seed: {SEED}
}}
pipeline main = lora
""")
        rundir = os.path.join(tmp, "run")
        log = run([args.llmpc, "run", llmp, "--run-dir", rundir, "--samples", "1",
                   "--timing", "--progress", "lines"], stderr=True)
        # The answers run through the sampler's prefill/decode_step on the merged weights, so
        # neither module compiles a logits_step (llmpc.cpp compileStage, withoutLogits).
        compiled = [line for line in log.splitlines() if line.startswith("compiling 'lora': ")]
        assert compiled == ["compiling 'lora': decode_step, prefill_step",
                            "compiling 'lora': apply_step, eval_step, grad_step"], compiled
        samples = open(os.path.join(rundir, "samples.txt")).read()
        for label in ("before training", "after training"):
            assert f"--- {label}: held-out question 1 ---" in samples, samples
        adapter = os.path.join(rundir, "adapter")
        assert f"adapter: {adapter} (PEFT" in log, log
        config = json.load(open(os.path.join(adapter, "adapter_config.json")))
        assert (config["r"], config["lora_alpha"]) == (RANK, ALPHA), config
        assert sorted(config["target_modules"]) == ["down_proj", "q_proj", "v_proj"], config
        assert config["base_model_name_or_path"] == gguf_path, config
        tensors, _ = read_safetensors(os.path.join(adapter, "adapter_model.safetensors"))
        layers = 30  # SmolLM2-135M
        assert len(tensors) == 2 * 3 * layers, sorted(tensors)
        smallest_b = min(float(np.abs(v).max()) for k, v in tensors.items() if "lora_B" in k)
        print(f"adapter: {len(tensors)} tensors; smallest max |lora_B| {smallest_b:.2e}")
        assert smallest_b > 0, "a lora_B is still zero after training"

        # 2. llmp's unmerged LoRA forward against peft on the same GGUF.
        out = os.path.join(tmp, "llmp.safetensors")
        run([args.llmpc, "logits", llmp, "--run-dir", rundir, "-o", out]
            + [a for p in prompts for a in ("--prompt", p)])
        ours, _ = read_safetensors(out)
        base = AutoModelForCausalLM.from_pretrained(
            os.path.dirname(gguf_path), gguf_file=os.path.basename(gguf_path),
            dtype=torch.float32, attn_implementation="eager").eval()
        with torch.no_grad():
            plain = [base(torch.from_numpy(ours[f"ids.{i}"].astype(np.int64))[None]).logits[0]
                     .numpy() for i in range(len(prompts))]
        model = peft.PeftModel.from_pretrained(base, adapter).eval()
        worst = 0.0
        for i, prompt in enumerate(prompts):
            ids = torch.from_numpy(ours[f"ids.{i}"].astype(np.int64))[None]
            with torch.no_grad():
                want = model(ids).logits[0].numpy()
            rel = rel_err(ours[f"logits.{i}"], want)
            moved = rel_err(plain[i], want)
            worst = max(worst, rel)
            print(f"held-out {prompt[:50]!r}...: {ids.shape[1]} tokens, llmp LoRA vs peft "
                  f"{rel:.2e} (the adapter moves the logits by {moved:.2e})")
            assert moved >= MIN_MOVE, f"the adapter barely moves the logits ({moved:.2e})"
        assert worst <= TOLERANCE, f"llmp vs peft: relative error {worst:.2e} > {TOLERANCE}"
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
