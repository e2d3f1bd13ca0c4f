// SPDX-License-Identifier: Apache-2.0
/// Sampling and the generation loop.
#include "runtime/Generate.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

namespace lrt {

double uniform01(std::mt19937_64 &rng) { return double(rng() >> 11) * 0x1.0p-53; }

int32_t sampleToken(const float *logits, int64_t vocab, double temperature, int64_t topK,
                    std::mt19937_64 &rng) {
  std::vector<int32_t> ids(vocab);
  std::iota(ids.begin(), ids.end(), 0);
  auto better = [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  if (temperature <= 0)
    return *std::min_element(ids.begin(), ids.end(), better);
  int64_t k = (topK <= 0 || topK >= vocab) ? vocab : topK;
  std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), better);
  double maxLogit = logits[ids[0]];
  std::vector<double> probs(k);
  double sum = 0;
  for (int64_t i = 0; i < k; ++i) {
    probs[i] = std::exp((double(logits[ids[i]]) - maxLogit) / temperature);
    sum += probs[i];
  }
  double u = uniform01(rng) * sum;
  for (int64_t i = 0; i < k; ++i) {
    u -= probs[i];
    if (u < 0)
      return ids[i];
  }
  return ids[k - 1];
}

Expected<std::vector<int32_t>> generate(const LogitsModel &model, std::vector<int32_t> prompt,
                                        int64_t numTokens, double temperature, int64_t topK,
                                        std::mt19937_64 &rng) {
  if (!model.logitsStep || !model.params)
    return Status::invalid("generate: no logits_step function or parameters");
  if (model.context < 1 || model.vocab < 1)
    return Status::invalid(fmt::format("generate: context {} and vocab {} must be positive",
                                       model.context, model.vocab));
  if (prompt.empty())
    return Status::invalid("generate: empty prompt");
  const int64_t C = model.context, V = model.vocab;
  std::vector<int32_t> window(C);
  std::vector<float> logits(C * V);
  auto params = viewOf(model.params, {model.numParams});
  auto tokens = viewOf(window.data(), {int64_t(1), C});
  auto out = viewOf(logits.data(), {int64_t(1), C, V});
  for (int64_t n = 0; n < numTokens; ++n) {
    int64_t len = std::min<int64_t>(int64_t(prompt.size()), C);
    std::fill(window.begin(), window.end(), 0);
    std::copy(prompt.end() - len, prompt.end(), window.begin());
    model.logitsStep(&params, &tokens, &out);
    prompt.push_back(sampleToken(logits.data() + (len - 1) * V, V, temperature, topK, rng));
  }
  return prompt;
}

} // namespace lrt
