// SPDX-License-Identifier: Apache-2.0
/// Warmup + cosine learning-rate schedule.
#include "runtime/Schedule.h"

#include <cmath>

namespace lrt {

double learningRate(int64_t it, double lr, double minLr, int64_t warmup, int64_t steps) {
  if (it < warmup)
    return lr * double(it + 1) / double(warmup + 1);
  if (it >= steps)
    return minLr;
  double ratio = double(it - warmup) / double(steps - warmup);
  double coeff = 0.5 * (1.0 + std::cos(M_PI * ratio));
  return minLr + coeff * (lr - minLr);
}

} // namespace lrt
