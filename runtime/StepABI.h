// SPDX-License-Identifier: Apache-2.0
/// The C ABI between compiled step functions and the host runtime. The compiler emits
/// these three functions for every `pretrain` stage (as `_mlir_ciface_<name>`); the runtime
/// calls them through the pointers below and never interprets the model graph itself.
///
/// All parameters of a model live in one flat fp32 buffer of `numParams` elements, in the
/// order and at the offsets given by `ParamInfo` (see Plan.h). Gradients and the AdamW
/// moments `m`, `v` are flat buffers of the same size and layout.
#pragma once

#include "runtime/MemRef.h"

namespace lrt {

/// Indices into the `hyper` vector passed to `train_step` (fp32[kNumHyper]).
enum Hyper : int {
  kHyperLr = 0,          ///< learning rate of this step (after the schedule)
  kHyperBeta1 = 1,       ///< AdamW beta1
  kHyperBeta2 = 2,       ///< AdamW beta2
  kHyperEps = 3,         ///< AdamW epsilon
  kHyperWeightDecay = 4, ///< decoupled weight decay (applied to params with `decay`)
  kHyperGradClip = 5,    ///< clip the global L2 norm of the gradient to this; <= 0: no clip
  kHyperStep = 6,        ///< 1-based step number t, for bias correction 1 - beta^t
  kNumHyper = 8,
};

/// Indices into the `metrics` output vector (fp32[kNumMetrics]).
enum Metric : int {
  kMetricLoss = 0,     ///< mean loss over the batch's target tokens
  kMetricGradNorm = 1, ///< global L2 norm of the gradient before clipping (train only)
  kNumMetrics = 4,
};

/// train_step: forward, backward and the AdamW update, in place.
///   params, grads, m, v : fp32[numParams]
///   tokens, targets     : i32[batch, seqLen]
///   hyper               : fp32[kNumHyper]
///   metrics             : fp32[kNumMetrics] (written)
/// After the call `grads` holds the unclipped gradient of the mean loss, and params/m/v hold
/// the updated values (Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization",
/// Algorithm 2, with bias-corrected moments).
using TrainStepFn = void (*)(MemRef<float, 1> *params, MemRef<float, 1> *grads,
                             MemRef<float, 1> *m, MemRef<float, 1> *v,
                             MemRef<int32_t, 2> *tokens, MemRef<int32_t, 2> *targets,
                             MemRef<float, 1> *hyper, MemRef<float, 1> *metrics);

/// eval_step: forward and loss only; writes metrics[kMetricLoss].
using EvalStepFn = void (*)(MemRef<float, 1> *params, MemRef<int32_t, 2> *tokens,
                            MemRef<int32_t, 2> *targets, MemRef<float, 1> *metrics);

/// logits_step: forward of one sequence of the model's full context.
///   tokens : i32[1, context]  (positions past the prompt may hold any valid id: attention
///            is causal, so they do not change earlier logits)
///   logits : fp32[1, context, vocab] (written)
using LogitsStepFn = void (*)(MemRef<float, 1> *params, MemRef<int32_t, 2> *tokens,
                              MemRef<float, 3> *logits);

/// The compiled entry points of one stage.
struct StepFunctions {
  TrainStepFn trainStep = nullptr;
  EvalStepFn evalStep = nullptr;
  LogitsStepFn logitsStep = nullptr;
};

} // namespace lrt
