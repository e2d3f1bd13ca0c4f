// SPDX-License-Identifier: Apache-2.0
/// Tests for runtime/Schedule against hand-computed values.
#include "runtime/Schedule.h"

#include <gtest/gtest.h>

#include <cmath>

namespace lrt {
namespace {

// Tests warmup, peak, the cosine midpoint, the end and past the end
// (lr 1e-3, minLr 1e-4, warmup 10, steps 110).
TEST(ScheduleTest, WarmupThenCosine) {
  const double lr = 1e-3, minLr = 1e-4;
  auto at = [&](int64_t it) { return learningRate(it, lr, minLr, 10, 110); };
  EXPECT_DOUBLE_EQ(at(0), 1e-3 * 1.0 / 11.0);
  EXPECT_DOUBLE_EQ(at(9), 1e-3 * 10.0 / 11.0);
  EXPECT_DOUBLE_EQ(at(10), 1e-3);                    // r = 0: cos 0 = 1
  EXPECT_NEAR(at(60), 1e-4 + 0.5 * 9e-4, 1e-15);     // r = 0.5: cos(pi/2) = 0
  EXPECT_NEAR(at(35), 1e-4 + 0.5 * (1 + std::cos(M_PI * 0.25)) * 9e-4, 1e-15);
  EXPECT_NEAR(at(110), 1e-4, 1e-15);
  EXPECT_DOUBLE_EQ(at(500), 1e-4);
  for (int64_t it = 10; it < 110; ++it)
    EXPECT_LE(at(it + 1), at(it));
}

// Tests the edge cases: no warmup, and a run shorter than its warmup.
TEST(ScheduleTest, EdgeCases) {
  EXPECT_DOUBLE_EQ(learningRate(0, 1.0, 0.0, 0, 100), 1.0);
  EXPECT_NEAR(learningRate(50, 1.0, 0.0, 0, 100), 0.5, 1e-12);
  EXPECT_DOUBLE_EQ(learningRate(4, 1.0, 0.0, 10, 5), 5.0 / 11.0);
}

} // namespace
} // namespace lrt
