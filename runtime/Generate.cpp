// SPDX-License-Identifier: Apache-2.0
/// Sampling and the generation loop.
#include "runtime/Generate.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

namespace lrt {

namespace {

/// Where a UTF-8 byte sequence stands: how many continuation bytes are still due and the
/// range the next byte must lie in (RFC 3629 table 3-7: no overlongs, no surrogates).
struct Utf8State {
  int need = 0;
  int lo = 0x80, hi = 0xBF;

  /// Whether a piece (a byte, kTextPiece or kSpecialPiece) may come next.
  bool allows(int16_t piece) const {
    if (piece == kSpecialPiece)
      return false;
    if (piece == kTextPiece)
      return need == 0;
    if (need > 0)
      return piece >= lo && piece <= hi;
    return piece < 0x80 || (piece >= 0xC2 && piece <= 0xF4);
  }

  void advance(int16_t piece) {
    if (piece < 0) { // whole characters (or a special piece): any open sequence is over
      *this = Utf8State();
      return;
    }
    if (need > 0) {
      --need;
      lo = 0x80, hi = 0xBF;
      return;
    }
    lo = 0x80, hi = 0xBF;
    if (piece >= 0xC2 && piece <= 0xDF)
      need = 1;
    else if (piece >= 0xE0 && piece <= 0xEF)
      need = 2, lo = piece == 0xE0 ? 0xA0 : 0x80, hi = piece == 0xED ? 0x9F : 0xBF;
    else if (piece >= 0xF0 && piece <= 0xF4)
      need = 3, lo = piece == 0xF0 ? 0x90 : 0x80, hi = piece == 0xF4 ? 0x8F : 0xBF;
  }
};

} // namespace

double uniform01(std::mt19937_64 &rng) { return double(rng() >> 11) * 0x1.0p-53; }

int32_t sampleToken(const float *logits, int64_t vocab, double temperature, int64_t topK,
                    std::mt19937_64 &rng, const uint8_t *allowed) {
  std::vector<int32_t> ids;
  ids.reserve(size_t(vocab));
  for (int32_t i = 0; i < int32_t(vocab); ++i)
    if (!allowed || allowed[i])
      ids.push_back(i);
  if (ids.empty()) // nothing allowed: fall back to every id rather than fail
    for (int32_t i = 0; i < int32_t(vocab); ++i)
      ids.push_back(i);
  const int64_t n = int64_t(ids.size());
  auto better = [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  if (temperature <= 0)
    return *std::min_element(ids.begin(), ids.end(), better);
  int64_t k = (topK <= 0 || topK >= n) ? n : topK;
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
                                        std::mt19937_64 &rng,
                                        const std::vector<int16_t> *pieceBytes) {
  if (!model.logitsStep || !model.params)
    return Status::invalid("generate: no logits_step function or parameters");
  if (model.context < 1 || model.vocab < 1)
    return Status::invalid(fmt::format("generate: context {} and vocab {} must be positive",
                                       model.context, model.vocab));
  if (prompt.empty())
    return Status::invalid("generate: empty prompt");
  const int64_t C = model.context, V = model.vocab;
  const bool masked = pieceBytes && int64_t(pieceBytes->size()) == V;
  Utf8State utf8;
  if (masked)
    for (int32_t id : prompt)
      if (id >= 0 && id < V)
        utf8.advance((*pieceBytes)[id]);
  std::vector<uint8_t> allowed(masked ? V : 0);
  std::vector<int32_t> window(C);
  std::vector<float> logits(C * V);
  auto params = viewOf(model.params, {model.numParams});
  auto tokens = viewOf(window.data(), {int64_t(1), C});
  auto out = viewOf(logits.data(), {int64_t(1), C, V});
  // An incomplete last character gets up to 3 more (continuation) bytes.
  for (int64_t n = 0; n < numTokens || (masked && utf8.need > 0 && n < numTokens + 3); ++n) {
    int64_t len = std::min<int64_t>(int64_t(prompt.size()), C);
    std::fill(window.begin(), window.end(), 0);
    std::copy(prompt.end() - len, prompt.end(), window.begin());
    model.logitsStep(&params, &tokens, &out);
    if (masked)
      for (int64_t v = 0; v < V; ++v)
        allowed[v] = utf8.allows((*pieceBytes)[v]);
    int32_t id = sampleToken(logits.data() + (len - 1) * V, V, temperature, topK, rng,
                             masked ? allowed.data() : nullptr);
    if (masked)
      utf8.advance((*pieceBytes)[id]);
    prompt.push_back(id);
  }
  return prompt;
}

} // namespace lrt
