#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""End to end: `llmpc build` of `sft` stages (full fine-tuning, LoRA on an fp32 or a bf16
base, QLoRA) links a standalone trainer that trains exactly as `llmpc run` does, bit for
bit.

No download: the test writes its own tiny pretrained model, a GGUF v3 file (the layout of
ggml docs/gguf.md) with a llama of random weights (vocab 265, dim 32, 2 layers, 4 heads,
2 key/value heads, hidden 64, context 64) and a byte-level BPE tokenizer (GPT-2's 256 byte
tokens, 6 merges, the ChatML specials <|im_start|> <|im_end|> <|endoftext|>) with a ChatML
`tokenizer.chat_template` (SmolLM2's); and 24 chat conversations (arithmetic questions).
The .llmp declares `model tiny = from_gguf(...)` and five sft stages on it: `full` (every
parameter), `lora` (rank 4, dropout 0.05, wq/wv/w_down), `blora` (`precision: bf16`: the
frozen linear weights stored in bf16, LoRA on the attention) and `qlora` (NF4 base, blocks
of 64 with double quantization, LoRA on every linear layer), and `tune` (LoRA on wq/wv
starting `from: full`: its weights are full's checkpoint, a safetensors file).

Per stage:
1. Reference: `llmpc run --stage S --steps STEPS` (the JIT), 2 samples (the KV-cache
   sampler: prefill_step / decode_step, on the merged weights for LoRA / QLoRA).
2. `llmpc build --stage S --steps STEPS`; the binary is copied alone into an empty folder
   and run there with a bare environment; it reads the GGUF at run time from the absolute
   path in its manifest. Its decode_step calls memrefCopy (strided copies of the KV cache
   with 2 key/value heads), which the binary defines itself (nm lists it).
3. metrics.jsonl rows (timing fields aside) equal as exact strings; memory.json's computed
   bytes and measured step heap peak equal (its resident set sizes are the processes'
   own); every other file of the run directory (plan.json, samples.txt,
   checkpoint/model.safetensors, the step checkpoints with their AdamW and data state,
   and for LoRA / QLoRA the PEFT folder adapter/) equal byte for byte, but for the timing
   fields of the step checkpoints' manifest.json and, for `tune`, the adapter's base path
   (`run`'s as it found it, relative; the trainer's absolute); both runs wrote the same
   set of files.
The losses must be finite and change, and samples.txt must hold answers.
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import tempfile

import numpy as np

from aot_build import bare_env, same_metrics
from common import run

STEPS = 6
CKPT_EVERY = 3
STAGES = ("full", "lora", "blora", "qlora", "tune")

VOCAB_BYTES = 256
MERGES = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "s"), ("Ġ", "i"), ("Ġi", "s")]
SPECIALS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>"]
CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
          "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
DIM, LAYERS, HEADS, KV_HEADS, HIDDEN, CONTEXT = 32, 2, 4, 2, 64, 64


def byte_tokens():
    """GPT-2's bytes_to_unicode: the printable string of each byte value 0..255."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + \
        list(range(0xAE, 0xFF + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def gguf_value(v):
    """(type id, payload) of one GGUF metadata value: str, int (u32), float (f32), or a
    list of str (array of strings) or of int (array of i32)."""
    if isinstance(v, str):
        b = v.encode()
        return 8, struct.pack("<Q", len(b)) + b
    if isinstance(v, bool):
        return 7, struct.pack("<B", v)
    if isinstance(v, int):
        return 4, struct.pack("<I", v)
    if isinstance(v, float):
        return 6, struct.pack("<f", v)
    item = 8 if isinstance(v[0], str) else 5
    body = b"".join(gguf_value(x)[1] if item == 8 else struct.pack("<i", x) for x in v)
    return 9, struct.pack("<IQ", item, len(v)) + body


def write_gguf(path, metadata, tensors):
    """A GGUF v3 file: `metadata` (dict) and `tensors` [(name, float32 array)] stored F32,
    each array's dims written fastest first (ggml order), data aligned to 32 bytes."""
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata))
    for key, value in metadata.items():
        t, payload = gguf_value(value)
        out += struct.pack("<Q", len(key)) + key.encode() + struct.pack("<I", t) + payload
    data = b""
    for name, a in tensors:
        dims = a.shape[::-1]
        out += struct.pack("<Q", len(name)) + name.encode() + struct.pack("<I", len(dims))
        out += struct.pack(f"<{len(dims)}Q", *dims) + struct.pack("<IQ", 0, len(data))
        raw = np.ascontiguousarray(a, dtype="<f4").tobytes()
        data += raw + bytes(-len(raw) % 32)
    out += bytes(-len(out) % 32)
    with open(path, "wb") as f:
        f.write(out + data)


def write_tiny_gguf(path):
    """The tiny pretrained llama with its tokenizer (see the module docstring); returns the
    vocabulary size."""
    tokens = byte_tokens() + [a + b for a, b in MERGES] + SPECIALS
    vocab = len(tokens)
    types = [1] * (vocab - len(SPECIALS)) + [3] * len(SPECIALS)
    rng = np.random.default_rng(20251130)

    def normal(*shape, std=0.1):
        return rng.normal(0.0, std, size=shape).astype(np.float32)

    kv_dim = DIM // HEADS * KV_HEADS
    tensors = [("token_embd.weight", normal(vocab, DIM)),
               ("output_norm.weight", np.ones(DIM, np.float32))]
    for i in range(LAYERS):
        # [out, in] as numpy shapes: ggml's dims [in, out].
        for name, shape in [("attn_norm", None), ("attn_q", (DIM, DIM)),
                            ("attn_k", (kv_dim, DIM)), ("attn_v", (kv_dim, DIM)),
                            ("attn_output", (DIM, DIM)), ("ffn_norm", None),
                            ("ffn_gate", (HIDDEN, DIM)), ("ffn_up", (HIDDEN, DIM)),
                            ("ffn_down", (DIM, HIDDEN))]:
            value = np.ones(DIM, np.float32) if shape is None else normal(*shape)
            tensors.append((f"blk.{i}.{name}.weight", value))
    metadata = {
        "general.architecture": "llama",
        "llama.block_count": LAYERS, "llama.context_length": CONTEXT,
        "llama.embedding_length": DIM, "llama.feed_forward_length": HIDDEN,
        "llama.attention.head_count": HEADS, "llama.attention.head_count_kv": KV_HEADS,
        "llama.vocab_size": vocab, "llama.rope.freq_base": 10000.0,
        "llama.attention.layer_norm_rms_epsilon": 1e-5,
        "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "gpt2",
        "tokenizer.ggml.tokens": tokens, "tokenizer.ggml.token_type": types,
        "tokenizer.ggml.merges": [f"{a} {b}" for a, b in MERGES],
        "tokenizer.ggml.bos_token_id": tokens.index("<|im_start|>"),
        "tokenizer.ggml.eos_token_id": tokens.index("<|im_end|>"),
        "tokenizer.ggml.padding_token_id": tokens.index("<|endoftext|>"),
        "tokenizer.chat_template": CHATML,
    }
    write_gguf(path, metadata, tensors)
    return vocab


def write_conversations(path, n=24):
    with open(path, "w") as f:
        for i in range(n):
            a, b = 3 + i % 7, 2 + (5 * i) % 9
            f.write(json.dumps({"messages": [
                {"role": "user", "content": f"What is {a} plus {b}?"},
                {"role": "assistant", "content": f"{a} plus {b} is {a + b}."}]}) + "\n")


LLMP = """import std.models.llama
import std.losses
tokenizer tok = from_gguf("{gguf}")
model tiny = from_gguf("{gguf}", context: {context})
dataset qa = jsonl("{data}", format: chat(messages: "messages", train_on: assistant), split: 0.75)
stage full : sft {{
  model: tiny; tokenizer: tok; data: qa
  optimizer: adamw(lr: 1e-3)
  batch: 2 x 64; steps: 20; seed: 5
}}
stage lora : sft {{
  model: tiny; tokenizer: tok; data: qa
  adapter: lora(rank: 4, alpha: 8, dropout: 0.05, targets: [wq, wv, w_down])
  optimizer: adamw(lr: 1e-2)
  batch: 2 x 64; steps: 20; seed: 5
}}
stage blora : sft {{
  model: tiny; tokenizer: tok; data: qa
  precision: bf16
  adapter: lora(rank: 4, alpha: 8, targets: [wq, wk, wv, wo])
  optimizer: adamw(lr: 1e-2)
  batch: 2 x 64; steps: 20; seed: 5
}}
stage tune : sft {{
  from: full
  data: qa
  adapter: lora(rank: 4, alpha: 8, targets: [wq, wv])
  optimizer: adamw(lr: 1e-2)
  batch: 2 x 64; steps: 20; seed: 5
}}
stage qlora : sft {{
  model: tiny; tokenizer: tok; data: qa
  base: nf4(block: 64, double_quant: true)
  adapter: lora(rank: 4, alpha: 8, targets: all_linear)
  optimizer: adamw(lr: 1e-2)
  batch: 2 x 64; steps: 20; seed: 5
}}
"""


def without(d, keys):
    """The dict `d` without `keys`."""
    return {k: v for k, v in d.items() if k not in keys}


PARENT_CHECKPOINT_IN_RUN = os.path.join("checkpoint", "model.safetensors")
PARENT_CHECKPOINT = os.path.join("runs", "main", "full", PARENT_CHECKPOINT_IN_RUN)
MEASURED = ("metrics.jsonl", "memory.json")  # compared field by field (timing, RSS)


def files(run_dir):
    """Every file under run_dir but MEASURED: relative path -> bytes."""
    out = {}
    for root, _, names in os.walk(run_dir):
        for name in names:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, run_dir)
            if rel not in MEASURED:
                with open(path, "rb") as f:
                    out[rel] = f.read()
    return out


def check_stage(llmpc, llmp, stage, tmp):
    common = ["--samples", "2", "--progress", "lines", "--checkpoint-every", str(CKPT_EVERY)]
    jit = os.path.join(tmp, "jit-" + stage)
    # The samples of a random model may print bytes that are not UTF-8: read them as bytes.
    p = subprocess.run([llmpc, "run", llmp, "--stage", stage, "--steps", str(STEPS),
                        "--run-dir", jit] + common, capture_output=True, cwd=tmp)
    assert p.returncode == 0, f"llmpc run failed ({p.returncode}):\n{p.stdout!r}\n{p.stderr!r}"

    os.mkdir(os.path.join(tmp, "build"))
    built = os.path.join(tmp, "build", "trainer")
    out = run([llmpc, "build", llmp, "--stage", stage, "--steps", str(STEPS), "-o", built],
              cwd=tmp)
    assert f"built {built}: trains stage '{stage}'" in out, out
    alone = os.path.join(tmp, "alone-" + stage)
    os.mkdir(alone)
    # With 2 key/value heads decode_step copies strided KV cache views (memref.copy ->
    # memrefCopy, which the trainer defines: runtime/aot/MemrefCopy.h).
    assert " T memrefCopy" in run(["nm", built]), "the trainer does not link memrefCopy"
    shutil.copy2(built, os.path.join(alone, "trainer"))
    shutil.rmtree(os.path.join(tmp, "build"))
    p = subprocess.run(["./trainer", "--run-dir=aot", "--samples=2", "--progress=lines",
                        f"--checkpoint-every={CKPT_EVERY}"], cwd=alone, env=bare_env(tmp),
                       capture_output=True)
    assert p.returncode == 0, f"trainer failed ({p.returncode}):\n{p.stdout!r}\n{p.stderr!r}"
    aot = os.path.join(alone, "aot")

    ra, losses = same_metrics(jit, aot, STEPS)
    a, b = files(jit), files(aot)
    assert sorted(a) == sorted(b), f"different files: jit {sorted(a)}, aot {sorted(b)}"
    for name in a:
        x, y = a[name], b[name]
        if name == "adapter/adapter_config.json" and stage == "tune":
            # The base is the `from:` checkpoint: `run` names it as it found it, relative
            # to its working directory; the trainer by the absolute path in its manifest.
            x, y = json.loads(x), json.loads(y)
            base = x.pop("base_model_name_or_path"), y.pop("base_model_name_or_path")
            assert base == (PARENT_CHECKPOINT, os.path.join(tmp, PARENT_CHECKPOINT)), base
        if name.endswith("/manifest.json"):
            # A step checkpoint's manifest records timing (elapsed_s, train_s) and the size
            # and CRC of metrics.jsonl, which has timing fields, so its own CRC differs too.
            x, y = (without(json.loads(m), ("elapsed_s", "train_s", "metrics",
                                            "manifest_crc32")) for m in (x, y))
        assert x == y, f"{stage}: {name} differs between llmpc run and the trainer"
    # memory.json: the plan's computed bytes and the measured step heap peak (the same
    # allocations) are equal; the resident set sizes and the baseline made of them are not.
    ma, mb = (json.load(open(os.path.join(d, "memory.json"))) for d in (jit, aot))
    for key in ("weights", "gradients", "optimizer", "frozen", "step_heap"):
        assert ma["plan"][key] == mb["plan"][key], (key, ma, mb)
    assert ma["measured"]["step_heap_peak"] == mb["measured"]["step_heap_peak"], (ma, mb)
    # Two held-out questions answered before and after training (the random model's bytes
    # need not be UTF-8), the reference answers after.
    samples = a["samples.txt"].decode(errors="replace")
    assert samples.count("A: ") == 4 and samples.count("reference: ") == 2, samples
    if stage != "full":
        assert "adapter/adapter_model.safetensors" in a, sorted(a)
    print(f"{stage}: {len(ra)} metrics rows identical (loss {losses[0]} -> {losses[-1]}); "
          f"identical {', '.join(sorted(a))}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llmpc", required=True)
    args = ap.parse_args()
    llmpc = os.path.abspath(args.llmpc)
    tmp = tempfile.mkdtemp(prefix="llmp-aot-sft-")
    try:
        gguf = os.path.join(tmp, "tiny.gguf")
        vocab = write_tiny_gguf(gguf)
        data = os.path.join(tmp, "qa.jsonl")
        write_conversations(data)
        llmp = os.path.join(tmp, "sft.llmp")
        with open(llmp, "w") as f:
            f.write(LLMP.format(gguf=gguf, data=data, context=CONTEXT))
        print(f"tiny GGUF: vocab {vocab}, dim {DIM}, {LAYERS} layers")
        for stage in STAGES:
            if stage == "tune":
                # It starts from the checkpoint of `full` where `run` looks for it
                # (runs/main/full under the working directory, tmp).
                parent = os.path.join(tmp, PARENT_CHECKPOINT)
                os.makedirs(os.path.dirname(parent))
                shutil.copy(os.path.join(tmp, "jit-full", PARENT_CHECKPOINT_IN_RUN), parent)
            check_stage(llmpc, llmp, stage, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
