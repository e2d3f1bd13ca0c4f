# SPDX-License-Identifier: Apache-2.0
"""Reference dequantization for GgufModelTest, by gguf-py (`gguf.quants.dequantize`, the
pip package `gguf` maintained with llama.cpp).

    gguf-reference.py MODEL.gguf OUT_DIR

writes OUT_DIR/reference.safetensors with, for each tensor below, the fp32 values gguf-py
dequantizes (in ggml order, flattened):
  - real.<name>: tensors of MODEL of every type it holds (SmolLM2-135M-Instruct.Q4_1.gguf:
    token_embd.weight Q8_0, blk.0.attn_q.weight and blk.29.ffn_down.weight Q4_1,
    blk.0.attn_norm.weight F32);
  - made.<type>: random values quantized by gguf-py to Q4_0, Q4_1, Q8_0, F16 and F32 and
    written with gguf.GGUFWriter to OUT_DIR/made.gguf, which the test reads too.
Exits with status 77 when the gguf or safetensors package is missing."""
import os
import sys

try:
    import numpy as np
    import gguf
    from safetensors.numpy import save_file
except ImportError as e:
    print(f"gguf-reference: {e}", file=sys.stderr)
    sys.exit(77)

REAL = ["token_embd.weight", "blk.0.attn_q.weight", "blk.29.ffn_down.weight",
        "blk.0.attn_norm.weight"]
MADE = ["Q4_0", "Q4_1", "Q8_0", "F16", "F32"]


def main():
    model, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    tensors = {}
    reader = gguf.GGUFReader(model)
    by_name = {t.name: t for t in reader.tensors}
    for name in REAL:
        t = by_name[name]
        values = gguf.quants.dequantize(t.data, t.tensor_type)
        tensors["real." + name] = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)

    rng = np.random.default_rng(0)
    writer = gguf.GGUFWriter(os.path.join(out, "made.gguf"), "llama")
    for qtype in MADE:
        t = getattr(gguf.GGMLQuantizationType, qtype)
        values = rng.normal(0.0, 1.0, size=(3, 64)).astype(np.float32)
        quantized = gguf.quants.quantize(values, t)
        writer.add_tensor("made." + qtype, quantized, raw_dtype=t)
        tensors["made." + qtype] = np.ascontiguousarray(
            gguf.quants.dequantize(quantized, t), dtype=np.float32).reshape(-1)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    save_file(tensors, os.path.join(out, "reference.safetensors"))


if __name__ == "__main__":
    main()
