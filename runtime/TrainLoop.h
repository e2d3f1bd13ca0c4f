// SPDX-License-Identifier: Apache-2.0
/// The training loop that every trained stage kind shares (runtime/Trainer.h for
/// `pretrain`, runtime/SftTrainer.h for `sft`): the step protocol of StepABI.h over
/// micro-batches and ranks, the learning-rate schedule, evaluation, metrics.jsonl,
/// checkpoints with exact resume, and the final model. A stage kind supplies its data, its
/// initial weights and what it writes besides the model (StageHooks); the compiled entry
/// points are called in one place (StepCalls).
#pragma once

#include "runtime/Data.h"
#include "runtime/Plan.h"
#include "runtime/Status.h"
#include "runtime/StepABI.h"
#include "runtime/Trainer.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace lrt {

/// The compiled step functions of a stage, called with the buffers the loop owns. Picks
/// the signature the plan implies (StagePlan::packing: `segments` after the targets;
/// StagePlan::frozenBytes > 0: the frozen buffer after the trainable ones, see setFrozen),
/// so every call of a compiled step goes through here.
class StepCalls {
public:
  StepCalls(const StagePlan &plan, const StepFunctions &fns) : plan_(plan), fns_(fns) {}

  /// grad_step on one micro-batch: tokens, targets, segments i32[rows, seqLen] (segments
  /// read only in a packing stage; may be null otherwise); params, grads fp32[numParams];
  /// hyper fp32[kNumHyper]; metrics fp32[kNumMetrics].
  void grad(float *params, float *grads, int32_t *tokens, int32_t *targets, int32_t *segments,
            int64_t rows, float *hyper, float *metrics) const;
  /// eval_step on one batch of `rows` rows (as grad, without gradients).
  void eval(float *params, int32_t *tokens, int32_t *targets, int32_t *segments, int64_t rows,
            float *metrics) const;
  /// apply_step: params, grads, m, v fp32[numParams].
  void apply(float *params, float *grads, float *m, float *v, float *hyper, float *metrics) const;

  /// logits_step with the signature LogitsModel (Generate.h) calls: in a packing stage the
  /// compiled function takes `segments` after the tokens, and this returns a function that
  /// passes one document (segments 0) to it. Valid while this StepCalls lives, on the
  /// thread that called logitsStep() last (generation is single-threaded).
  LogitsStepFn logitsStep() const;

  const StepFunctions &functions() const { return fns_; }

  /// The frozen buffer u8[plan.frozenBytes] (LoRA/QLoRA base) that every step but apply
  /// takes when plan.frozenBytes > 0; read only by the steps, it must outlive the calls.
  void setFrozen(uint8_t *frozen) { frozen_ = frozen; }

private:
  const StagePlan &plan_;
  StepFunctions fns_;
  uint8_t *frozen_ = nullptr;
};

/// The data of a stage, ready for the loop.
struct PreparedData {
  std::optional<TrainBatches> train; ///< micro-batches of plan.batch x plan.seqLen
  EvalBatches eval;                  ///< with ranks x plan.batch rows per batch
  /// For the report and TrainResult: characters and tokens of the corpus, tokens of the
  /// training and validation parts, seconds spent training a tokenizer.
  int64_t corpusChars = 0, corpusTokens = 0, trainTokens = 0, valTokens = 0;
  double tokenizerSeconds = 0;
};

/// What a stage kind brings to runTrainingLoop.
struct StageHooks {
  /// Reads and tokenises the data. `report`: print what was read to opts.out. `ranks`: the
  /// number of processes (evaluation batches hold every rank's rows). Called on rank 0
  /// first, then on the other ranks (so rank 0 may write caches they read).
  std::function<Expected<PreparedData>(bool report, int64_t ranks)> prepare;
  /// The parameters before the first step (fp32[plan.numParams]).
  std::function<Status(std::vector<float> &params)> initialParams;
  /// The frozen buffer (u8[plan.frozenBytes], Plan.h ParamInfo::frozen) of a stage with a
  /// frozen base (LoRA); required when plan.frozenBytes > 0.
  std::function<Status(std::vector<uint8_t> &frozen)> initialFrozen;
  /// Rank 0, once the data is ready and before step 1 of a fresh run (optional): e.g.
  /// samples of the model before training. Text returned is printed.
  std::function<Expected<std::string>(std::vector<float> &params)> beforeTraining;
  /// Rank 0, after the final model is written (optional): files beside it (the
  /// tokenizer) and samples; adds samples to `result`. Text returned is printed.
  std::function<Expected<std::string>(std::vector<float> &params, TrainResult &result)>
      afterTraining;
  /// Files of the run directory (relative) that an earlier run may have left and this one
  /// rewrites at its end; a fresh run removes them first (besides the model).
  std::vector<std::string> outputs;
};

/// Runs `plan` with the loop described for runPretrain (Trainer.h, steps 3 and 4, data
/// parallel, resume and errors), with the data, initial weights and extra outputs of
/// `hooks`. Writes `<run>/checkpoint/model.safetensors` at the end.
Status runTrainingLoop(const StagePlan &plan, const StepFunctions &fns, const TrainOptions &opts,
                       const StageHooks &hooks);

/// The run directory of `plan`: opts.runDir, else "runs/<pipeline>/<stage>".
std::string runDirOf(const StagePlan &plan, const TrainOptions &opts);

} // namespace lrt
