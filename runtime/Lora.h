// SPDX-License-Identifier: Apache-2.0
/// LoRA adapters outside the compiled step: the scale, the adapted linear layer as a
/// reference forward, and merging an adapter into its base weight (and unmerging it), on
/// llmp's weight layout. A LoRA adapter on a linear layer y = x @ W + bias (llmp stores
/// W as [in, out]) adds scale * (x @ A^T @ B^T + bias_B), where A is [rank, in] and B is
/// [out, rank] (PEFT's lora_A.weight / lora_B.weight layout, so an adapter exports as a
/// copy) and bias_B [out] is PEFT's optional `lora_bias` (lora_B.bias). Hu et al., "LoRA:
/// Low-Rank Adaptation of Large Language Models" (arXiv:2106.09685), eq. 3: h = W0 x +
/// (alpha / r) B A x; rsLoRA (Kalajdzievski, arXiv:2312.03732) uses alpha / sqrt(r).
/// Merging gives W' = W + scale * (B A)^T and bias' = bias + scale * bias_B, as PEFT's
/// `LoraLayer.merge` (peft/tuners/lora/layer.py: get_delta_weight, lora_bias). See
/// docs/runtime.md ("LoRA adapters: merge and PEFT export").
#pragma once

#include "runtime/Plan.h"
#include "runtime/Safetensors.h"
#include "runtime/Status.h"

#include <cstdint>
#include <string>
#include <vector>

namespace lrt {

/// The LoRA scale: alpha / rank, or alpha / sqrt(rank) with rsLoRA (rank 16, alpha 16,
/// rslora gives 4.0). Errors: InvalidArgument for rank <= 0 or a non-finite alpha.
Expected<double> loraScale(double alpha, int64_t rank, bool rslora);

/// The shapes of one adapted linear layer (all row-major fp32).
struct LoraDims {
  int64_t in = 0, out = 0, rank = 0;
};

/// Reference forward of an adapted linear layer, without merging and without dropout:
/// y[n, out] = x[n, in] @ w[in, out] + bias[out] + scale * ((x @ a^T) @ b^T + biasB[out]),
/// with `a` [rank, in] and `b` [out, rank]; `bias` and `biasB` may be null (no bias).
/// Accumulates in double. Errors: InvalidArgument for non-positive dims or n < 0, or
/// null x, w, a, b or y.
Status loraLinear(const float *x, int64_t n, const float *w, const float *bias, const float *a,
                  const float *b, const float *biasB, const LoraDims &dims, double scale,
                  float *y);

/// Merges the adapter into the base weight in place: w[i, o] += scale * sum_r a[r, i] *
/// b[o, r] (w is [in, out], so this is W + scale * (B A)^T), and, when both `bias` and
/// `biasB` are given, bias[o] += scale * biasB[o]. The delta is computed in double and
/// rounded to fp32 once, then added, so unmergeLora subtracts the same fp32 delta: the round
/// trip restores each element within one fp32 rounding of the merged value, |w'' - w| <=
/// 2^-24 * (|w'| + |w''|) (each of the two additions rounds once, to nearest).
/// Errors: InvalidArgument for non-positive dims, null pointers, or `biasB` without `bias`.
Status mergeLora(float *w, float *bias, const float *a, const float *b, const float *biasB,
                 const LoraDims &dims, double scale);

/// The inverse of mergeLora: subtracts the same fp32 delta (same errors and bound).
Status unmergeLora(float *w, float *bias, const float *a, const float *b, const float *biasB,
                   const LoraDims &dims, double scale);

/// The llmp names of an adapter's tensors for the target parameter `target` (e.g.
/// "layers.0.wq"): `<target>.lora_A` [rank, in] and `<target>.lora_B` [out, rank].
std::string loraAName(const std::string &target);
std::string loraBName(const std::string &target);

/// The targets of the adapter tensors among `tensors`: every `<target>` with both
/// `<target>.lora_A` and `<target>.lora_B`, in the order of the lora_A tensors. Errors:
/// InvalidArgument naming an A without its B (or a B without its A).
Expected<std::vector<std::string>> loraTargetsOf(const std::vector<Tensor> &tensors);

/// Merges every adapter of `adapters` into the tensor of its target in `base` (llmp names
/// and layouts: the target W [in, out] F32, A [rank, in], B [out, rank]; tensors of `adapters`
/// that are not lora_A/lora_B are ignored). `unmerge` subtracts instead. Errors:
/// InvalidArgument naming a target missing from `base`, a non-F32 tensor, a rank that
/// differs between A and B or shapes that do not fit W.
Status mergeAdapters(std::vector<Tensor> &base, const std::vector<Tensor> &adapters,
                     double scale, bool unmerge = false);

/// Checks that the merged weights of LoRA stage `plan` fit the parameter layout `layout`
/// (fp32[numParams]) of its model compiled without the adapter (llmpc's sampler, the
/// `@prefill`/`@decode` of emitInference without `adapter:`): every parameter of `layout`
/// is a parameter of `plan` (frozen or trainable) with the same name and numel, lies inside
/// numParams, and every target of plan.lora is a matrix [in, out] of `layout` whose
/// `<target>.lora_A` [rank, in] and `<target>.lora_B` [out, rank] are trainable parameters of
/// `plan`. Errors: InvalidArgument naming the first parameter that does not fit.
Status checkMergedLayout(const StagePlan &plan, const std::vector<ParamInfo> &layout,
                         int64_t numParams);

/// The merged fp32 weights of LoRA or QLoRA stage `plan` in `layout` (see
/// checkMergedLayout): each parameter of `layout` from the frozen buffer
/// (frozen[plan.frozenBytes]: loadFrozenParam, an fp32 copy or NF4 dequantized exactly as
/// the compiled `llmp.matmul_nf4` reads it) or from the trainable `params`
/// (fp32[plan.numParams]), then each target W [in, out] += scale * (B A)^T with
/// scale = plan.lora.scale (mergeLora; Hu et al. 2021 eq. 3 in llmp's x @ W orientation).
/// The forward of the result equals the stage's unmerged forward x @ W + scale * (x @ A^T)
/// @ B^T up to fp32 rounding (the delta is rounded to fp32 once per element, then added).
/// Memory: the returned fp32[numParams] (4 bytes per parameter of the model); nothing else
/// beyond it. Errors: those of checkMergedLayout and loadFrozenParam; InvalidArgument for
/// null `params` or `frozen` (with plan.frozenBytes > 0).
Expected<std::vector<float>> mergedStageParams(const StagePlan &plan, const float *params,
                                               const uint8_t *frozen,
                                               const std::vector<ParamInfo> &layout,
                                               int64_t numParams);

} // namespace lrt
