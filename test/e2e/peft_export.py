#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""End to end: a LoRA stage's adapter exported with `llmpc export --format peft` loads in the
`peft` package onto the base model and gives llmp's logits; the merged export
(`--format hf` on the LoRA stage, runtime/Lora's merge) loads in `transformers` with the
same logits.

Inputs/tiny_lora.llmp: the tiny llama (context 64) pretrained for a few steps on the King
James Bible, and a stage `tune` with `adapter: lora(rank: 4, alpha: 8, targets: [wq, wv,
w_down], rslora: true)`. The adapter's checkpoint is written by this test with random
nonzero A and B in llmp's names and PEFT's layout (`layers.N.wq.lora_A` [rank, in],
`.lora_B` [out, rank]), which is what the LoRA stage's trainer writes. (`tune` cannot run
here: an `sft` stage renders chats with a GGUF tokenizer's template. test/e2e/lora_smollm2.py
trains a LoRA stage of SmolLM2 with `llmpc run` and compares its compiled, unmerged LoRA
forward, `llmpc logits`, with peft.)

Checks (reference: the `peft` package applying the adapter itself, unmerged:
y = x W^T + scale * B(A(x)), scale = alpha / sqrt(r)):
1. adapter_config.json equals, field by field, the one peft writes for the same LoraConfig
   on the same base model (get_peft_model + save_pretrained), and adapter_model.safetensors
   has the same tensor names and shapes; PeftModel.from_pretrained loads our values.
2. Logits of peft (base + adapter) equal llmp's compiled logits of the merged model
   (`llmpc export --format hf` of the LoRA stage, `llmpc import-hf`, `llmpc logits`):
   max |llmp - peft| / max |peft| <= 1e-4; the adapter moves the logits by far more.
3. The merged folder in transformers gives peft's logits (<= 1e-4), and its weights equal
   peft's own merge (merge_and_unload) within 1e-6 relative.
Skips (exit 0 with a message) without peft/transformers/torch/safetensors or the KJV.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import KJV, file_or_skip, import_or_skip, rel_err, run  # noqa: E402
from torch_llama import read_safetensors  # noqa: E402

STEPS = 20
RANK, ALPHA = 4, 8
TARGETS = ["wq", "wv", "w_down"]
PROMPTS = [
    "In the beginning God created",
    "And it came to pass, when the",
    "The LORD is my shepherd; I shall not",
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llmpc", required=True)
    ap.add_argument("file")
    args = ap.parse_args()
    modules = import_or_skip("peft", "safetensors", "safetensors.numpy", "torch", "transformers")
    if not modules or not file_or_skip(KJV, "apt-get install bibledit-data"):
        return
    peft, safetensors, _, torch, transformers = modules
    torch.set_num_threads(2)
    llmpc = os.path.abspath(args.llmpc)

    with tempfile.TemporaryDirectory() as tmp:
        # The stages' run directories are the defaults, runs/main/<stage>, under tmp.
        src = os.path.dirname(os.path.abspath(args.file))
        for f in ("tiny_lora.llmp", "tiny_lora.jsonl"):
            shutil.copy(os.path.join(src, f), tmp)
        llmp = "tiny_lora.llmp"
        run([llmpc, "run", llmp, "--stage", "pretrain", "--steps", str(STEPS), "--samples", "0",
             "--progress", "quiet"], tmp)
        base_run = os.path.join(tmp, "runs", "main", "pretrain")
        base, _ = read_safetensors(os.path.join(base_run, "checkpoint", "model.safetensors"))

        # The LoRA stage's checkpoint: random nonzero adapters (A like PEFT's Kaiming-uniform
        # init, B normal instead of zeros so that the adapter changes the model).
        rng = np.random.default_rng(11)
        adapters = {}
        layers = sum(1 for n in base if n.endswith(".wq"))
        for i in range(layers):
            for t in TARGETS:
                fan_in, fan_out = base[f"layers.{i}.{t}"].shape  # llmp W is [in, out]
                bound = 1 / np.sqrt(fan_in)
                adapters[f"layers.{i}.{t}.lora_A"] = rng.uniform(
                    -bound, bound, (RANK, fan_in)).astype(np.float32)
                adapters[f"layers.{i}.{t}.lora_B"] = rng.normal(
                    0, 0.2, (fan_out, RANK)).astype(np.float32)
        tune_run = os.path.join(tmp, "runs", "main", "tune")
        os.makedirs(os.path.join(tune_run, "checkpoint"))
        safetensors.numpy.save_file(adapters, os.path.join(tune_run, "checkpoint",
                                                           "model.safetensors"))

        print(run([llmpc, "export", llmp, "--stage", "tune", "--format", "peft", "-o", "peft"],
                  tmp).strip())
        print(run([llmpc, "export", llmp, "--stage", "tune", "--format", "hf", "-o", "merged"],
                  tmp).strip())
        run([llmpc, "export", llmp, "--stage", "pretrain", "--format", "hf", "-o", "base"], tmp)

        def load(folder):
            m = transformers.AutoModelForCausalLM.from_pretrained(
                os.path.join(tmp, folder), dtype=torch.float32, attn_implementation="eager")
            return m.eval()

        # 1. The config and tensor names against what peft itself writes for this adapter.
        ref_cfg = peft.LoraConfig(r=RANK, lora_alpha=ALPHA, lora_dropout=0.05,
                                  target_modules=["q_proj", "v_proj", "down_proj"],
                                  use_rslora=True, bias="none", task_type="CAUSAL_LM")
        peft.get_peft_model(load("base"), ref_cfg).save_pretrained(os.path.join(tmp, "ref"))
        ours = json.load(open(os.path.join(tmp, "peft", "adapter_config.json")))
        theirs = json.load(open(os.path.join(tmp, "ref", "adapter_config.json")))
        # peft records the folder the base was loaded from; ours has none (null).
        assert ours.pop("base_model_name_or_path") is None
        theirs.pop("base_model_name_or_path")
        # target_modules is a set inside peft, saved in set order.
        assert sorted(ours.pop("target_modules")) == sorted(theirs.pop("target_modules"))
        assert ours == theirs, {k: (ours.get(k), theirs.get(k)) for k in set(ours) | set(theirs)
                                if ours.get(k) != theirs.get(k)}
        with safetensors.safe_open(os.path.join(tmp, "peft", "adapter_model.safetensors"),
                                   "np") as f:
            our_tensors = {k: f.get_tensor(k) for k in f.keys()}
            assert f.metadata() == {"format": "pt"}, f.metadata()
        with safetensors.safe_open(os.path.join(tmp, "ref", "adapter_model.safetensors"),
                                   "np") as f:
            ref_shapes = {k: f.get_slice(k).get_shape() for k in f.keys()}
        assert {k: list(v.shape) for k, v in our_tensors.items()} == ref_shapes, \
            (sorted(our_tensors), sorted(ref_shapes))
        print(f"adapter_config.json equals peft's; {len(our_tensors)} tensors with peft's "
              f"names and shapes")

        model = peft.PeftModel.from_pretrained(load("base"), os.path.join(tmp, "peft"))
        model.eval()
        loaded = {k: v.detach().numpy() for k, v in model.state_dict().items() if "lora_" in k}
        for k, v in our_tensors.items():
            k2 = k.replace(".weight", ".default.weight")
            assert np.array_equal(loaded[k2], v), f"peft loaded {k2} differently"
        layer = model.base_model.model.model.layers[0].self_attn.q_proj
        assert abs(layer.scaling["default"] - ALPHA / np.sqrt(RANK)) < 1e-12, layer.scaling

        # 2. llmp's compiled logits of the merged model.
        run([llmpc, "import-hf", "merged", "-o", "runs/merged"], tmp)
        out = os.path.join(tmp, "llmp.safetensors")
        run([llmpc, "logits", llmp, "--stage", "pretrain", "--run-dir", "runs/merged", "-o", out]
            + [a for p in PROMPTS for a in ("--prompt", p)], tmp)
        ref, _ = read_safetensors(out)
        base_model, merged_model = load("base"), load("merged")
        worst = worst_merged = 0.0
        for i, prompt in enumerate(PROMPTS):
            ids = torch.from_numpy(ref[f"ids.{i}"].astype(np.int64))[None]
            with torch.no_grad():
                want = model(ids).logits[0].numpy()
                plain = base_model(ids).logits[0].numpy()
                merged = merged_model(ids).logits[0].numpy()
            rel = rel_err(ref[f"logits.{i}"], want)
            moved = rel_err(plain, want)
            worst = max(worst, rel)
            worst_merged = max(worst_merged, rel_err(merged, want))
            print(f"logits {prompt!r}: {ids.shape[1]} tokens, llmp merged vs peft {rel:.2e} "
                  f"(the adapter moves them by {moved:.2e})")
            assert moved > 1e-2, f"the adapter barely changes the logits ({moved:.2e})"
        assert worst <= 1e-4, f"llmp vs peft: relative error {worst:.2e} > 1e-4"
        print(f"transformers on the merged folder vs peft: {worst_merged:.2e}")
        assert worst_merged <= 1e-4, f"merged vs peft: relative error {worst_merged:.2e} > 1e-4"

        # 3. The merged weights against peft's merge_and_unload.
        peft_merged = model.merge_and_unload().state_dict()
        ours_merged = merged_model.state_dict()
        worst_w = 0.0
        for k, v in peft_merged.items():
            if k == "lm_head.weight":
                continue
            worst_w = max(worst_w, rel_err(ours_merged[k].numpy(), v.numpy()))
        print(f"merged weights vs peft merge_and_unload: {worst_w:.2e}")
        assert worst_w <= 1e-6, f"merged weights differ: {worst_w:.2e} > 1e-6"


if __name__ == "__main__":
    main()
