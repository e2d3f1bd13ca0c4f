// SPDX-License-Identifier: Apache-2.0
/// Ops of the llmp dialect. Every op spells its types with `functional-type` so that the
/// printed form names each operand's shape, which the verifiers check against each other.
#ifndef LLMP_OPS_TD
#define LLMP_OPS_TD

include "compiler/Dialect/LLMP/IR/LLMPDialect.td"
include "compiler/Dialect/LLMP/IR/LLMPInterfaces.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

class LLMP_DiffOp<string mnemonic, list<Trait> traits = []>
    : LLMP_Op<mnemonic, !listconcat(traits, [
        DeclareOpInterfaceMethods<LLMP_DifferentiableOpInterface>])> {
  let hasVerifier = 1;
}

class LLMP_GradOp<string mnemonic, list<Trait> traits = []> : LLMP_Op<mnemonic, traits> {
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Forward ops
//===----------------------------------------------------------------------===//

def LLMP_EmbeddingOp : LLMP_DiffOp<"embedding"> {
  let summary = "row lookup of token ids in an embedding table";
  let description = [{
    `table` is (V, D), `ids` is (B, T); the result is (B, T, D) with
    `result[b, t] = table[ids[b, t]]`.

    ```mlir
    %x = llmp.embedding %table, %ids : (tensor<64x16xf32>, tensor<2x8xi32>) -> tensor<2x8x16xf32>
    ```
  }];
  let arguments = (ins LLMP_F32Tensor:$table, LLMP_I32Tensor:$ids);
  let results = (outs LLMP_F32Tensor:$result);
  let assemblyFormat = "$table `,` $ids attr-dict `:` functional-type(operands, results)";
}

def LLMP_MatmulOp : LLMP_DiffOp<"matmul"> {
  let summary = "2-D matrix product with optional operand transposes";
  let description = [{
    `result = op(lhs) * op(rhs)` where `op` transposes when `transpose_a` (for `lhs`) or
    `transpose_b` (for `rhs`) is set. Shapes: op(lhs) is (M, K), op(rhs) is (K, N), the
    result is (M, N). The rhs may be bf16 (a LoRA stage's frozen base under `precision:
    bf16`, llmp-bf16-base): it is widened exactly and gets no gradient; the lhs's gradient
    keeps it the rhs (dC op(rhs)^T, transposed when `transpose_a`).

    ```mlir
    %y = llmp.matmul %x, %w {transpose_b} : (tensor<8x16xf32>, tensor<32x16xf32>) -> tensor<8x32xf32>
    ```
  }];
  let arguments = (ins LLMP_F32Tensor:$lhs, RankedTensorOf<[F32, BF16]>:$rhs,
                       UnitAttr:$transpose_a, UnitAttr:$transpose_b);
  let results = (outs LLMP_F32Tensor:$result);
  let assemblyFormat = "$lhs `,` $rhs attr-dict `:` functional-type(operands, results)";
  let hasCanonicalizer = 1;
}

def LLMP_MatmulNf4Op : LLMP_DiffOp<"matmul_nf4"> {
  let summary = "matrix product with a frozen NF4-quantized weight (QLoRA), dequantized on the fly";
  let description = [{
    `weight` is the byte blob of an NF4 tensor (kernels/cpu/Quant.h `Nf4Layout`: packed
    4-bit codes, then the absmax statistics) holding a (rows, cols) matrix W quantized flat,
    row-major, at `block` weights per absmax, with double quantization of the absmax values
    (256 per fp32 scale) when `double_quant` is set (QLoRA, Dettmers et al. 2023). The
    result is `input * W` ((M, rows) -> (M, cols)), or `input * W^T` with `transpose_b`
    ((M, cols) -> (M, rows)), with W = dequant(weight): code value times block absmax in
    fp32, as bitsandbytes' `dequantize_4bit`. The weight is frozen: it gets no gradient; the
    input's gradient is the same op with `transpose_b` flipped. Lowers to a linalg.generic
    that dequantizes in its body (correct on its own), tagged `llmp.matmul_nf4` so that
    `llmp-linalg-to-lrt` calls the fused kernel `lrt_matmul_nf4_f32` instead.

    ```mlir
    %y = llmp.matmul_nf4 %x, %w {rows = 16 : i64, cols = 32 : i64, block = 64 : i64, double_quant} : (tensor<8x16xf32>, tensor<272xi8>) -> tensor<8x32xf32>
    ```
  }];
  let arguments = (ins LLMP_F32Tensor:$input, RankedTensorOf<[I8]>:$weight, I64Attr:$rows,
                       I64Attr:$cols, I64Attr:$block, UnitAttr:$double_quant,
                       UnitAttr:$transpose_b);
  let results = (outs LLMP_F32Tensor:$result);
  let assemblyFormat = "$input `,` $weight attr-dict `:` functional-type(operands, results)";
}

def LLMP_ReshapeOp : LLMP_DiffOp<"reshape"> {
  let summary = "row-major reshape to a shape with the same element count";
  let description = [{
    ```mlir
    %y = llmp.reshape %x : (tensor<2x8x16xf32>) -> tensor<16x16xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$input);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$input attr-dict `:` functional-type(operands, results)";
}

def LLMP_TransposeOp : LLMP_DiffOp<"transpose"> {
  let summary = "2-D transpose";
  let description = [{
    ```mlir
    %y = llmp.transpose %x : (tensor<4x8xf32>) -> tensor<8x4xf32>
    ```
  }];
  let arguments = (ins LLMP_F32Tensor:$input);
  let results = (outs LLMP_F32Tensor:$result);
  let assemblyFormat = "$input attr-dict `:` functional-type(operands, results)";
}

def LLMP_AddOp : LLMP_DiffOp<"add"> {
  let summary = "elementwise sum of two tensors of the same shape";
  let description = [{
    ```mlir
    %z = llmp.add %x, %y : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
    ```
  }];
  let arguments = (ins LLMP_F32Tensor:$lhs, LLMP_F32Tensor:$rhs);
  let results = (outs LLMP_F32Tensor:$result);
  let assemblyFormat = "$lhs `,` $rhs attr-dict `:` functional-type(operands, results)";
}

def LLMP_MulOp : LLMP_DiffOp<"mul"> {
  let summary = "elementwise product of two tensors of the same shape";
  let description = [{
    ```mlir
    %z = llmp.mul %x, %y : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
    ```
  }];
  let arguments = (ins LLMP_F32Tensor:$lhs, LLMP_F32Tensor:$rhs);
  let results = (outs LLMP_F32Tensor:$result);
  let assemblyFormat = "$lhs `,` $rhs attr-dict `:` functional-type(operands, results)";
}

def LLMP_SiluOp : LLMP_DiffOp<"silu"> {
  let summary = "x * sigmoid(x), elementwise";
  let description = [{
    ```mlir
    %y = llmp.silu %x : (tensor<4x8xf32>) -> tensor<4x8xf32>
    ```
  }];
  let arguments = (ins LLMP_F32Tensor:$input);
  let results = (outs LLMP_F32Tensor:$result);
  let assemblyFormat = "$input attr-dict `:` functional-type(operands, results)";
}

def LLMP_DropoutOp : LLMP_DiffOp<"dropout"> {
  let summary = "inverted dropout with a counter-based mask (training only)";
  let description = [{
    `result[i] = keep(i) ? input[i] / (1 - p) : 0` for the row-major element index `i`.
    The mask is a pure function of (`seed`, `key`, i), so the gradient recomputes it
    (`dx = dropout(dy)` with the same key) and a step's masks are the same on every run
    and after a resume. `key` = [step, micro-batch] (i32; llmp-build-steps fills it from
    hyper[kHyperStep], hyper[kHyperMicroBatch], runtime/StepABI.h). With mix64 the
    SplitMix64 output function (Steele, Lea, Flood 2014; z ^= z >> 30, z *= 0xBF58476D1CE4E5B9,
    z ^= z >> 27, z *= 0x94D049BB133111EB, z ^= z >> 31, on u64):
      base = mix64(seed ^ mix64(u64(key[0]) << 32 | u32(key[1])))
      r(i) = mix64(base + (i + 1) * 0x9E3779B97F4A7C15)   (SplitMix64's i-th output)
      keep(i) = (r(i) >> 40) >= round(p * 2^24)           (a 24-bit uniform against p)
    so each element is dropped with probability p (to 2^-24). eval_step and logits_step
    drop the op (identity).

    ```mlir
    %y = llmp.dropout %x, %key {p = 1.0e-01 : f32, seed = 7 : i64} : (tensor<8x16xf32>, tensor<2xi32>) -> tensor<8x16xf32>
    ```
  }];
  let arguments = (ins LLMP_F32Tensor:$input, LLMP_I32Tensor:$key, F32Attr:$p, I64Attr:$seed);
  let results = (outs LLMP_F32Tensor:$result);
  let assemblyFormat = "$input `,` $key attr-dict `:` functional-type(operands, results)";
}

def LLMP_RMSNormOp : LLMP_DiffOp<"rmsnorm"> {
  let summary = "RMS normalisation over the last dimension with a learned scale";
  let description = [{
    `y = x / sqrt(mean(x^2 over the last dim) + eps) * w`; `x` is (..., D), `w` is (D).

    ```mlir
    %y = llmp.rmsnorm %x, %w {eps = 1.0e-05 : f32} : (tensor<2x8x16xf32>, tensor<16xf32>) -> tensor<2x8x16xf32>
    ```
  }];
  let arguments = (ins LLMP_F32Tensor:$input, LLMP_F32Tensor:$weight, F32Attr:$eps);
  let results = (outs LLMP_F32Tensor:$result);
  let assemblyFormat = "$input `,` $weight attr-dict `:` functional-type(operands, results)";
}

def LLMP_RopeOp : LLMP_DiffOp<"rope"> {
  let summary = "rotary position embedding (rotate_half convention)";
  let description = [{
    `x` is (B, T, D), split into `heads` heads of `h = D / heads`. For `i < h/2` and
    position `p`, `a = p * theta^(-2i/h)`:
    `y[i] = x[i] cos a - x[i+h/2] sin a`, `y[i+h/2] = x[i+h/2] cos a + x[i] sin a`.
    The position of token (b, t) is `t`, or `positions[b, t]` (i32, (B, T)) when given:
    packed sequences pass per-document positions (`llmp.positions`). With `inverse` the
    rotation runs backwards (angle `-a`), which is its gradient.

    ```mlir
    %y = llmp.rope %x {heads = 2 : i64, theta = 1.0e+04 : f32} : (tensor<2x8x16xf32>) -> tensor<2x8x16xf32>
    %z = llmp.rope %x positions %pos {heads = 2 : i64, theta = 1.0e+04 : f32} : (tensor<2x8x16xf32>, tensor<2x8xi32>) -> tensor<2x8x16xf32>
    ```
  }];
  let arguments = (ins LLMP_F32Tensor:$input, Optional<LLMP_I32Tensor>:$positions,
                       I64Attr:$heads, F32Attr:$theta, UnitAttr:$inverse);
  let results = (outs LLMP_F32Tensor:$result);
  // `positions` is spelled out so that the optional operand reads as what it is.
  let assemblyFormat = [{
    $input (`positions` $positions^)? attr-dict `:` functional-type(operands, results)
  }];
}

def LLMP_AttentionOp : LLMP_DiffOp<"attention"> {
  let summary = "multi-head scaled dot-product attention, grouped-query and packed";
  let description = [{
    `q` is (B, T, H*d) with H = `heads`; `k` and `v` are (B, T, KV*d) with KV = `kv_heads`
    (default: `heads`), which must divide H. Query head h attends with key/value head
    h / (H/KV), as Hugging Face's `repeat_kv` arranges it (grouped-query attention,
    Ainslie et al. 2023; KV = 1 is multi-query attention). Scores are scaled by 1/sqrt(d),
    masked (j > i) when `causal`, and soft-maxed over j. The result is (B, T, H*d).

    With `segments` (i32, (B, T): the document index of each token in its row), query i
    also sees key j only if segments[b, j] == segments[b, i]: with `causal` this is the
    block-diagonal causal mask of packed sequences, so each document of a packed row is
    attended to as if it were alone.

    ```mlir
    %o = llmp.attention %q, %k, %v {heads = 2 : i64, causal} : (tensor<2x8x16xf32>, tensor<2x8x16xf32>, tensor<2x8x16xf32>) -> tensor<2x8x16xf32>
    %g = llmp.attention %q, %k, %v segments %seg {heads = 4 : i64, kv_heads = 2 : i64, causal} : (tensor<2x8x16xf32>, tensor<2x8x8xf32>, tensor<2x8x8xf32>, tensor<2x8xi32>) -> tensor<2x8x16xf32>
    ```
  }];
  let arguments = (ins LLMP_F32Tensor:$q, LLMP_F32Tensor:$k, LLMP_F32Tensor:$v,
                       Optional<LLMP_I32Tensor>:$segments, I64Attr:$heads,
                       OptionalAttr<I64Attr>:$kv_heads, UnitAttr:$causal);
  let results = (outs LLMP_F32Tensor:$result);
  let assemblyFormat = [{
    $q `,` $k `,` $v (`segments` $segments^)? attr-dict `:` functional-type(operands, results)
  }];
  let extraClassDeclaration = [{
    /// The number of key/value heads: `kv_heads`, or `heads` when absent.
    int64_t getNumKVHeads() { return getKvHeads().value_or(getHeads()); }
  }];
}

def LLMP_PositionsOp : LLMP_Op<"positions"> {
  let summary = "per-token positions inside the documents of packed rows";
  let description = [{
    `segments` is (B, T), the document index of each token in its row (documents are
    contiguous); `result[b, t]` is the number of earlier tokens of the same row in the
    same document, i.e. the position of the token in its own document: documents of
    lengths 3 and 2 (segments [0, 0, 0, 1, 1]) give [0, 1, 2, 0, 1]. Feeds `llmp.rope`.

    ```mlir
    %pos = llmp.positions %seg : (tensor<2x8xi32>) -> tensor<2x8xi32>
    ```
  }];
  let arguments = (ins LLMP_I32Tensor:$segments);
  let results = (outs LLMP_I32Tensor:$result);
  let assemblyFormat = "$segments attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Inference ops: the KV cache of prefill / decode (no gradients)
//===----------------------------------------------------------------------===//

def LLMP_KVCacheWriteOp : LLMP_Op<"kv_cache_write"> {
  let summary = "writes the keys (or values) of a chunk of tokens into one layer of a KV cache";
  let description = [{
    `cache` is (L, B, KV, C, d): for each of L layers, B sequences, KV key/value heads, C
    positions (the context) and head size d. `x` is (B, T, KV*d), the keys or values of T
    consecutive tokens per sequence, heads contiguous as `llmp.attention` splits them.
    `start` (B), when given, is the position of each row's first token (0 when absent).
    The result equals `cache` except that, for `layer`, every row b, head h, t < T and
    i < d: `result[layer, b, h, s_b + t, i] = x[b, t, h*d + i]` with
    `s_b = clamp(start[b], 0, C - T)` (the clamp only keeps writes inside the cache; the
    runtime passes positions with start[b] + T <= C).

    ```mlir
    %k1 = llmp.kv_cache_write %kc, %k start %pos {layer = 0 : i64} : (tensor<2x2x2x16x4xf32>, tensor<2x1x8xf32>, tensor<2xi32>) -> tensor<2x2x2x16x4xf32>
    ```
  }];
  let arguments = (ins LLMP_F32Tensor:$cache, LLMP_F32Tensor:$x,
                       Optional<LLMP_I32Tensor>:$start, I64Attr:$layer);
  let results = (outs LLMP_F32Tensor:$result);
  let assemblyFormat = [{
    $cache `,` $x (`start` $start^)? attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def LLMP_CacheAttentionOp : LLMP_Op<"cache_attention"> {
  let summary = "causal grouped-query attention of new queries over one layer of a KV cache";
  let description = [{
    `q` is (B, T, H*d): the queries of T consecutive tokens per row, row b's first at
    position `start[b]`. `k_cache`, `v_cache` are (L, B, KV, C, d) (`llmp.kv_cache_write`'s
    layout); `layer` selects the layer. Query t of row b attends to the cached positions
    j <= start[b] + t (each row its own key length: rows of different lengths batch
    together), with the conventions of `llmp.attention` (scale 1/sqrt(d), query head h
    reads key/value head h / (H/KV)). The result is (B, T, H*d). Write the new keys and
    values into the cache first.

    ```mlir
    %o = llmp.cache_attention %q, %kc, %vc start %pos {layer = 0 : i64, heads = 4 : i64, kv_heads = 2 : i64} : (tensor<2x1x16xf32>, tensor<2x2x2x16x4xf32>, tensor<2x2x2x16x4xf32>, tensor<2xi32>) -> tensor<2x1x16xf32>
    ```
  }];
  let arguments = (ins LLMP_F32Tensor:$q, LLMP_F32Tensor:$k_cache, LLMP_F32Tensor:$v_cache,
                       LLMP_I32Tensor:$start, I64Attr:$layer, I64Attr:$heads,
                       OptionalAttr<I64Attr>:$kv_heads);
  let results = (outs LLMP_F32Tensor:$result);
  let assemblyFormat = [{
    $q `,` $k_cache `,` $v_cache `start` $start attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// The number of key/value heads: `kv_heads`, or `heads` when absent.
    int64_t getNumKVHeads() { return getKvHeads().value_or(getHeads()); }
  }];
}

def LLMP_LastTokenOp : LLMP_Op<"last_token"> {
  let summary = "each row's vector at its last valid position";
  let description = [{
    `input` is (B, T, N), `lengths` is (B); the result is (B, N) with
    `result[b] = input[b, clamp(lengths[b], 1, T) - 1]`: the logits of the last prompt
    token of right-padded rows (prefill).

    ```mlir
    %l = llmp.last_token %logits, %lengths : (tensor<2x8x64xf32>, tensor<2xi32>) -> tensor<2x64xf32>
    ```
  }];
  let arguments = (ins LLMP_F32Tensor:$input, LLMP_I32Tensor:$lengths);
  let results = (outs LLMP_F32Tensor:$result);
  let assemblyFormat = "$input `,` $lengths attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def LLMP_CrossEntropyOp : LLMP_DiffOp<"cross_entropy"> {
  let summary = "per-token cross-entropy of logits against target ids";
  let description = [{
    `logits` is (B, T, V), `targets` is (B, T); the result is (B, T) with
    `logsumexp(logits[b, t, :]) - logits[b, t, targets[b, t]]`, and 0 where
    `targets[b, t]` is -100 (PyTorch's `ignore_index`: padding, document boundaries,
    prompt tokens), which also get no gradient.

    ```mlir
    %l = llmp.cross_entropy %logits, %targets : (tensor<2x8x64xf32>, tensor<2x8xi32>) -> tensor<2x8xf32>
    ```
  }];
  let arguments = (ins LLMP_F32Tensor:$logits, LLMP_I32Tensor:$targets);
  let results = (outs LLMP_F32Tensor:$result);
  let assemblyFormat = "$logits `,` $targets attr-dict `:` functional-type(operands, results)";
}

def LLMP_MeanOp : LLMP_DiffOp<"mean"> {
  let summary = "mean of all elements, as a rank-0 tensor";
  let description = [{
    ```mlir
    %m = llmp.mean %x : (tensor<2x8xf32>) -> tensor<f32>
    ```
  }];
  let arguments = (ins LLMP_F32Tensor:$input);
  let results = (outs 0DTensorOf<[F32]>:$result);
  let assemblyFormat = "$input attr-dict `:` functional-type(operands, results)";
}

def LLMP_TargetMeanOp : LLMP_DiffOp<"target_mean"> {
  let summary = "mean over the positions whose target is not -100, as a rank-0 tensor";
  let description = [{
    `input` and `targets` have the same shape; the result is
    `sum(input[i] for targets[i] != -100) / max(count(targets != -100), 1)`: the mean of a
    per-token loss over the target tokens (PyTorch's `reduction="mean"` with
    `ignore_index=-100`), 0 when every target is ignored.

    ```mlir
    %m = llmp.target_mean %l, %targets : (tensor<2x8xf32>, tensor<2x8xi32>) -> tensor<f32>
    ```
  }];
  let arguments = (ins LLMP_F32Tensor:$input, LLMP_I32Tensor:$targets);
  let results = (outs 0DTensorOf<[F32]>:$result);
  let assemblyFormat = "$input `,` $targets attr-dict `:` functional-type(operands, results)";
}

//===----------------------------------------------------------------------===//
// Gradient ops (emitted by llmp-autodiff; not differentiable themselves)
//===----------------------------------------------------------------------===//

def LLMP_SplatOp : LLMP_GradOp<"splat"> {
  let summary = "broadcast of a scaled scalar to a shape";
  let description = [{
    `result[...] = input * scale`, the gradient of `llmp.mean` (with scale = 1/N).

    ```mlir
    %g = llmp.splat %dy {scale = 6.250000e-02 : f32} : (tensor<f32>) -> tensor<2x8xf32>
    ```
  }];
  let arguments = (ins 0DTensorOf<[F32]>:$input, F32Attr:$scale);
  let results = (outs LLMP_F32Tensor:$result);
  let assemblyFormat = "$input attr-dict `:` functional-type(operands, results)";
}

def LLMP_EmbeddingGradOp : LLMP_GradOp<"embedding_grad"> {
  let summary = "scatter-add of output gradients into embedding-table rows";
  let description = [{
    `ids` is (B, T), `dy` is (B, T, D); the result is (`vocab`, D) with
    `result[v] = sum over (b, t) with ids[b, t] = v of dy[b, t]`.

    ```mlir
    %g = llmp.embedding_grad %ids, %dy {vocab = 64 : i64} : (tensor<2x8xi32>, tensor<2x8x16xf32>) -> tensor<64x16xf32>
    ```
  }];
  let arguments = (ins LLMP_I32Tensor:$ids, LLMP_F32Tensor:$dy, I64Attr:$vocab);
  let results = (outs LLMP_F32Tensor:$result);
  let assemblyFormat = "$ids `,` $dy attr-dict `:` functional-type(operands, results)";
}

def LLMP_SiluGradOp : LLMP_GradOp<"silu_grad"> {
  let summary = "gradient of silu: dy * (s + x s (1 - s)), s = sigmoid(x)";
  let description = [{
    ```mlir
    %dx = llmp.silu_grad %x, %dy : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
    ```
  }];
  let arguments = (ins LLMP_F32Tensor:$input, LLMP_F32Tensor:$dy);
  let results = (outs LLMP_F32Tensor:$result);
  let assemblyFormat = "$input `,` $dy attr-dict `:` functional-type(operands, results)";
}

def LLMP_RMSNormGradOp : LLMP_GradOp<"rmsnorm_grad"> {
  let summary = "gradients of rmsnorm with respect to its input and its scale";
  let description = [{
    ```mlir
    %dx, %dw = llmp.rmsnorm_grad %x, %w, %dy {eps = 1.0e-05 : f32} : (tensor<2x8x16xf32>, tensor<16xf32>, tensor<2x8x16xf32>) -> (tensor<2x8x16xf32>, tensor<16xf32>)
    ```
  }];
  let arguments = (ins LLMP_F32Tensor:$input, LLMP_F32Tensor:$weight, LLMP_F32Tensor:$dy,
                       F32Attr:$eps);
  let results = (outs LLMP_F32Tensor:$dinput, LLMP_F32Tensor:$dweight);
  let assemblyFormat = "$input `,` $weight `,` $dy attr-dict `:` functional-type(operands, results)";
}

def LLMP_AttentionGradOp : LLMP_GradOp<"attention_grad"> {
  let summary = "gradients of attention with respect to q, k and v";
  let description = [{
    Recomputes the attention probabilities P, then
    dV = P^T dO, dP = dO V^T, dS = P * (dP - rowsum(dP * P)), dQ = dS K s, dK = dS^T Q s
    with s = 1/sqrt(d), per batch and head. With `kv_heads` < `heads`, dK and dV of a
    key/value head sum over the query heads of its group. `heads`, `kv_heads`, `causal`
    and `segments` mean what they mean on `llmp.attention`; dq has q's shape, dk k's, dv v's.

    ```mlir
    %dq, %dk, %dv = llmp.attention_grad %q, %k, %v, %dy {heads = 2 : i64, causal} : (tensor<2x8x16xf32>, tensor<2x8x16xf32>, tensor<2x8x16xf32>, tensor<2x8x16xf32>) -> (tensor<2x8x16xf32>, tensor<2x8x16xf32>, tensor<2x8x16xf32>)
    ```
  }];
  let arguments = (ins LLMP_F32Tensor:$q, LLMP_F32Tensor:$k, LLMP_F32Tensor:$v,
                       LLMP_F32Tensor:$dy, Optional<LLMP_I32Tensor>:$segments,
                       I64Attr:$heads, OptionalAttr<I64Attr>:$kv_heads, UnitAttr:$causal);
  let results = (outs LLMP_F32Tensor:$dq, LLMP_F32Tensor:$dk, LLMP_F32Tensor:$dv);
  let assemblyFormat = [{
    $q `,` $k `,` $v `,` $dy (`segments` $segments^)? attr-dict `:` functional-type(operands, results)
  }];
  let extraClassDeclaration = [{
    /// The number of key/value heads: `kv_heads`, or `heads` when absent.
    int64_t getNumKVHeads() { return getKvHeads().value_or(getHeads()); }
  }];
}

def LLMP_CrossEntropyGradOp : LLMP_GradOp<"cross_entropy_grad"> {
  let summary = "gradient of cross_entropy: (softmax(logits) - onehot(targets)) * dy, 0 where targets is -100";
  let description = [{
    ```mlir
    %g = llmp.cross_entropy_grad %logits, %targets, %dy : (tensor<2x8x64xf32>, tensor<2x8xi32>, tensor<2x8xf32>) -> tensor<2x8x64xf32>
    ```
  }];
  let arguments = (ins LLMP_F32Tensor:$logits, LLMP_I32Tensor:$targets, LLMP_F32Tensor:$dy);
  let results = (outs LLMP_F32Tensor:$result);
  let assemblyFormat = "$logits `,` $targets `,` $dy attr-dict `:` functional-type(operands, results)";
}

def LLMP_TargetMeanGradOp : LLMP_GradOp<"target_mean_grad"> {
  let summary = "gradient of target_mean: dy * (targets != -100) / max(count, 1)";
  let description = [{
    ```mlir
    %g = llmp.target_mean_grad %targets, %dy : (tensor<2x8xi32>, tensor<f32>) -> tensor<2x8xf32>
    ```
  }];
  let arguments = (ins LLMP_I32Tensor:$targets, 0DTensorOf<[F32]>:$dy);
  let results = (outs LLMP_F32Tensor:$result);
  let assemblyFormat = "$targets `,` $dy attr-dict `:` functional-type(operands, results)";
}

#endif // LLMP_OPS_TD
