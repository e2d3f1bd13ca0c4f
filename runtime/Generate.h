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
int32_t sampleToken(const float *logits, int64_t vocab, double temperature, int64_t topK,
                    std::mt19937_64 &rng);

/// The model a generator runs: the step function and its static shapes.
struct LogitsModel {
  LogitsStepFn logitsStep = nullptr;
  float *params = nullptr; ///< fp32[numParams]
  int64_t numParams = 0, context = 0, vocab = 0;
};

/// Appends `numTokens` sampled ids to `prompt` and returns prompt + new ids. Each step fills
/// tokens i32[1, context] with the last min(len, context) ids (the rest 0), calls
/// `logitsStep` and samples from the logits row of the last filled position.
/// Errors: InvalidArgument if the prompt is empty, the model has no logits function or a
/// non-positive context/vocab.
Expected<std::vector<int32_t>> generate(const LogitsModel &model, std::vector<int32_t> prompt,
                                        int64_t numTokens, double temperature, int64_t topK,
                                        std::mt19937_64 &rng);

} // namespace lrt
