// SPDX-License-Identifier: Apache-2.0
/// Generation with a KV cache: the C ABI of the compiled `prefill_step` and `decode_step`
/// (built by llmp-build-steps from the frontend's @prefill and @decode, see
/// docs/internals.md) and the shape of the cache they read and write. The runtime owns two
/// fp32 buffers of that shape, one for keys and one for values, each laid out row-major as
/// [layers][batch][kvHeads][context][headDim]: entry (l, b, h, p, i) holds element i of
/// key (or value) head h of the token at position p of sequence b (keys after RoPE).
///
/// One generation over B sequences (prompts right-padded to P):
///   prefill_step(params, tokens, lengths, k, v, logits)        positions 0 .. P-1
///   repeat: decode_step(params, next, positions, k, v, logits)  one token per row
/// with positions[b] = the number of tokens of row b already in the cache (its new token's
/// position). Rows are independent: each attends only to its own cached positions
/// 0 .. positions[b], so rows of different lengths batch together.
#pragma once

#include "runtime/MemRef.h"

#include <cstdint>

namespace lrt {

struct KVCacheShape {
  int64_t layers = 0;     ///< one causal attention per layer
  int64_t batch = 0;      ///< sequences decoded together (B of the step functions)
  int64_t kvHeads = 0;    ///< key/value heads (grouped-query attention: kv_heads)
  int64_t context = 0;    ///< positions per sequence (the model's context length)
  int64_t headDim = 0;    ///< dim / heads
  int64_t prefillLen = 0; ///< P: prefill_step takes tokens i32[batch, P]

  /// Elements of one of the two buffers (keys or values).
  int64_t numel() const { return layers * batch * kvHeads * context * headDim; }
};

/// prefill_step: the forward of B prompts, filling the cache at positions 0 .. P-1.
///   params   : fp32[numParams]
///   tokens   : i32[batch, prefillLen], row b's prompt right-padded (any valid id)
///   lengths  : i32[batch], row b's prompt length in [1, prefillLen]
///   k, v     : fp32 KVCacheShape; positions 0 .. prefillLen-1 of every row are written
///              (those at and past lengths[b] hold padding, which decode_step overwrites
///              before any query can see it)
///   logits   : fp32[batch, vocab] (written): logits of each row's token lengths[b] - 1
/// A stage with a frozen buffer (StagePlan::frozenBytes > 0) takes `MemRef<uint8_t, 1>
/// *frozen` after params, as the other step functions (StepABI.h).
using PrefillStepFn = void (*)(MemRef<float, 1> *params, MemRef<int32_t, 2> *tokens,
                               MemRef<int32_t, 1> *lengths, MemRef<float, 5> *k,
                               MemRef<float, 5> *v, MemRef<float, 2> *logits);

/// decode_step: one new token per row.
///   tokens    : i32[batch], row b's new token
///   positions : i32[batch], its position: 0 <= positions[b] < context (larger values are
///               clamped to context - 1 for the cache write: the runtime never passes them)
///   k, v      : the token's keys and values are written at positions[b]; queries attend
///               to positions 0 .. positions[b] of their own row
///   logits    : fp32[batch, vocab] (written): logits after each row's new token
using DecodeStepFn = void (*)(MemRef<float, 1> *params, MemRef<int32_t, 1> *tokens,
                              MemRef<int32_t, 1> *positions, MemRef<float, 5> *k,
                              MemRef<float, 5> *v, MemRef<float, 2> *logits);

} // namespace lrt
