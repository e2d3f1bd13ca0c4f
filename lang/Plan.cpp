// SPDX-License-Identifier: Apache-2.0
/// The plan formulas (docs/language.md, "The plan"). With P parameters, L layers, model
/// width D, MLP width H, vocabulary V, heads h, B sequences of T tokens per step:
///   activations = 4 B' T (L (10 D + 4 H + h T) + 2 D + 2 V) bytes, B' = 2B for pair data
///   train FLOPs = (4 P + 2 P_trainable + 12 L T D) B' T K, K = `accumulate` micro-batches
/// and the reference, reward-model and rollout terms listed below.
#include "lang/Plan.h"

#include "kernels/cpu/Quant.h"
#include "runtime/StepABI.h"

namespace llmp::lang {

namespace {

/// Whether a LoRA stage stores its frozen linear weights in bf16 (`precision: bf16`
/// without an NF4 base; llmp-bf16-base).
bool bf16Base(const StageInfo &s) { return s.lora && !s.nf4 && s.precision == "bf16"; }

/// Bytes of one parameter tensor stored as `how` (fp32, nf4, bf16, int8, int4).
int64_t tensorBytes(const ConcreteParam &p, const StageInfo &s, bool quantized) {
  if (!quantized)
    return 4 * p.numel;
  if (bf16Base(s))
    return 2 * p.numel;
  if (s.nf4) // the blob the runtime stores in the frozen buffer (kernels/cpu/Quant.h)
    return lrt::quant::nf4Layout(p.numel, s.nf4Block, s.doubleQuant).byteSize;
  if (s.quantize == "int8")
    return p.numel + 4 * p.shape[1]; // one fp32 scale per output channel
  return p.numel / 2 + 4 * (p.numel / s.quantGroup); // int4: one fp32 scale per group
}

} // namespace

StagePlanFigures planStage(const StageInfo &s) {
  StagePlanFigures f;
  const ModelSpec &m = *s.model;
  f.stage = s.decl->name;
  f.kind = s.kind;
  f.model = m.decl->name;
  f.steps = s.steps;
  const int64_t L = m.get("layers", 0), D = m.get("dim", 0), V = m.get("vocab", 0);
  const int64_t H = m.get("hidden", 4 * D), heads = m.get("heads", 1);
  const int64_t kvWidth = m.args.count("kv_heads") ? D * m.get("kv_heads") / heads : D;
  const int64_t T = s.seqLen;
  // Adapters and heads.
  int64_t adapters = 0;
  for (const ConcreteParam *p : s.loraTargets)
    adapters += s.loraRank * (p->shape[0] + p->shape[1]);
  int64_t head = (s.kind == "reward_model" || s.kind == "ppo") ? D + 1 : 0;
  f.params = m.numParams + adapters + head;
  f.trainable = s.kind == "deploy" ? 0 : s.lora ? adapters + head : f.params;
  // Weights: fp32, except the quantized linear layers (NF4 base, a LoRA base in bf16 under
  // `precision: bf16`, deploy int8/int4). With LoRA the model's own weights are the frozen
  // base, one byte buffer in which every tensor starts at a multiple of 64 bytes (the
  // compiler's layout, llmp-apply-lora, llmp-quantize-base and llmp-bf16-base; the runtime
  // allocates exactly that).
  bool quantizes = s.nf4 || bf16Base(s) || s.quantize == "int8" || s.quantize == "int4";
  int64_t modelBytes = 0;
  for (const ConcreteParam &p : m.params) {
    int64_t bytes = tensorBytes(p, s, quantizes && p.shape.size() == 2 && p.decay);
    modelBytes += s.lora ? lrt::alignFrozen(bytes) : bytes;
  }
  if (s.lora) {
    f.frozenParams = m.numParams;
    f.frozenBytes += modelBytes;
  } else {
    f.weightBytes += modelBytes;
  }
  f.weightBytes += 4 * (adapters + head);
  // Frozen copies: the reference policy and PPO's reward model.
  if (s.reference && (s.kind == "dpo" || s.kl > 0))
    f.frozenBytes += 4 * s.reference->model->numParams;
  if (s.rewardModel)
    f.frozenBytes += 4 * (s.rewardModel->model->numParams + D + 1);
  f.gradientBytes = 4 * f.trainable;
  f.optimizerBytes = 8 * f.trainable;
  if (s.trains()) {
    int64_t seqs = (s.kind == "reward_model" || s.kind == "dpo") ? 2 * s.batch : s.batch;
    int64_t tokens = seqs * T;
    f.activationBytes = 4 * tokens * (L * (10 * D + 4 * H + heads * T) + 2 * D + 2 * V);
    double P = double(f.params), attn = 4.0 * L * T * D;
    f.flopsPerStep = (4 * P + 2 * double(f.trainable) + 3 * attn) * tokens;
    if (s.reference && (s.kind == "dpo" || s.kl > 0))
      f.flopsPerStep += (2.0 * s.reference->model->numParams + attn) * tokens;
    if (s.rewardModel)
      f.flopsPerStep += (2.0 * (s.rewardModel->model->numParams + D + 1) + attn) * tokens;
    if (s.kind == "ppo" || s.kind == "grpo") {
      f.flopsPerStep += double(s.batch) * s.maxNew * (2 * P + attn);
      f.kvCacheBytes = 2 * L * kvWidth * T * s.batch * 4;
    }
    // `accumulate: K` runs K micro-batches of B sequences per step; activations are those
    // of one micro-batch (its backward pass ends before the next one starts).
    f.flopsPerStep *= double(s.accumulate);
  } else {
    // deploy: one generated token at full context; KV cache for max_batch sequences.
    const int64_t C = m.get("context", T);
    f.flopsPerStep = 2.0 * f.params + 4.0 * L * C * D;
    f.kvCacheBytes = 2 * L * kvWidth * C * s.maxBatch * 4;
  }
  return f;
}

} // namespace llmp::lang
