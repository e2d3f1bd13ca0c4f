// SPDX-License-Identifier: Apache-2.0
/// Pretrained Llama-architecture models from GGUF files (llama.cpp's format): the
/// hyper-parameters from the `llama.*` metadata keys, and the flat fp32 parameter buffer of
/// the stdlib `llama` family (stdlib/models/llama.llmp) filled from the file's tensors,
/// dequantized (runtime/Gguf.h) and renamed, transposed and un-permuted as below.
#pragma once

#include "runtime/Gguf.h"
#include "runtime/Plan.h"
#include "runtime/Status.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace lrt {

/// The hyper-parameters of a GGUF file whose general.architecture is "llama", named as the
/// stdlib `llama` family's arguments.
struct GgufLlamaConfig {
  int64_t vocab = 0;         ///< llama.vocab_size, else the length of tokenizer.ggml.tokens
  int64_t dim = 0;           ///< llama.embedding_length
  int64_t layers = 0;        ///< llama.block_count
  int64_t heads = 0;         ///< llama.attention.head_count
  int64_t kvHeads = 0;       ///< llama.attention.head_count_kv (default: heads)
  int64_t hidden = 0;        ///< llama.feed_forward_length
  int64_t contextLength = 0; ///< llama.context_length: the longest context it was trained on
  double eps = 1e-5;         ///< llama.attention.layer_norm_rms_epsilon
  double theta = 10000.0;    ///< llama.rope.freq_base (default 10000)
  bool tiedOutput = true;    ///< no `output.weight`: the LM head is token_embd transposed
};

/// Reads and checks the hyper-parameters of a llama GGUF: general.architecture must be
/// "llama"; the sizes must be positive, `kvHeads` must divide `heads` and `heads` `dim`;
/// llama.rope.dimension_count (when present) must be dim / heads (RoPE on the whole head);
/// every tensor the stdlib llama reads must be present with the shape these imply and a
/// type dequantizeGgml supports. Errors: InvalidArgument naming the key, tensor or
/// architecture; NotFound for a missing key or tensor.
Expected<GgufLlamaConfig> ggufLlamaConfig(const GgufFile &f);

/// The GGUF tensor name that fills stdlib llama parameter `param` ("embed" ->
/// "token_embd.weight", "layers.3.wq" -> "blk.3.attn_q.weight", ...), or "" for a name the
/// stdlib llama does not have.
std::string ggufTensorName(const std::string &param);

/// Un-permutes the rows of a GGUF q or k projection (row-major [heads * hd, in]):
/// llama.cpp's convert_hf_to_gguf.py interleaves the two rotated halves of each head (row
/// h*hd + 2i + t holds Hugging Face row h*hd + t*hd/2 + i, for RoPE on adjacent pairs);
/// the stdlib's `rope` rotates halves (docs/internals.md), so the rows go back as
/// transformers' GGUF loader does (`reverse_permute_weights`). `w` is fp32[rows * in],
/// `rows` a multiple of 2 * heads.
std::vector<float> unpermuteRope(const std::vector<float> &w, int64_t rows, int64_t in,
                                 int64_t heads);

/// Reads the stdlib llama `params` from the GGUF file `path` one at a time, in order, and
/// calls `fn(p, values)` with each one's fp32 values[p.numel] in the stdlib layout
/// (readGgufParams below says how they are transposed and un-permuted; p.offset is not
/// read). `values` is valid only during the call. Transient memory: the GGUF file mapped,
/// plus about three fp32 copies of the current tensor (dequantized, un-permuted,
/// transposed), so a caller that stores each parameter (e.g. quantized to NF4,
/// runtime/Frozen.h) never holds the whole model in fp32. Stops at the first error `fn`
/// returns. Errors: those of readGgufParams.
Status forEachGgufParam(const std::vector<ParamInfo> &params, const std::string &path,
                        const std::function<Status(const ParamInfo &, const float *)> &fn);

/// The flat fp32[numParams] buffer of the stdlib llama `params` (runtime/Plan.h order)
/// filled from the GGUF file `path`: norms and the embedding as stored; each projection
/// matrix (GGUF row-major [out, in]) transposed to the stdlib's [in, out] (`h @ w`), q and
/// k un-permuted first (unpermuteRope with the query and key/value head counts).
/// Errors: those of readGguf and ggufLlamaConfig; InvalidArgument naming a parameter with
/// no GGUF tensor, or whose shape differs from the tensor's.
Expected<std::vector<float>> readGgufParams(const std::vector<ParamInfo> &params,
                                            int64_t numParams, const std::string &path);

} // namespace lrt
