// SPDX-License-Identifier: Apache-2.0
/// Text generation: temperature + top-k sampling from a seeded RNG, with the compiled
/// `prefill_step` / `decode_step` and a KV cache (runtime/KVCache.h; B sequences of
/// different lengths at once), or, for a model compiled without them, one full-window
/// `logits_step` per token. Both slide the window when the text outgrows the context.
#pragma once

#include "runtime/KVCache.h"
#include "runtime/StepABI.h"
#include "runtime/Status.h"

#include <cstdint>
#include <functional>
#include <random>
#include <vector>

namespace lrt {

/// A uniform double in [0, 1) from the top 53 bits of `rng()` (same on every stdlib).
double uniform01(std::mt19937_64 &rng);

/// Draws an id from `logits` (fp32[vocab]): keeps the `topK` largest logits (all if
/// `topK` <= 0 or >= vocab; ties broken by lower id), softmax of logit / `temperature`,
/// inverse-CDF sampling with uniform01(rng). `temperature` <= 0 returns the argmax.
/// `allowed` (optional, uint8[vocab]): only ids with a non-zero entry are candidates (all
/// ids if none is).
int32_t sampleToken(const float *logits, int64_t vocab, double temperature, int64_t topK,
                    std::mt19937_64 &rng, const uint8_t *allowed = nullptr);

/// Entries of the `pieceBytes` that generate() takes, besides a byte 0..255.
constexpr int16_t kTextPiece = -1;    ///< a piece of whole UTF-8 characters
constexpr int16_t kSpecialPiece = -2; ///< not text (<unk>, control, unused): never sampled

/// The model a generator runs: the step functions and their static shapes.
struct LogitsModel {
  LogitsStepFn logitsStep = nullptr;
  float *params = nullptr; ///< fp32[numParams]
  int64_t numParams = 0, context = 0, vocab = 0;
  /// Generation with a KV cache: both set (compiled for `cache.batch` sequences and
  /// prompts of `cache.prefillLen` tokens), or neither.
  PrefillStepFn prefillStep = nullptr;
  DecodeStepFn decodeStep = nullptr;
  KVCacheShape cache;

  bool hasKVCache() const { return prefillStep && decodeStep && cache.numel() > 0; }
};

/// How generateBatch() and generateStream() draw new tokens.
struct GenerateOptions {
  int64_t maxNew = 0;       ///< new tokens per sequence (at most)
  double temperature = 0.0; ///< <= 0: greedy (argmax), as sampleToken
  int64_t topK = 0;         ///< 0: all tokens
  /// Optional, as for generate(): no special pieces, byte pieces only as valid UTF-8, up
  /// to 3 more tokens to finish an open character.
  const std::vector<int16_t> *pieceBytes = nullptr;
  bool keepLogits = false; ///< keep the logits row each new token was drawn from
  /// Optional: called with (sequence index, id) after each new id; returning false ends
  /// that sequence (e.g. at an end-of-turn id, which is kept in Generation::ids).
  std::function<bool(int64_t, int32_t)> onToken;
};

/// What generateBatch() produced for one prompt.
struct Generation {
  std::vector<int32_t> ids;  ///< the new ids, prompt excluded
  std::vector<float> logits; ///< keepLogits: fp32[ids.size(), vocab], the row ids[i] was drawn from
  bool reachedContext = false; ///< ended because the context was full (prompt + ids > context)
  bool stopped = false;        ///< ended because onToken returned false
};

/// Generates for up to `model.cache.batch` prompts together with prefill_step and
/// decode_step (runtime/KVCache.h): one prefill of each prompt's first
/// min(length, cache.prefillLen) tokens, then one decode_step per token for all rows,
/// feeding each row the rest of its prompt first and then its own drawn ids. Each row
/// ends after opts.maxNew ids (plus up to 3 to finish a character, with pieceBytes), when
/// onToken returns false, or when its text fills the context (the id drawn from the last
/// position is kept: prompt + ids <= context + 1). Rows are independent (each attends
/// only to its own cache row), so a prompt generates the same ids in any batch; the RNG is
/// shared, drawn row by row in order at each step.
/// Errors: InvalidArgument without prefill/decode_step, with no prompt or more prompts
/// than cache.batch, an empty prompt or one longer than the context.
Expected<std::vector<Generation>> generateBatch(const LogitsModel &model,
                                                const std::vector<std::vector<int32_t>> &prompts,
                                                const GenerateOptions &opts,
                                                std::mt19937_64 &rng);

/// Generates up to opts.maxNew ids after `prompt` (one sequence) and returns them. With a
/// KV cache (model.hasKVCache()) through generateBatch(), restarting from the last
/// context / 2 tokens whenever the text fills the context; without one, each id runs
/// `logitsStep` over the last min(len, context) ids. opts.keepLogits is ignored.
/// Errors: those of generate().
Expected<std::vector<int32_t>> generateStream(const LogitsModel &model,
                                              const std::vector<int32_t> &prompt,
                                              const GenerateOptions &opts, std::mt19937_64 &rng);

/// Appends `numTokens` sampled ids to `prompt` and returns prompt + new ids
/// (generateStream). Without a KV cache each step fills tokens i32[1, context] with the
/// last min(len, context) ids (the rest 0), calls `logitsStep` and samples from the
/// logits row of the last filled position.
/// `pieceBytes` (optional, one entry per id, as Tokenizer::pieceBytes: the byte of a
/// byte-fallback piece, kTextPiece or kSpecialPiece): when given, special pieces are never
/// sampled and byte pieces only where they extend the text as valid UTF-8, so the decoded
/// text has no U+FFFD and no ` ⁇ `; up to 3 more ids are drawn to finish a character the
/// last one left open.
/// Errors: InvalidArgument if the prompt is empty, the model has neither a logits function
/// nor prefill/decode_step, or a non-positive context/vocab.
Expected<std::vector<int32_t>> generate(const LogitsModel &model, std::vector<int32_t> prompt,
                                        int64_t numTokens, double temperature, int64_t topK,
                                        std::mt19937_64 &rng,
                                        const std::vector<int16_t> *pieceBytes = nullptr);

} // namespace lrt
