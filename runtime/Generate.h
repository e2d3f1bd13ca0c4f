// SPDX-License-Identifier: Apache-2.0
/// Text generation with a compiled `logits_step`: temperature + top-k sampling from a
/// seeded RNG, with a sliding window when the text outgrows the model's context.
#pragma once

#include "runtime/StepABI.h"
#include "runtime/Status.h"

#include <cstdint>
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

/// The model a generator runs: the step function and its static shapes.
struct LogitsModel {
  LogitsStepFn logitsStep = nullptr;
  float *params = nullptr; ///< fp32[numParams]
  int64_t numParams = 0, context = 0, vocab = 0;
};

/// Appends `numTokens` sampled ids to `prompt` and returns prompt + new ids. Each step fills
/// tokens i32[1, context] with the last min(len, context) ids (the rest 0), calls
/// `logitsStep` and samples from the logits row of the last filled position.
/// `pieceBytes` (optional, one entry per id, as Tokenizer::pieceBytes: the byte of a
/// byte-fallback piece, kTextPiece or kSpecialPiece): when given, special pieces are never
/// sampled and byte pieces only where they extend the text as valid UTF-8, so the decoded
/// text has no U+FFFD and no ` ⁇ `; up to 3 more ids are drawn to finish a character the
/// last one left open.
/// Errors: InvalidArgument if the prompt is empty, the model has no logits function or a
/// non-positive context/vocab.
Expected<std::vector<int32_t>> generate(const LogitsModel &model, std::vector<int32_t> prompt,
                                        int64_t numTokens, double temperature, int64_t topK,
                                        std::mt19937_64 &rng,
                                        const std::vector<int16_t> *pieceBytes = nullptr);

} // namespace lrt
