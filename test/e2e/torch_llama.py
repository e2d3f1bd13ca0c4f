# SPDX-License-Identifier: Apache-2.0
"""An independent PyTorch implementation of stdlib/models/llama.llmp and the next-token loss.

Used as the reference for llmp's compiled loss and gradients (test/e2e/grad_vs_torch.py) and
as the PyTorch side of bench/pretrain_vs_torch.py and (with KVCache / forward_cached) of
bench/decode_vs_torch.py. It follows the conventions fixed in
docs/internals.md, which are those of Hugging Face's LlamaForCausalLM:
- RMSNorm: y = x / sqrt(mean(x^2) + eps) * w                (Zhang & Sennrich 2019)
- RoPE on the two halves of each head (HF `rotate_half`), angle p * theta^(-2i/h)
  (Su et al. 2021, "RoFormer", eq. 34)
- causal multi-head attention, scores scaled by 1/sqrt(head_dim); with kv_heads < heads,
  grouped-query attention (Ainslie et al. 2023): query head h uses key/value head
  h // (heads // kv_heads), as HF's `repeat_kv` arranges it
- packed rows (optional `segments`, the document index of each token): positions restart at
  0 at each document and attention stays inside a document (block-diagonal causal mask)
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


def positions_of(segments):
    """segments: int [B, T] (contiguous documents) -> the position of each token in its own
    document, int64 [B, T]: documents of lengths 3 and 2 give [0, 1, 2, 0, 1]."""
    B, T = segments.shape
    pos = torch.zeros(B, T, dtype=torch.int64)
    for b in range(B):
        for t in range(1, T):
            pos[b, t] = pos[b, t - 1] + 1 if segments[b, t] == segments[b, t - 1] else 0
    return pos


def rope(x, heads, theta, segments=None, start=0):
    """x: [B, T, D] -> [B, T, D], rotating the halves of each of `heads` heads, at positions
    start..start+T-1, or at the per-document positions of `segments` ([B, T]) when given."""
    B, T, D = x.shape
    h = D // heads
    xh = x.view(B, T, heads, h)
    inv = theta ** (-torch.arange(0, h // 2, dtype=x.dtype) * 2.0 / h)
    pos = (torch.arange(start, start + T)[None, :].expand(B, T) if segments is None
           else positions_of(segments))
    ang = pos.to(x.dtype)[:, :, None] * inv[None, None, :]  # [B, T, h/2]
    cos = torch.cat([ang.cos(), ang.cos()], -1)[:, :, None, :]
    sin = torch.cat([ang.sin(), ang.sin()], -1)[:, :, None, :]
    x1, x2 = xh[..., : h // 2], xh[..., h // 2 :]
    rot = torch.cat([-x2, x1], -1)
    return (xh * cos + rot * sin).view(B, T, D)


def attention(q, k, v, heads, kv_heads=None, segments=None):
    """q: [B, T, heads*h], k, v: [B, T, kv_heads*h] -> [B, T, heads*h], causal; with
    `segments` ([B, T]) also masked across documents."""
    B, T, D = q.shape
    kv_heads = kv_heads or heads
    h = D // heads
    split = lambda t, n: t.view(B, T, n, h).transpose(1, 2)  # [B, n, T, h]
    # HF repeat_kv: each key/value head serves heads // kv_heads consecutive query heads.
    repeat = lambda t: t.repeat_interleave(heads // kv_heads, dim=1)
    q, k, v = split(q, heads), repeat(split(k, kv_heads)), repeat(split(v, kv_heads))
    s = q @ k.transpose(-1, -2) / (h ** 0.5)
    mask = torch.ones(T, T, dtype=torch.bool).triu(1)[None, None]
    if segments is not None:
        mask = mask | (segments[:, None, :, None] != segments[:, None, None, :])
    s = s.masked_fill(mask, float("-inf"))
    return (s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, D)


def layer_count(params):
    return len({k.split(".")[1] for k in params if k.startswith("layers.")})


def forward(params, tokens, heads, eps, theta, kv_heads=None, segments=None):
    """params: {name: tensor} with llmp's names; tokens: int64 [B, T] -> logits [B, T, V].
    kv_heads: key/value heads (default heads); segments: int [B, T] for packed rows."""
    x = params["embed"][tokens]
    for i in range(layer_count(params)):
        p = lambda n: params[f"layers.{i}.{n}"]
        h = rmsnorm(x, p("attn_norm"), eps)
        q = rope(h @ p("wq"), heads, theta, segments)
        k = rope(h @ p("wk"), kv_heads or heads, theta, segments)
        x = x + attention(q, k, h @ p("wv"), heads, kv_heads, segments) @ p("wo")
        h = rmsnorm(x, p("mlp_norm"), eps)
        x = x + (torch.nn.functional.silu(h @ p("w_gate")) * (h @ p("w_up"))) @ p("w_down")
    return rmsnorm(x, params["final_norm"], eps) @ params["embed"].T


class KVCache:
    """Keys (after RoPE) and values of every layer for B sequences of up to `context`
    tokens: [layers, B, kv_heads, context, head_dim] each, as runtime/KVCache.h lays out
    llmp's."""

    def __init__(self, layers, batch, kv_heads, context, head_dim):
        self.k = torch.zeros(layers, batch, kv_heads, context, head_dim)
        self.v = torch.zeros(layers, batch, kv_heads, context, head_dim)


def forward_cached(params, tokens, start, cache, heads, eps, theta, kv_heads=None):
    """The forward of tokens [B, T] at positions start..start+T-1 (the same for every row)
    with a KV cache: writes each layer's keys and values at those positions and attends
    over the cached positions 0..start+t (causal) -> logits [B, T, V]. start = 0 is the
    prefill, T = 1 a decode step (Hugging Face generate with a static cache does the same)."""
    B, T = tokens.shape
    kv = kv_heads or heads
    x = params["embed"][tokens]
    end = start + T
    for i in range(layer_count(params)):
        p = lambda n: params[f"layers.{i}.{n}"]
        h = rmsnorm(x, p("attn_norm"), eps)
        q = rope(h @ p("wq"), heads, theta, start=start)
        k = rope(h @ p("wk"), kv, theta, start=start)
        v = h @ p("wv")
        D = q.shape[-1]
        hd = D // heads
        cache.k[i, :, :, start:end] = k.view(B, T, kv, hd).transpose(1, 2)
        cache.v[i, :, :, start:end] = v.view(B, T, kv, hd).transpose(1, 2)
        keys = cache.k[i, :, :, :end].repeat_interleave(heads // kv, dim=1)
        values = cache.v[i, :, :, :end].repeat_interleave(heads // kv, dim=1)
        qh = q.view(B, T, heads, hd).transpose(1, 2)
        # Query t (position start + t) sees the cached positions j <= start + t.
        mask = torch.arange(end)[None, :] > (start + torch.arange(T))[:, None]
        s = (qh @ keys.transpose(-1, -2) / (hd ** 0.5)).masked_fill(mask, float("-inf"))
        x = x + (s.softmax(-1) @ values).transpose(1, 2).reshape(B, T, D) @ p("wo")
        h = rmsnorm(x, p("mlp_norm"), eps)
        x = x + (torch.nn.functional.silu(h @ p("w_gate")) * (h @ p("w_up"))) @ p("w_down")
    return rmsnorm(x, params["final_norm"], eps) @ params["embed"].T


def next_token_loss(logits, targets):
    """Mean cross-entropy over all B*T target tokens."""
    V = logits.shape[-1]
    return torch.nn.functional.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))


def model_hyper(llmpc, path):
    """Reads heads, kv_heads, RMSNorm eps and RoPE theta of FILE's model from the llmp IR that
    `llmpc emit --compile-to=llmp` prints, so the reference restates none of the stdlib."""
    ir = subprocess.run([llmpc, "emit", path, "--compile-to=llmp"], check=True,
                        capture_output=True, text=True).stdout

    def attr(op, name):
        m = re.search(r"llmp\.%s\b[^\n]*?\b%s = ([-+0-9.eE]+)" % (op, name), ir)
        if not m:
            raise RuntimeError(f"no '{name}' attribute on llmp.{op} in the emitted IR")
        return float(m.group(1))

    heads = int(attr("attention", "heads"))
    # kv_heads is printed only for grouped-query attention (kv_heads < heads).
    kv = re.search(r"llmp\.attention\b[^\n]*?\bkv_heads = (\d+)", ir)
    return {"heads": heads, "kv_heads": int(kv.group(1)) if kv else heads,
            "eps": attr("rmsnorm", "eps"), "theta": attr("rope", "theta")}
