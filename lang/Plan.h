// SPDX-License-Identifier: Apache-2.0
/// The resource plan of a checked stage: parameter counts, bytes of weights, gradients,
/// optimizer state, activations and KV cache, and FLOPs per step. The formulas are in
/// docs/language.md ("The plan"); every figure is a plain function of the StageInfo.
#pragma once

#include "lang/AST.h"

namespace llmp::lang {

struct StagePlanFigures {
  std::string stage, kind, model;
  int64_t params = 0;          ///< the model's parameters (adapters included)
  int64_t trainable = 0;       ///< parameters that get gradients
  int64_t weightBytes = 0;     ///< the trained model's weights (NF4/int8/int4 where declared)
  int64_t frozenBytes = 0;     ///< frozen copies: reference model, reward model
  int64_t gradientBytes = 0;   ///< fp32 gradients of the trainable parameters
  int64_t optimizerBytes = 0;  ///< AdamW: two fp32 moments per trainable parameter
  /// Temporaries of a training step at the declared batch: the formula's estimate of what
  /// the backward pass saves, or, once `activationsComputed`, the step heap's peak that
  /// the compiler computed from the compiled step functions (llmp-step-heap-peak).
  int64_t activationBytes = 0;
  bool activationsComputed = false;
  int64_t kvCacheBytes = 0;    ///< generating stages
  double flopsPerStep = 0;     ///< training step, or one generated token for deploy
  int64_t steps = 0;
  int64_t totalBytes() const {
    return weightBytes + frozenBytes + gradientBytes + optimizerBytes + activationBytes +
           kvCacheBytes;
  }
};

/// Computes the figures of a checked stage.
StagePlanFigures planStage(const StageInfo &info);

} // namespace llmp::lang
