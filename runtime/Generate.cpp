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

namespace {

/// Which ids may come next for a sequence whose pieces so far advanced `utf8`
/// (pieceBytes as generate() takes them).
void allowedAfter(const Utf8State &utf8, const std::vector<int16_t> &pieceBytes,
                  std::vector<uint8_t> &allowed) {
  for (size_t v = 0; v < pieceBytes.size(); ++v)
    allowed[v] = utf8.allows(pieceBytes[v]);
}

Status checkModel(const LogitsModel &model, const char *what) {
  if (!model.params || (!model.logitsStep && !model.hasKVCache()))
    return Status::invalid(fmt::format("{}: no logits_step or prefill/decode_step, or no parameters",
                                       what));
  if (model.context < 1 || model.vocab < 1)
    return Status::invalid(fmt::format("{}: context {} and vocab {} must be positive", what,
                                       model.context, model.vocab));
  return Status::ok();
}

} // namespace

Expected<std::vector<Generation>> generateBatch(const LogitsModel &model,
                                                const std::vector<std::vector<int32_t>> &prompts,
                                                const GenerateOptions &opts,
                                                std::mt19937_64 &rng) {
  if (Status st = checkModel(model, "generate"); !st)
    return st;
  const KVCacheShape &shape = model.cache;
  if (!model.hasKVCache() || shape.prefillLen < 1 || shape.context != model.context)
    return Status::invalid("generate: the model has no prefill_step/decode_step with a KV cache");
  const int64_t B = shape.batch, P = shape.prefillLen, C = model.context, V = model.vocab;
  const int64_t R = int64_t(prompts.size());
  if (R < 1 || R > B)
    return Status::invalid(
        fmt::format("generate: {} prompts, but the model decodes 1 to {} at once", R, B));
  for (int64_t r = 0; r < R; ++r)
    if (prompts[r].empty() || int64_t(prompts[r].size()) > C)
      return Status::invalid(fmt::format(
          "generate: prompt {} has {} tokens; it must have 1 to {} (the context)", r,
          prompts[r].size(), C));
  std::vector<Generation> out(R);
  if (opts.maxNew <= 0)
    return out;
  const bool masked = opts.pieceBytes && int64_t(opts.pieceBytes->size()) == V;

  // Per-row state: `fed` tokens are in the cache (the next one goes to position fed).
  struct Row {
    int64_t fed = 0;
    bool done = true;
    Utf8State utf8;
  };
  std::vector<Row> rows(B);
  std::vector<float> kCache(size_t(shape.numel()), 0.0f), vCache(size_t(shape.numel()), 0.0f);
  std::vector<float> logits(size_t(B * V));
  std::vector<int32_t> tokens(size_t(B * P), 0), lengths(size_t(B), 1);
  std::vector<int32_t> next(size_t(B), 0), positions(size_t(B), 0);
  std::vector<uint8_t> allowed(masked ? V : 0);
  for (int64_t r = 0; r < R; ++r) {
    const std::vector<int32_t> &p = prompts[r];
    int64_t n = std::min<int64_t>(int64_t(p.size()), P);
    std::copy(p.begin(), p.begin() + n, tokens.begin() + r * P);
    lengths[r] = int32_t(n);
    rows[r].fed = n;
    rows[r].done = false;
    if (masked)
      for (int32_t id : p)
        if (id >= 0 && id < V)
          rows[r].utf8.advance((*opts.pieceBytes)[id]);
  }

  auto params = viewOf(model.params, {model.numParams});
  const int64_t cacheSizes[5] = {shape.layers, B, shape.kvHeads, C, shape.headDim};
  auto k = viewOf(kCache.data(), cacheSizes), v = viewOf(vCache.data(), cacheSizes);
  auto outLogits = viewOf(logits.data(), {B, V});
  // After each call: rows still inside their prompt take its next token; the others draw
  // one from their logits row.
  auto advance = [&] {
    for (int64_t r = 0; r < R; ++r) {
      Row &row = rows[r];
      if (row.done)
        continue;
      const std::vector<int32_t> &p = prompts[r];
      if (row.fed < int64_t(p.size())) {
        next[r] = p[row.fed];
        continue;
      }
      const float *l = logits.data() + r * V;
      if (masked)
        allowedAfter(row.utf8, *opts.pieceBytes, allowed);
      int32_t id = sampleToken(l, V, opts.temperature, opts.topK, rng,
                               masked ? allowed.data() : nullptr);
      Generation &g = out[r];
      g.ids.push_back(id);
      if (opts.keepLogits)
        g.logits.insert(g.logits.end(), l, l + V);
      if (masked)
        row.utf8.advance((*opts.pieceBytes)[id]);
      int64_t n = int64_t(g.ids.size());
      bool more = n < opts.maxNew || (masked && row.utf8.need > 0 && n < opts.maxNew + 3);
      if (opts.onToken && !opts.onToken(r, id)) {
        g.stopped = true;
        more = false;
      }
      if (more && row.fed >= C) {
        g.reachedContext = true;
        more = false;
      }
      row.done = !more;
      next[r] = id;
    }
  };

  auto tokensView = viewOf(tokens.data(), {B, P});
  auto lengthsView = viewOf(lengths.data(), {B});
  model.prefillStep(&params, &tokensView, &lengthsView, &k, &v, &outLogits);
  advance();
  auto nextView = viewOf(next.data(), {B});
  auto positionsView = viewOf(positions.data(), {B});
  while (std::any_of(rows.begin(), rows.end(), [](const Row &r) { return !r.done; })) {
    // Finished and unused rows decode a harmless token into their own cache row.
    for (int64_t r = 0; r < B; ++r) {
      if (rows[r].done)
        next[r] = 0;
      positions[r] = int32_t(std::min(rows[r].fed, C - 1));
    }
    model.decodeStep(&params, &nextView, &positionsView, &k, &v, &outLogits);
    for (Row &row : rows)
      if (!row.done)
        ++row.fed;
    advance();
  }
  return out;
}

Expected<std::vector<int32_t>> generateStream(const LogitsModel &model,
                                              const std::vector<int32_t> &prompt,
                                              const GenerateOptions &opts, std::mt19937_64 &rng) {
  if (Status st = checkModel(model, "generate"); !st)
    return st;
  if (prompt.empty())
    return Status::invalid("generate: empty prompt");
  const int64_t C = model.context, V = model.vocab;
  std::vector<int32_t> text = prompt, added;
  if (model.hasKVCache()) {
    GenerateOptions o = opts;
    o.keepLogits = false;
    while (int64_t(added.size()) < opts.maxNew) {
      // The whole text while it fits, else its last context / 2 tokens (at least 1).
      int64_t keep = int64_t(text.size()) <= C ? int64_t(text.size()) : std::max<int64_t>(1, C / 2);
      std::vector<int32_t> window(text.end() - keep, text.end());
      o.maxNew = opts.maxNew - int64_t(added.size());
      auto gen = generateBatch(model, {window}, o, rng);
      if (!gen)
        return gen.status();
      Generation &g = (*gen)[0];
      added.insert(added.end(), g.ids.begin(), g.ids.end());
      text.insert(text.end(), g.ids.begin(), g.ids.end());
      if (!g.reachedContext || g.ids.empty())
        break;
    }
    return added;
  }
  const bool masked = opts.pieceBytes && int64_t(opts.pieceBytes->size()) == V;
  Utf8State utf8;
  if (masked)
    for (int32_t id : prompt)
      if (id >= 0 && id < V)
        utf8.advance((*opts.pieceBytes)[id]);
  std::vector<uint8_t> allowed(masked ? V : 0);
  std::vector<int32_t> window(C);
  std::vector<float> logits(C * V);
  auto params = viewOf(model.params, {model.numParams});
  auto tokens = viewOf(window.data(), {int64_t(1), C});
  auto out = viewOf(logits.data(), {int64_t(1), C, V});
  // An incomplete last character gets up to 3 more (continuation) bytes.
  for (int64_t n = 0; n < opts.maxNew || (masked && utf8.need > 0 && n < opts.maxNew + 3); ++n) {
    int64_t len = std::min<int64_t>(int64_t(text.size()), C);
    std::fill(window.begin(), window.end(), 0);
    std::copy(text.end() - len, text.end(), window.begin());
    model.logitsStep(&params, &tokens, &out);
    if (masked)
      allowedAfter(utf8, *opts.pieceBytes, allowed);
    int32_t id = sampleToken(logits.data() + (len - 1) * V, V, opts.temperature, opts.topK, rng,
                             masked ? allowed.data() : nullptr);
    if (masked)
      utf8.advance((*opts.pieceBytes)[id]);
    text.push_back(id);
    added.push_back(id);
    if (opts.onToken && !opts.onToken(0, id))
      break;
  }
  return added;
}

Expected<std::vector<int32_t>> generate(const LogitsModel &model, std::vector<int32_t> prompt,
                                        int64_t numTokens, double temperature, int64_t topK,
                                        std::mt19937_64 &rng,
                                        const std::vector<int16_t> *pieceBytes) {
  GenerateOptions opts;
  opts.maxNew = numTokens;
  opts.temperature = temperature;
  opts.topK = topK;
  opts.pieceBytes = pieceBytes;
  auto added = generateStream(model, prompt, opts, rng);
  if (!added)
    return added.status();
  prompt.insert(prompt.end(), added->begin(), added->end());
  return prompt;
}

} // namespace lrt
