// SPDX-License-Identifier: Apache-2.0
/// Tests for runtime/DataParallel in one process: the rows each rank trains on, and the
/// agreement helpers on a single-process world. The same helpers across two processes are
/// tested by test/runtime/collective/MpiCollectiveTest.cpp (under mpiexec -np 2).
#include "runtime/DataParallel.h"

#include <gtest/gtest.h>

#include <numeric>

namespace lrt {
namespace {

/// Checks that R ranks with K micro-batches of B rows each together draw, step by step,
/// exactly the rows one process draws with one batch of R*K*B rows (the reference: plain
/// TrainBatches::next on the same tokens and seed), rank r getting rows
/// [r*K*B, (r+1)*K*B) in micro-batch order, and that every rank's data cursor stays the
/// reference's. 40 steps over 101 windows cross several epoch boundaries.
void checkShards(int R, int64_t K, int64_t B) {
  const int64_t T = 5, G = R * K * B;
  std::vector<int32_t> ids(101 * (T + 1) + 2); // 101 windows and 2 tokens left over
  std::iota(ids.begin(), ids.end(), 0);
  auto whole = TrainBatches::create(ids, G, T, 42);
  ASSERT_TRUE(whole) << whole.status().message();
  std::vector<TrainBatches> ranks;
  for (int r = 0; r < R; ++r) {
    auto b = TrainBatches::create(ids, B, T, 42);
    ASSERT_TRUE(b);
    ranks.push_back(b.take());
  }
  std::vector<int32_t> refTok(G * T), refTgt(G * T), tok(K * B * T), tgt(K * B * T);
  for (int step = 0; step < 40; ++step) {
    whole->next(refTok.data(), refTgt.data());
    for (int r = 0; r < R; ++r) {
      nextShard(ranks[r], r, R, K, tok.data(), tgt.data());
      const int64_t off = r * K * B * T;
      ASSERT_TRUE(std::equal(tok.begin(), tok.end(), refTok.begin() + off))
          << "tokens of rank " << r << " at step " << step;
      ASSERT_TRUE(std::equal(tgt.begin(), tgt.end(), refTgt.begin() + off))
          << "targets of rank " << r << " at step " << step;
      TrainBatches::State a = ranks[r].state(), w = whole->state();
      EXPECT_EQ(a.cursor, w.cursor);
      EXPECT_EQ(a.epoch, w.epoch);
      EXPECT_EQ(a.order, w.order);
      EXPECT_EQ(a.rng, w.rng);
    }
  }
  EXPECT_GE(whole->epoch(), 2) << "the steps must cross epoch boundaries";
}

// Tests 2 ranks x 1 micro-batch of 3 rows against one process with batch 6.
TEST(DataParallelTest, TwoRanksShardTheGlobalBatch) { checkShards(2, 1, 3); }

// Tests 3 ranks x 2 micro-batches of 2 rows against one process with batch 12.
TEST(DataParallelTest, ThreeRanksWithAccumulation) { checkShards(3, 2, 2); }

// Tests that one rank with K micro-batches is plain TrainBatches::next, K times.
TEST(DataParallelTest, OneRankIsNext) { checkShards(1, 4, 2); }

// Tests the agreement helpers on one process: they return the local value.
TEST(DataParallelTest, SingleProcessAgreement) {
  auto world = makeSingleProcessCollective();
  EXPECT_TRUE(agreeOnStatus(*world, Status::ok()));
  Status st = agreeOnStatus(*world, Status::ioError("cannot write 'x'"));
  EXPECT_EQ(st.code(), StatusCode::IoError);
  EXPECT_EQ(st.message(), "cannot write 'x'");
  auto no = anyRank(*world, false), yes = anyRank(*world, true);
  ASSERT_TRUE(no && yes);
  EXPECT_FALSE(*no);
  EXPECT_TRUE(*yes);
  std::vector<float> p = {1, 2, 3};
  EXPECT_TRUE(checkIdentical(*world, p.data(), 3, "parameters"));
}

} // namespace
} // namespace lrt
