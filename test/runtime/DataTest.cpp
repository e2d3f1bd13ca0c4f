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

} // namespace
} // namespace lrt
