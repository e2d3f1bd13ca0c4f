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

} // namespace
} // namespace lrt
