#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes small GGUF v3 files for the from_gguf tests, with the standard library only
(the layout of ggml docs/gguf.md): a tiny llama (vocab 16, dim 8, 1 layer, 2 heads, 1
key/value head, hidden 16, context 32) and broken variants of it.

    make-gguf.py OUT_DIR

writes OUT_DIR/{tiny,gpt2-arch,q4k,no-ffn-down,untied,truncated,not-gguf}.gguf.
Tensor values are zeros; only the metadata and the tensor infos matter to `llmpc check`."""
import os
import struct
import sys

F32, Q4_0, Q4_K = 0, 2, 12
BLOCK = {F32: (1, 4), Q4_0: (32, 18), Q4_K: (256, 144)}  # elements, bytes per block


def kv_string(key, value):
    k, v = key.encode(), value.encode()
    return struct.pack("<Q", len(k)) + k + struct.pack("<IQ", 8, len(v)) + v


def kv_u32(key, value):
    k = key.encode()
    return struct.pack("<Q", len(k)) + k + struct.pack("<II", 4, value)


def kv_f32(key, value):
    k = key.encode()
    return struct.pack("<Q", len(k)) + k + struct.pack("<If", 6, value)


def gguf(arch="llama", types=None, drop=(), extra=()):
    vocab, dim, hidden, kv_dim = 16, 8, 16, 4
    tensors = [("token_embd.weight", [dim, vocab]), ("output_norm.weight", [dim])]
    for name, dims in [("attn_norm", [dim]), ("attn_q", [dim, dim]), ("attn_k", [dim, kv_dim]),
                       ("attn_v", [dim, kv_dim]), ("attn_output", [dim, dim]),
                       ("ffn_norm", [dim]), ("ffn_gate", [dim, hidden]),
                       ("ffn_up", [dim, hidden]), ("ffn_down", [hidden, dim])]:
        tensors.append((f"blk.0.{name}.weight", dims))
    tensors += list(extra)
    tensors = [t for t in tensors if t[0] not in drop]
    kvs = [kv_string("general.architecture", arch),
           kv_u32(f"{arch}.block_count", 1), kv_u32(f"{arch}.context_length", 32),
           kv_u32(f"{arch}.embedding_length", dim), kv_u32(f"{arch}.feed_forward_length", hidden),
           kv_u32(f"{arch}.attention.head_count", 2), kv_u32(f"{arch}.attention.head_count_kv", 1),
           kv_u32(f"{arch}.vocab_size", vocab), kv_f32(f"{arch}.rope.freq_base", 10000.0),
           kv_f32(f"{arch}.attention.layer_norm_rms_epsilon", 1e-5)]
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)) + b"".join(kvs)
    infos, data = b"", b""
    for name, dims in tensors:
        t = (types or {}).get(name, F32)
        n = 1
        for d in dims:
            n *= d
        elems, size = BLOCK[t]
        nbytes = (n + elems - 1) // elems * size
        infos += struct.pack("<Q", len(name)) + name.encode() + struct.pack("<I", len(dims))
        infos += struct.pack(f"<{len(dims)}Q", *dims) + struct.pack("<IQ", t, len(data))
        data += bytes(nbytes) + bytes(-nbytes % 32)
    out = head + infos
    return out + bytes(-len(out) % 32) + data


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    files = {
        "tiny": gguf(),
        "gpt2-arch": gguf(arch="gpt2"),
        "q4k": gguf(types={"blk.0.ffn_up.weight": Q4_K}),
        "no-ffn-down": gguf(drop={"blk.0.ffn_down.weight"}),
        "untied": gguf(extra=[("output.weight", [8, 16])]),
    }
    files["truncated"] = files["tiny"][:200]
    files["not-gguf"] = b"this is not a GGUF file\n"
    for name, data in files.items():
        with open(os.path.join(out, name + ".gguf"), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
