// SPDX-License-Identifier: Apache-2.0
/// FTZ / DAZ on the calling thread and on the OpenMP threads (kernels/cpu/FloatEnv.h).
/// Expected values by IEEE 754 binary32: FLT_MIN = 2^-126; 2^-130 is denormal; with DAZ a
/// denormal input reads as 0, with FTZ a result below FLT_MIN is written as 0.
#include "kernels/cpu/FloatEnv.h"

#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <omp.h>
#include <vector>

namespace {

/// 2^-130 * 1 (a denormal input) and FLT_MIN * 2^-4 (a denormal result), computed at run
/// time through volatiles so that the compiler cannot fold them.
struct Probe {
  float denormalTimesOne, resultBelowMin;
};

Probe probe() {
  volatile float denormal = std::ldexp(1.0f, -130), one = 1.0f, min = FLT_MIN, sixteenth = 0.0625f;
  return {denormal * one, min * sixteenth};
}

#if defined(__x86_64__)
TEST(FloatEnv, FlushesOnCallerAndOpenMPThreads) {
  Probe before = probe();
  ASSERT_EQ(before.denormalTimesOne, std::ldexp(1.0f, -130)); // IEEE default: gradual underflow
  ASSERT_EQ(before.resultBelowMin, std::ldexp(1.0f, -130));
  lrt_flush_denormals_to_zero();
  EXPECT_TRUE(lrt_denormals_flushed());
  Probe after = probe();
  EXPECT_EQ(after.denormalTimesOne, 0.0f);
  EXPECT_EQ(after.resultBelowMin, 0.0f);
  // Normal numbers are untouched: 2^-100 * 2 = 2^-99.
  volatile float small = std::ldexp(1.0f, -100), two = 2.0f;
  EXPECT_EQ(small * two, std::ldexp(1.0f, -99));

  int threads = std::max(2, omp_get_max_threads());
  std::vector<int> flushed(threads, 0);
  std::vector<float> results(threads, -1.0f);
#pragma omp parallel num_threads(threads)
  {
    int t = omp_get_thread_num();
    flushed[t] = lrt_denormals_flushed();
    results[t] = probe().resultBelowMin;
  }
  for (int t = 0; t < threads; ++t) {
    EXPECT_EQ(flushed[t], 1) << "thread " << t;
    EXPECT_EQ(results[t], 0.0f) << "thread " << t;
  }
}
#endif

} // namespace
