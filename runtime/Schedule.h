// SPDX-License-Identifier: Apache-2.0
/// The learning-rate schedule of a `pretrain` stage: linear warmup, then cosine decay
/// (nanoGPT's `get_lr`).
#pragma once

#include <cstdint>

namespace lrt {

/// Learning rate for 0-based iteration `it` (step `it + 1` uses it):
///
///   it <  warmup:            lr * (it + 1) / (warmup + 1)
///   warmup <= it < steps:    minLr + 0.5 * (1 + cos(pi * r)) * (lr - minLr),
///                            r = (it - warmup) / (steps - warmup)
///   it >= steps:             minLr
///
/// So the first step never runs at lr 0, the rate peaks right after warmup and reaches
/// minLr at `steps`. `warmup` may be 0; if `steps <= warmup` every step is in warmup.
double learningRate(int64_t it, double lr, double minLr, int64_t warmup, int64_t steps);

} // namespace lrt
