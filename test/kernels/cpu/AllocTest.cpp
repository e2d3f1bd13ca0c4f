// SPDX-License-Identifier: Apache-2.0
/// The caching step heap: alignment, reuse of freed blocks of the same size, and counters
/// that show a repeated allocation pattern (a training step) reaching the system only once.
#include "kernels/cpu/Alloc.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace {

TEST(Alloc, AlignedAndWritable) {
  for (size_t size : {size_t(0), size_t(1), size_t(63), size_t(4096), size_t(1) << 20}) {
    void *p = lrt_alloc(size);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u);
    std::memset(p, 0xab, size);
    lrt_free(p);
  }
  void *q = lrt_aligned_alloc(256, 100);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(q) % 256, 0u);
  lrt_free(q);
  lrt_free(nullptr);
}

TEST(Alloc, FreedBlockIsReusedForTheSameSize) {
  void *a = lrt_alloc(12345);
  lrt_free(a);
  void *b = lrt_alloc(12345);
  EXPECT_EQ(a, b);
  void *c = lrt_alloc(12345); // a is live again: c is a new block
  EXPECT_NE(b, c);
  lrt_free(b);
  lrt_free(c);
}

TEST(Alloc, RepeatedStepsReachTheSystemOnlyOnce) {
  const std::vector<size_t> sizes = {1 << 20, 4 << 20, 1 << 20, 333, 16 << 20};
  auto step = [&] {
    std::vector<void *> live;
    for (size_t s : sizes)
      live.push_back(lrt_alloc(s));
    for (void *p : live)
      lrt_free(p);
  };
  step();
  LrtAllocStats first = lrt_alloc_stats();
  for (int i = 0; i < 5; ++i)
    step();
  LrtAllocStats after = lrt_alloc_stats();
  EXPECT_EQ(after.systemAllocs, first.systemAllocs);
  EXPECT_EQ(after.reuses - first.reuses, 5 * sizes.size());
  EXPECT_EQ(after.liveBytes, 0u);
  EXPECT_GE(after.peakBytes, (1u << 20) * 2 + (4u << 20) + (16u << 20));
  lrt_alloc_release_cached();
  EXPECT_EQ(lrt_alloc_stats().cachedBytes, 0u);
}

// Tests that lrt_alloc_reset_peak restarts the peak at the live bytes: a small "stage"
// after a large one reports its own peak (64 + 1 MiB live at most, all rounded sizes
// multiples of 64), not the large one's 32 MiB.
TEST(Alloc, ResetPeakMeasuresWhatRunsNext) {
  void *big = lrt_alloc(32 << 20);
  lrt_free(big);
  void *held = lrt_alloc(64); // live across the reset
  ASSERT_GE(lrt_alloc_stats().peakBytes, uint64_t(32) << 20);
  lrt_alloc_reset_peak();
  EXPECT_EQ(lrt_alloc_stats().peakBytes, lrt_alloc_stats().liveBytes);
  const uint64_t before = lrt_alloc_stats().liveBytes;
  void *small = lrt_alloc(1 << 20);
  lrt_free(small);
  EXPECT_EQ(lrt_alloc_stats().peakBytes, before + (1u << 20));
  lrt_free(held);
  lrt_alloc_release_cached();
}

} // namespace
