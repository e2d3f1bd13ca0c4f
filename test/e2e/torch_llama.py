# SPDX-License-Identifier: Apache-2.0
"""An independent PyTorch implementation of stdlib/models/llama.llmp and the next-token loss.

Used as the reference for llmp's compiled loss and gradients (test/e2e/grad_vs_torch.py) and
as the PyTorch side of bench/pretrain_vs_torch.py. It follows the conventions fixed in
docs/internals.md, which are those of Hugging Face's LlamaForCausalLM:
- RMSNorm: y = x / sqrt(mean(x^2) + eps) * w                (Zhang & Sennrich 2019)
- RoPE on the two halves of each head (HF `rotate_half`), angle p * theta^(-2i/h)
  (Su et al. 2021, "RoFormer", eq. 34)
- causal multi-head attention, scores scaled by 1/sqrt(head_dim)
- SwiGLU MLP: (silu(h W_gate) * (h W_up)) W_down            (Shazeer 2020)
- tied output embedding: logits = rmsnorm(x) @ embed^T
Weights are stored as in llmp: a linear layer is `x @ W` with W of shape [in, out].
"""
import json
import re
import struct
import subprocess

import numpy as np
import torch


def read_safetensors(path):
    """Reads a safetensors file into {name: np.ndarray} plus its __metadata__ dict."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    dtypes = {"F32": np.float32, "I32": np.int32, "F64": np.float64, "I64": np.int64}
    meta = header.pop("__metadata__", {})
    out = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        arr = np.frombuffer(data[begin:end], dtype=dtypes[info["dtype"]])
        out[name] = arr.reshape(info["shape"]).copy()
    return out, meta


def rmsnorm(x, w, eps):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w


def rope(x, heads, theta):
    """x: [B, T, D] -> [B, T, D], rotating the halves of each of `heads` heads."""
    B, T, D = x.shape
    h = D // heads
    xh = x.view(B, T, heads, h)
    inv = theta ** (-torch.arange(0, h // 2, dtype=x.dtype) * 2.0 / h)
    ang = torch.arange(T, dtype=x.dtype)[:, None] * inv[None, :]  # [T, h/2]
    cos = torch.cat([ang.cos(), ang.cos()], -1)[None, :, None, :]
    sin = torch.cat([ang.sin(), ang.sin()], -1)[None, :, None, :]
    x1, x2 = xh[..., : h // 2], xh[..., h // 2 :]
    rot = torch.cat([-x2, x1], -1)
    return (xh * cos + rot * sin).view(B, T, D)


def attention(q, k, v, heads):
    """q, k, v: [B, T, D] -> [B, T, D], causal."""
    B, T, D = q.shape
    h = D // heads
    split = lambda t: t.view(B, T, heads, h).transpose(1, 2)  # [B, H, T, h]
    q, k, v = split(q), split(k), split(v)
    s = q @ k.transpose(-1, -2) / (h ** 0.5)
    mask = torch.ones(T, T, dtype=torch.bool).triu(1)
    s = s.masked_fill(mask, float("-inf"))
    return (s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, D)


def layer_count(params):
    return len({k.split(".")[1] for k in params if k.startswith("layers.")})


def forward(params, tokens, heads, eps, theta):
    """params: {name: tensor} with llmp's names; tokens: int64 [B, T] -> logits [B, T, V]."""
    x = params["embed"][tokens]
    for i in range(layer_count(params)):
        p = lambda n: params[f"layers.{i}.{n}"]
        h = rmsnorm(x, p("attn_norm"), eps)
        q = rope(h @ p("wq"), heads, theta)
        k = rope(h @ p("wk"), heads, theta)
        x = x + attention(q, k, h @ p("wv"), heads) @ p("wo")
        h = rmsnorm(x, p("mlp_norm"), eps)
        x = x + (torch.nn.functional.silu(h @ p("w_gate")) * (h @ p("w_up"))) @ p("w_down")
    return rmsnorm(x, params["final_norm"], eps) @ params["embed"].T


def next_token_loss(logits, targets):
    """Mean cross-entropy over all B*T target tokens."""
    V = logits.shape[-1]
    return torch.nn.functional.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))


def model_hyper(llmpc, path):
    """Reads heads, RMSNorm eps and RoPE theta of FILE's model from the llmp IR that
    `llmpc emit --compile-to=llmp` prints, so the reference restates none of the stdlib."""
    ir = subprocess.run([llmpc, "emit", path, "--compile-to=llmp"], check=True,
                        capture_output=True, text=True).stdout

    def attr(op, name):
        m = re.search(r"llmp\.%s\b[^\n]*?\b%s = ([-+0-9.eE]+)" % (op, name), ir)
        if not m:
            raise RuntimeError(f"no '{name}' attribute on llmp.{op} in the emitted IR")
        return float(m.group(1))

    return {"heads": int(attr("attention", "heads")), "eps": attr("rmsnorm", "eps"),
            "theta": attr("rope", "theta")}
