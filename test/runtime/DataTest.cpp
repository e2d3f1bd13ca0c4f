// SPDX-License-Identifier: Apache-2.0
/// Tests for runtime/Data: shifted targets, seeded shuffles, epochs, the split, validation
/// batches and the token cache.
#include "runtime/Data.h"

#include "TestUtil.h"

#include <gtest/gtest.h>

#include <fstream>
#include <numeric>
#include <set>

namespace lrt {
namespace {

std::vector<int32_t> iota(int n) {
  std::vector<int32_t> v(n);
  std::iota(v.begin(), v.end(), 0);
  return v;
}

/// The window order of one epoch.
std::vector<int64_t> firstEpoch(uint64_t seed) {
  auto b = TrainBatches::create(iota(1000), 2, 9, seed);
  EXPECT_TRUE(b);
  std::vector<int64_t> order;
  for (int64_t i = 0; i < b->numWindows(); ++i)
    order.push_back(b->nextWindow());
  return order;
}

// Tests that each target row is its token row shifted by one, within one window.
TEST(DataTest, TargetsAreShiftedTokens) {
  const int64_t B = 3, T = 7;
  auto b = TrainBatches::create(iota(500), B, T, 1);
  ASSERT_TRUE(b) << b.status().message();
  std::vector<int32_t> tokens(B * T), targets(B * T);
  for (int rep = 0; rep < 10; ++rep) {
    b->next(tokens.data(), targets.data());
    for (int64_t r = 0; r < B; ++r) {
      EXPECT_EQ(tokens[r * T] % (T + 1), 0) << "rows start on a window boundary";
      for (int64_t t = 0; t < T; ++t)
        EXPECT_EQ(targets[r * T + t], tokens[r * T + t] + 1);
    }
  }
}

// Tests that the same seed gives the same order and a different seed a different one.
TEST(DataTest, SeededOrder) {
  EXPECT_EQ(firstEpoch(7), firstEpoch(7));
  EXPECT_NE(firstEpoch(7), firstEpoch(8));
  std::vector<int64_t> sorted = firstEpoch(7);
  std::sort(sorted.begin(), sorted.end());
  EXPECT_NE(firstEpoch(7), sorted) << "order is shuffled";
}

// Tests that every window is used exactly once per epoch, and epochs differ.
TEST(DataTest, EveryWindowOncePerEpoch) {
  auto b = TrainBatches::create(iota(1003), 4, 9, 3); // 100 windows, 3 tokens left over
  ASSERT_TRUE(b);
  ASSERT_EQ(b->numWindows(), 100);
  std::vector<int64_t> epochs[3];
  for (auto &e : epochs) {
    for (int i = 0; i < 100; ++i)
      e.push_back(b->nextWindow());
    std::set<int64_t> unique(e.begin(), e.end());
    EXPECT_EQ(unique.size(), 100u);
    EXPECT_EQ(*unique.begin(), 0);
    EXPECT_EQ(*unique.rbegin(), 99);
  }
  EXPECT_EQ(b->epoch(), 2);
  EXPECT_NE(epochs[0], epochs[1]);
  // Batches run across the epoch boundary: 25 batches of 4 == one epoch.
  auto c = TrainBatches::create(iota(1000), 4, 9, 3);
  std::vector<int32_t> tok(36), tgt(36);
  std::multiset<int32_t> starts;
  for (int i = 0; i < 25; ++i) {
    c->next(tok.data(), tgt.data());
    for (int r = 0; r < 4; ++r)
      starts.insert(tok[r * 9]);
  }
  EXPECT_EQ(starts.size(), 100u);
  EXPECT_EQ(std::set<int32_t>(starts.begin(), starts.end()).size(), 100u);
}

// Tests the positional split, fixed validation batches and the errors for short data.
TEST(DataTest, SplitAndEvalBatches) {
  TokenSplit s = splitTokens(iota(100), 0.9);
  EXPECT_EQ(s.train.size(), 90u);
  EXPECT_EQ(s.val.size(), 10u);
  EXPECT_EQ(s.val.front(), 90);
  auto e = makeEvalBatches(iota(100), 2, 4, 8); // 20 windows -> at most 10 batches
  ASSERT_TRUE(e);
  EXPECT_EQ(e->numBatches, 8);
  EXPECT_EQ(e->tokensOf(0)[0], 0);
  EXPECT_EQ(e->tokensOf(0)[4], 5);  // second row = window 1
  EXPECT_EQ(e->targetsOf(1)[0], 11); // batch 1 row 0 = window 2 starts at 10
  auto few = makeEvalBatches(iota(30), 2, 4, 8);
  ASSERT_TRUE(few);
  EXPECT_EQ(few->numBatches, 3);
  auto none = makeEvalBatches(iota(4), 2, 4, 8);
  ASSERT_FALSE(none);
  EXPECT_NE(none.status().message().find("4 tokens"), std::string::npos);
  EXPECT_FALSE(TrainBatches::create(iota(4), 1, 4, 0));
}

// Tests that tokenised text round-trips and the cache is used only with the same key.
TEST(DataTest, TokenizeCached) {
  std::string dir = test::freshDir();
  std::string text = test::englishText(200);
  TokenizerTrainOptions opts;
  opts.vocabSize = 320;
  auto tok = Tokenizer::train(text, opts);
  ASSERT_TRUE(tok) << tok.status().message();
  std::ofstream(dir + "/corpus.txt") << text;
  auto key = tokenCacheKey(dir + "/corpus.txt", "text", *tok);
  ASSERT_TRUE(key);
  bool fromCache = true;
  auto ids = tokenizeCached(text, *tok, dir + "/tokens.bin", *key, &fromCache);
  ASSERT_TRUE(ids);
  EXPECT_FALSE(fromCache);
  EXPECT_EQ(tok->decode(*ids), text);
  EXPECT_EQ(*ids, tok->encode(text));
  auto again = tokenizeCached(text, *tok, dir + "/tokens.bin", *key, &fromCache);
  EXPECT_TRUE(fromCache);
  EXPECT_EQ(*again, *ids);
  ASSERT_TRUE(tokenizeCached(text, *tok, dir + "/tokens.bin", *key + "x", &fromCache));
  EXPECT_FALSE(fromCache);
}

// Tests issue #5's pad == EOS case: padding is found by the attention mask, so the real
// EOS (id 2, attended) stays a label while the two pad copies (also id 2) are ignored.
// Expected values from the issue; the shift is transformers' labels[..., 1:].
TEST(DataTest, PadEqualsEosKeepsTheRealEos) {
  auto labels = labelsFromAttention({5, 9, 2, 2, 2}, {1, 1, 1, 0, 0});
  ASSERT_TRUE(labels) << labels.status().message();
  EXPECT_EQ(*labels, (std::vector<int32_t>{5, 9, 2, -100, -100}));
  EXPECT_EQ(shiftLabels(*labels), (std::vector<int32_t>{9, 2, -100, -100, -100}));
  EXPECT_EQ(countTargets(labels->data(), 5), 3);
}

// Tests that malformed attention masks are errors with the numbers involved.
TEST(DataTest, LabelsRejectBadMasks) {
  auto a = labelsFromAttention({1, 2}, {1});
  ASSERT_FALSE(a);
  EXPECT_EQ(a.status().message(), "labels: 2 ids but 1 attention mask values");
  auto b = labelsFromAttention({1, 2}, {1, 3});
  ASSERT_FALSE(b);
  EXPECT_EQ(b.status().message(),
            "labels: attention mask value 3 at position 1; expected 0 or 1");
}

// Tests issue #5's packing case: documents of lengths 3 and 2 in one row of 5 get
// segments [0, 0, 0, 1, 1], positions [0, 1, 2, 0, 1] and no target across the boundary
// (doc A's last token has -100, not doc B's first token). Values by hand.
TEST(DataTest, PackingTwoDocuments) {
  auto p = packDocuments({{11, 12, 13}, {21, 22}}, 5, 0);
  ASSERT_TRUE(p) << p.status().message();
  EXPECT_EQ(p->rows, 1);
  EXPECT_EQ(p->tokens, (std::vector<int32_t>{11, 12, 13, 21, 22}));
  EXPECT_EQ(p->segments, (std::vector<int32_t>{0, 0, 0, 1, 1}));
  EXPECT_EQ(p->positions, (std::vector<int32_t>{0, 1, 2, 0, 1}));
  EXPECT_EQ(p->targets, (std::vector<int32_t>{12, 13, -100, 22, -100}));
}

// Tests that a document that does not fit starts a new row and that the rest of a row is
// padding with its own segment, restarted positions and no targets (by hand).
TEST(DataTest, PackingPadsAndStartsNewRows) {
  auto p = packDocuments({{1, 2}, {3, 4, 5}, {6}}, 4, 9);
  ASSERT_TRUE(p) << p.status().message();
  EXPECT_EQ(p->rows, 2);
  EXPECT_EQ(p->tokens, (std::vector<int32_t>{1, 2, 9, 9, 3, 4, 5, 6}));
  EXPECT_EQ(p->segments, (std::vector<int32_t>{0, 0, 1, 1, 0, 0, 0, 1}));
  EXPECT_EQ(p->positions, (std::vector<int32_t>{0, 1, 0, 1, 0, 1, 2, 0}));
  EXPECT_EQ(p->targets, (std::vector<int32_t>{2, -100, -100, -100, 4, 5, -100, -100}));
  auto tooLong = packDocuments({{1, 2, 3}}, 2, 0);
  ASSERT_FALSE(tooLong);
  EXPECT_EQ(tooLong.status().message(),
            "packing: document 0 has 3 tokens; expected 1 to the sequence length 2");
}

// Tests the accumulation arithmetic of issue #5: micro-batches with per-token losses [4]
// and [1, 1, 1] (mean losses 4 and 1 over 1 and 3 target tokens) give the step loss
// (4 + 1 + 1 + 1) / 4 = 1.75, not the mean of the means 2.5, with gradient scales 1/4 and
// 3/4; a step without any target token gives scale 0 and loss 0 (no NaN).
TEST(DataTest, TokenWeightedAccumulation) {
  EXPECT_DOUBLE_EQ(weightedMeanLoss({4.0, 1.0}, {1, 3}), 1.75);
  EXPECT_DOUBLE_EQ(gradScale(1, 4), 0.25);
  EXPECT_DOUBLE_EQ(gradScale(3, 4), 0.75);
  EXPECT_DOUBLE_EQ(weightedMeanLoss({0.0, 0.0}, {0, 0}), 0.0);
  EXPECT_DOUBLE_EQ(gradScale(0, 0), 0.0);
  const int32_t masked[4] = {-100, -100, -100, -100};
  EXPECT_EQ(countTargets(masked, 4), 0);
}

} // namespace
} // namespace lrt
