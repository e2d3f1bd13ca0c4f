// SPDX-License-Identifier: Apache-2.0
/// Tests for runtime/Generate: top-k/temperature sampling and the sliding window.
#include "runtime/Generate.h"

#include "runtime/Corpus.h"

#include <gtest/gtest.h>

#include <map>

namespace lrt {
namespace {

// Tests that top-k never samples outside the k largest logits, and that temperature 0 is
// the argmax.
TEST(GenerateTest, TopKAndGreedy) {
  std::vector<float> logits = {0.0f, 5.0f, 1.0f, 4.9f, -3.0f};
  std::mt19937_64 rng(1);
  std::map<int32_t, int> counts;
  for (int i = 0; i < 2000; ++i)
    ++counts[sampleToken(logits.data(), 5, 0.8, 2, rng)];
  EXPECT_EQ(counts.size(), 2u);
  EXPECT_GT(counts[1], counts[3]);
  EXPECT_GT(counts[3], 500);
  EXPECT_EQ(sampleToken(logits.data(), 5, 0.0, 40, rng), 1);
  // Same seed, same draws.
  std::mt19937_64 a(9), b(9);
  for (int i = 0; i < 50; ++i)
    EXPECT_EQ(sampleToken(logits.data(), 5, 1.0, 0, a), sampleToken(logits.data(), 5, 1.0, 0, b));
}

int64_t gLastLen = 0;
/// A fake model: the logits at position p put all mass on (token[p] + 1) % vocab.
void nextIdModel(MemRef<float, 1> *, MemRef<int32_t, 2> *tokens, MemRef<float, 3> *logits) {
  int64_t C = tokens->sizes[1], V = logits->sizes[2];
  for (int64_t p = 0; p < C; ++p)
    for (int64_t v = 0; v < V; ++v)
      logits->aligned[p * V + v] = (v == (tokens->aligned[p] + 1) % V) ? 100.0f : 0.0f;
  gLastLen = C;
}

// Tests that generation reads the row of the last prompt position and slides the window
// past the context.
TEST(GenerateTest, SlidingWindow) {
  float params[1] = {0};
  LogitsModel model{nextIdModel, params, 1, 4, 10};
  std::mt19937_64 rng(0);
  auto out = generate(model, {3, 4}, 9, 0.8, 40, rng);
  ASSERT_TRUE(out) << out.status().message();
  EXPECT_EQ(*out, (std::vector<int32_t>{3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3}));
  EXPECT_EQ(gLastLen, 4);
  EXPECT_FALSE(generate(model, {}, 3, 0.8, 40, rng));
  EXPECT_FALSE(generate(LogitsModel{}, {1}, 3, 0.8, 40, rng));
}

/// A fake model with equal logits for every id: unmasked, it samples anything.
void flatModel(MemRef<float, 1> *, MemRef<int32_t, 2> *tokens, MemRef<float, 3> *logits) {
  std::fill_n(logits->aligned, tokens->sizes[1] * logits->sizes[2], 0.0f);
}

// Tests that with pieceBytes, generation never samples a special piece (<unk> decodes as
// " ⁇ ") and only samples byte pieces that keep the text valid UTF-8 (no U+FFFD), finishing
// a character that the last token left open.
TEST(GenerateTest, MasksSpecialPiecesAndInvalidUtf8) {
  // Id 0 <unk>, 1 a control piece, 2..257 the bytes 0..255, 258..299 text pieces "a".
  constexpr int64_t V = 300;
  std::vector<int16_t> pieces(V, kTextPiece);
  pieces[0] = pieces[1] = kSpecialPiece;
  for (int b = 0; b < 256; ++b)
    pieces[2 + b] = int16_t(b);
  float params[1] = {0};
  LogitsModel model{flatModel, params, 1, 8, V};
  for (uint64_t seed = 0; seed < 20; ++seed) {
    std::mt19937_64 rng(seed);
    auto out = generate(model, {258}, 64, 1.0, 0, rng, &pieces);
    ASSERT_TRUE(out) << out.status().message();
    EXPECT_GE(out->size(), 65u);
    EXPECT_LE(out->size(), 68u);
    std::string bytes;
    for (int32_t id : *out) {
      ASSERT_NE(pieces[id], kSpecialPiece) << "sampled special id " << id << " (seed " << seed << ")";
      bytes += pieces[id] >= 0 ? char(pieces[id]) : 'a';
    }
    EXPECT_EQ(findInvalidUtf8(bytes), -1) << "seed " << seed;
  }
  // Without the mask the same model samples special ids and broken UTF-8.
  std::mt19937_64 rng(0);
  auto out = generate(model, {258}, 64, 1.0, 0, rng);
  ASSERT_TRUE(out);
  std::string bytes;
  for (int32_t id : *out)
    bytes += pieces[id] >= 0 ? char(pieces[id]) : 'a';
  EXPECT_NE(findInvalidUtf8(bytes), -1);
  // sampleToken honours `allowed` even at temperature 0.
  std::vector<float> logits = {9.0f, 1.0f, 2.0f};
  std::vector<uint8_t> allowed = {0, 1, 1};
  EXPECT_EQ(sampleToken(logits.data(), 3, 0.0, 0, rng, allowed.data()), 2);
}

/// A fake model with a KV cache (runtime/KVCache.h: layers 1, kvHeads 1, headDim 1): the
/// cache holds the ids themselves, and the logits after position p of row b put all mass
/// on nextOf(ids at 0..p) = (sum of those ids + p + 1) % vocab, so the output depends on
/// every cached id and on the position, as attention over a cache does.
constexpr int64_t kFakeVocab = 23;
int32_t nextOf(const std::vector<int32_t> &ids) {
  int64_t sum = 0;
  for (int32_t id : ids)
    sum += id;
  return int32_t((sum + int64_t(ids.size())) % kFakeVocab);
}
void oneHot(float *row, int64_t V, int64_t hot) {
  for (int64_t v = 0; v < V; ++v)
    row[v] = v == hot ? 100.0f : 0.0f;
}
/// Logits of row b from its cached ids at positions 0..last.
void fakeLogits(const MemRef<float, 5> *k, int64_t b, int64_t last, MemRef<float, 2> *logits) {
  int64_t C = k->sizes[3], V = logits->sizes[1];
  std::vector<int32_t> ids;
  for (int64_t p = 0; p <= last; ++p)
    ids.push_back(int32_t(k->aligned[b * C + p]));
  oneHot(logits->aligned + b * V, V, nextOf(ids));
}
void fakePrefill(MemRef<float, 1> *, MemRef<int32_t, 2> *tokens, MemRef<int32_t, 1> *lengths,
                 MemRef<float, 5> *k, MemRef<float, 5> *, MemRef<float, 2> *logits) {
  int64_t B = tokens->sizes[0], P = tokens->sizes[1], C = k->sizes[3];
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t p = 0; p < P; ++p)
      k->aligned[b * C + p] = float(tokens->aligned[b * P + p]);
    fakeLogits(k, b, lengths->aligned[b] - 1, logits);
  }
}
void fakeDecode(MemRef<float, 1> *, MemRef<int32_t, 1> *tokens, MemRef<int32_t, 1> *positions,
                MemRef<float, 5> *k, MemRef<float, 5> *, MemRef<float, 2> *logits) {
  int64_t B = tokens->sizes[0], C = k->sizes[3];
  for (int64_t b = 0; b < B; ++b) {
    int64_t pos = positions->aligned[b];
    EXPECT_GE(pos, 0);
    EXPECT_LT(pos, C);
    k->aligned[b * C + pos] = float(tokens->aligned[b]);
    fakeLogits(k, b, pos, logits);
  }
}
LogitsModel fakeKVModel(float *params, int64_t batch, int64_t prefillLen, int64_t context) {
  LogitsModel m{nullptr, params, 1, context, kFakeVocab};
  m.prefillStep = fakePrefill;
  m.decodeStep = fakeDecode;
  m.cache = KVCacheShape{1, batch, 1, context, 1, prefillLen};
  return m;
}
/// The reference: `n` greedy ids after `prompt` by nextOf over the whole text.
std::vector<int32_t> expectedIds(std::vector<int32_t> text, int64_t n) {
  std::vector<int32_t> out;
  for (int64_t i = 0; i < n; ++i) {
    out.push_back(nextOf(text));
    text.push_back(out.back());
  }
  return out;
}

// Tests that batched generation over prompts of different lengths (one shorter than the
// prefill, one longer: its rest goes through decode_step first) gives each row the ids
// of the reference, the same as each prompt alone, and that a row whose text fills the
// context ends there with its last drawn id (prompt + ids = context + 1).
TEST(GenerateTest, KVCacheBatchedRowsOfDifferentLengths) {
  float params[1] = {0};
  LogitsModel model = fakeKVModel(params, 4, 4, 12);
  std::vector<std::vector<int32_t>> prompts = {{5}, {1, 2, 3}, {7, 7, 1, 2, 9, 4}, {3, 1, 4, 1, 5, 9, 2, 6, 5, 3}};
  GenerateOptions opts;
  opts.maxNew = 5;
  opts.keepLogits = true;
  std::mt19937_64 rng(0);
  auto batch = generateBatch(model, prompts, opts, rng);
  ASSERT_TRUE(batch) << batch.status().message();
  for (size_t i = 0; i < prompts.size(); ++i) {
    int64_t n = std::min<int64_t>(5, 12 - int64_t(prompts[i].size()) + 1);
    EXPECT_EQ((*batch)[i].ids, expectedIds(prompts[i], n)) << "prompt " << i;
    EXPECT_EQ((*batch)[i].reachedContext, i == 3) << "prompt " << i;
    ASSERT_EQ((*batch)[i].logits.size(), size_t(n * kFakeVocab));
    EXPECT_EQ((*batch)[i].logits[size_t((*batch)[i].ids[0])], 100.0f);
    auto alone = generateBatch(model, {prompts[i]}, opts, rng);
    ASSERT_TRUE(alone);
    EXPECT_EQ((*alone)[0].ids, (*batch)[i].ids) << "prompt " << i;
  }
  // onToken ends a row (keeping the id) without ending the others.
  opts.onToken = [](int64_t row, int32_t) { return row != 1; };
  auto stopped = generateBatch(model, {prompts[0], prompts[1]}, opts, rng);
  ASSERT_TRUE(stopped);
  EXPECT_EQ((*stopped)[1].ids.size(), 1u);
  EXPECT_TRUE((*stopped)[1].stopped);
  EXPECT_EQ((*stopped)[0].ids, expectedIds(prompts[0], 5));
  // Errors: more prompts than rows, an empty prompt, one longer than the context, no
  // compiled prefill.
  EXPECT_FALSE(generateBatch(model, {{1}, {1}, {1}, {1}, {1}}, opts, rng));
  EXPECT_FALSE(generateBatch(model, {{}}, opts, rng));
  EXPECT_FALSE(generateBatch(model, {std::vector<int32_t>(13, 1)}, opts, rng));
  LogitsModel noCache = model;
  noCache.prefillStep = nullptr;
  EXPECT_FALSE(generateBatch(noCache, {{1}}, opts, rng));
}

// Tests that single-sequence generation with a KV cache follows the reference while the
// text fits and keeps going past the context from its last context / 2 tokens.
TEST(GenerateTest, KVCacheSlidesPastTheContext) {
  float params[1] = {0};
  LogitsModel model = fakeKVModel(params, 1, 8, 8);
  std::mt19937_64 rng(0);
  auto out = generate(model, {2, 3}, 12, 0.0, 0, rng);
  ASSERT_TRUE(out) << out.status().message();
  ASSERT_EQ(out->size(), 14u);
  // 7 ids fill the context of 8 (2 + 7 = context + 1), then generation restarts from the
  // last 4 tokens.
  std::vector<int32_t> first(out->begin(), out->begin() + 9);
  EXPECT_EQ(std::vector<int32_t>(first.begin() + 2, first.end()), expectedIds({2, 3}, 7));
  std::vector<int32_t> window(first.end() - 4, first.end());
  EXPECT_EQ(std::vector<int32_t>(out->begin() + 9, out->end()), expectedIds(window, 5));
}

} // namespace
} // namespace lrt
