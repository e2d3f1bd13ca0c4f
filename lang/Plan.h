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
  int64_t frozenParams = 0;    ///< a LoRA stage's base model (every parameter not an adapter)
  /// The weights the stage trains or serves: all of the model's (NF4/int8/int4 where
  /// declared), or only the adapters (and head) of a LoRA stage, fp32.
  int64_t weightBytes = 0;
  /// Frozen copies: a LoRA stage's base, laid out as the runtime's frozen buffer (fp32, or
  /// NF4 blobs with `base: nf4`, each tensor from a 64-byte aligned offset:
  /// llmp-apply-lora, llmp-quantize-base); the reference model, the reward model (fp32).
  int64_t frozenBytes = 0;
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
