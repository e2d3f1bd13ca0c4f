// SPDX-License-Identifier: Apache-2.0
/// The C ABI between compiled step functions and the host runtime. The compiler emits
/// these functions for every `pretrain` stage (as `_mlir_ciface_<name>`); the runtime calls
/// them through the pointers below and never interprets the model graph itself.
///
/// All parameters of a model live in one flat fp32 buffer of `numParams` elements, in the
/// order and at the offsets given by `ParamInfo` (see Plan.h). Gradients and the AdamW
/// moments `m`, `v` are flat buffers of the same size and layout.
///
/// One optimizer step over K micro-batches (gradient accumulation), and over R ranks (data
/// parallel), goes:
///
///   n_i = number of target tokens of micro-batch i (targets != kIgnoreIndex)
///   N   = sum of n_i over the step's micro-batches (and over all ranks: allreduce-sum)
///   grads = 0
///   for each micro-batch i:  hyper[kHyperGradScale] = N > 0 ? n_i / N : 0
///                            hyper[kHyperMicroBatch] = rank * K + i
///                            grad_step(params, grads, tokens_i, targets_i, hyper, metrics)
///   (data parallel: allreduce-sum `grads` here)
///   apply_step(params, grads, m, v, hyper, metrics)
///
/// Because each grad_step differentiates the mean loss of its micro-batch (sum over its
/// n_i target tokens / n_i), the accumulated gradient is that of the sum of all per-token
/// losses divided by N: the mean over every target token of the step, whatever the split
/// into micro-batches or ranks (per-token losses [4] and [1, 1, 1] in two micro-batches give
/// 1.75, not the mean of the means 2.5). The step's loss is sum_i n_i loss_i / N
/// (lrt::weightedMeanLoss in Data.h). A micro-batch without targets has n_i = 0: its loss
/// is 0 and it adds nothing.
#pragma once

#include "runtime/MemRef.h"

#include <cstdint>

namespace lrt {

/// The target id that contributes no loss and no gradient (PyTorch's `ignore_index`
/// default of nn.CrossEntropyLoss): padding, document boundaries of packed rows, and
/// prompt tokens in fine-tuning.
constexpr int32_t kIgnoreIndex = -100;

/// Indices into the `hyper` vector passed to `grad_step` and `apply_step` (fp32[kNumHyper]).
enum Hyper : int {
  kHyperLr = 0,          ///< learning rate of this step (after the schedule)
  kHyperBeta1 = 1,       ///< AdamW beta1
  kHyperBeta2 = 2,       ///< AdamW beta2
  kHyperEps = 3,         ///< AdamW epsilon
  kHyperWeightDecay = 4, ///< decoupled weight decay (applied to params with `decay`)
  kHyperGradClip = 5,    ///< clip the global L2 norm of the gradient to this; <= 0: no clip
  kHyperStep = 6,        ///< 1-based step number t, for bias correction 1 - beta^t
  kHyperGradScale = 7,   ///< grad_step: factor on this micro-batch's gradient (n_i / N)
  /// grad_step: index of this micro-batch within the optimizer step over all ranks
  /// (rank * accumulate + i, 0-based). With kHyperStep it keys the dropout masks
  /// (llmp.dropout), so a step's masks are the same on every run and after a resume.
  kHyperMicroBatch = 8,
  kNumHyper = 9,
};

/// Indices into the `metrics` output vector (fp32[kNumMetrics]).
enum Metric : int {
  kMetricLoss = 0,     ///< grad/eval_step: mean loss over the batch's target tokens (unscaled)
  kMetricGradNorm = 1, ///< apply_step: global L2 norm of the gradient before clipping
  kMetricTokens = 2,   ///< grad_step: number of target tokens (targets != kIgnoreIndex)
  kNumMetrics = 4,
};

/// grad_step: forward and backward of one micro-batch, accumulating into `grads`.
///   params, grads   : fp32[numParams]; params are read only
///   tokens, targets : i32[batch, seqLen]; targets == kIgnoreIndex contribute nothing
///   hyper           : fp32[kNumHyper]; kHyperGradScale is read, and kHyperStep and
///                     kHyperMicroBatch when the model has dropout (llmp.dropout)
///   metrics         : fp32[kNumMetrics]; kMetricLoss and kMetricTokens are written
/// After the call grads = grads_before + scale * d(loss)/d(params) where loss is the
/// micro-batch's mean loss (0 with finite, zero gradients when every target is ignored).
/// The scale seeds the backward pass, so scaling costs no pass over the parameters.
using GradStepFn = void (*)(MemRef<float, 1> *params, MemRef<float, 1> *grads,
                            MemRef<int32_t, 2> *tokens, MemRef<int32_t, 2> *targets,
                            MemRef<float, 1> *hyper, MemRef<float, 1> *metrics);

/// grad_step of a packing stage (StagePlan::packing): the same symbol with one more input
/// after `targets`, `segments` i32[batch, seqLen] (the document index of each token in its
/// row; attention is block-diagonal causal and RoPE positions restart per document).
/// Targets across a document boundary are kIgnoreIndex (lrt::packDocuments).
using PackedGradStepFn = void (*)(MemRef<float, 1> *params, MemRef<float, 1> *grads,
                                  MemRef<int32_t, 2> *tokens, MemRef<int32_t, 2> *targets,
                                  MemRef<int32_t, 2> *segments, MemRef<float, 1> *hyper,
                                  MemRef<float, 1> *metrics);

/// apply_step: global gradient norm, clipping and the AdamW update, in place.
///   params, grads, m, v : fp32[numParams]; grads is read only
///   hyper               : fp32[kNumHyper]; all but kHyperGradScale are read
///   metrics             : fp32[kNumMetrics]; kMetricGradNorm is written
/// norm = ||grads||_2; g = grads * (clip > 0 ? min(1, clip / (norm + 1e-6)) : 1); then
/// params/m/v get one AdamW step (Loshchilov & Hutter 2019, "Decoupled Weight Decay
/// Regularization", Algorithm 2, with bias-corrected moments; decay only on `decay` params).
using ApplyStepFn = void (*)(MemRef<float, 1> *params, MemRef<float, 1> *grads,
                             MemRef<float, 1> *m, MemRef<float, 1> *v, MemRef<float, 1> *hyper,
                             MemRef<float, 1> *metrics);

/// eval_step: forward and loss only; writes metrics[kMetricLoss].
using EvalStepFn = void (*)(MemRef<float, 1> *params, MemRef<int32_t, 2> *tokens,
                            MemRef<int32_t, 2> *targets, MemRef<float, 1> *metrics);

/// eval_step of a packing stage: `segments` i32[batch, seqLen] after `targets`.
using PackedEvalStepFn = void (*)(MemRef<float, 1> *params, MemRef<int32_t, 2> *tokens,
                                  MemRef<int32_t, 2> *targets, MemRef<int32_t, 2> *segments,
                                  MemRef<float, 1> *metrics);

/// logits_step: forward of one sequence of the model's full context.
///   tokens : i32[1, context]  (positions past the prompt may hold any valid id: attention
///            is causal, so they do not change earlier logits)
///   logits : fp32[1, context, vocab] (written)
using LogitsStepFn = void (*)(MemRef<float, 1> *params, MemRef<int32_t, 2> *tokens,
                              MemRef<float, 3> *logits);

/// Every frozen parameter starts at a multiple of kFrozenAlignment bytes of the frozen
/// buffer, which is itself a multiple of it long (the layout of llmp-apply-lora and
/// llmp-quantize-base; lang/Plan counts the same).
constexpr int64_t kFrozenAlignment = 64;

/// `bytes` rounded up to a multiple of kFrozenAlignment.
constexpr int64_t alignFrozen(int64_t bytes) {
  return (bytes + kFrozenAlignment - 1) / kFrozenAlignment * kFrozenAlignment;
}

/// Stages with a frozen buffer (StagePlan::frozenBytes > 0: the frozen base of a LoRA or
/// QLoRA stage, see ParamInfo::frozen in Plan.h) take it right after the trainable buffers:
///   frozen : u8[frozenBytes], read only; frozen parameter p is the bytes
///            [p.byteOffset, p.byteOffset + p.byteSize), fp32 (Storage::F32) or an NF4 blob
/// The trainable buffers (params, grads, m, v) then hold only the trainable parameters
/// (the adapters), numParams elements. apply_step is unchanged. In a packing stage
/// `segments` follows `targets` as above.
using FrozenGradStepFn = void (*)(MemRef<float, 1> *params, MemRef<float, 1> *grads,
                                  MemRef<uint8_t, 1> *frozen, MemRef<int32_t, 2> *tokens,
                                  MemRef<int32_t, 2> *targets, MemRef<float, 1> *hyper,
                                  MemRef<float, 1> *metrics);
using FrozenPackedGradStepFn = void (*)(MemRef<float, 1> *params, MemRef<float, 1> *grads,
                                        MemRef<uint8_t, 1> *frozen, MemRef<int32_t, 2> *tokens,
                                        MemRef<int32_t, 2> *targets,
                                        MemRef<int32_t, 2> *segments, MemRef<float, 1> *hyper,
                                        MemRef<float, 1> *metrics);
using FrozenEvalStepFn = void (*)(MemRef<float, 1> *params, MemRef<uint8_t, 1> *frozen,
                                  MemRef<int32_t, 2> *tokens, MemRef<int32_t, 2> *targets,
                                  MemRef<float, 1> *metrics);
using FrozenPackedEvalStepFn = void (*)(MemRef<float, 1> *params, MemRef<uint8_t, 1> *frozen,
                                        MemRef<int32_t, 2> *tokens,
                                        MemRef<int32_t, 2> *targets,
                                        MemRef<int32_t, 2> *segments,
                                        MemRef<float, 1> *metrics);
using FrozenLogitsStepFn = void (*)(MemRef<float, 1> *params, MemRef<uint8_t, 1> *frozen,
                                    MemRef<int32_t, 2> *tokens, MemRef<float, 3> *logits);
using FrozenPackedLogitsStepFn = void (*)(MemRef<float, 1> *params, MemRef<uint8_t, 1> *frozen,
                                          MemRef<int32_t, 2> *tokens,
                                          MemRef<int32_t, 2> *segments,
                                          MemRef<float, 3> *logits);

/// The compiled entry points of one stage. In a packing stage gradStep and evalStep hold
/// the PackedGradStepFn / PackedEvalStepFn entry points, and in a stage with a frozen
/// buffer the Frozen* ones (cast them before calling).
struct StepFunctions {
  GradStepFn gradStep = nullptr;
  ApplyStepFn applyStep = nullptr;
  EvalStepFn evalStep = nullptr;
  LogitsStepFn logitsStep = nullptr;
};

} // namespace lrt
