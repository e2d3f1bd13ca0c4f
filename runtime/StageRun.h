// SPDX-License-Identifier: Apache-2.0
/// Running one compiled stage: what `llmpc run` (the JIT) and the trainer binaries of
/// `llmpc build` (runtime/aot/TrainerMain.cpp) both call, so that both paths train a stage
/// alike: the training loop of its kind (runPretrain or runSft) and, for a LoRA stage of a
/// llama model, the PEFT folder written after it.
#pragma once

#include "runtime/HfExport.h"
#include "runtime/PeftExport.h"
#include "runtime/Plan.h"
#include "runtime/SftTrainer.h"
#include "runtime/Status.h"
#include "runtime/StepABI.h"
#include "runtime/Trainer.h"

#include <optional>
#include <string>

namespace lrt {

/// What a stage needs besides its plan, step functions and options; the compiler
/// computes it (llmpc compileStage / runBuild).
struct StageExtras {
  /// An `sft` stage: its starting weights, tokenizer and sampler (SftTrainer.h); unused
  /// for a `pretrain` stage.
  SftSource sft;
  /// A LoRA stage of a stdlib `llama` model: its adapter settings, written with `llama`
  /// as `<run>/adapter` (a PEFT folder) after training. Absent for other stages.
  std::optional<LoraExportSpec> peft;
  LlamaConfig llama;
};

/// Trains `plan`'s stage: runSft(plan, fns, opts, extras.sft) for an `sft` stage, else
/// runPretrain(plan, fns, opts). Errors: theirs (Cancelled when stopped by opts.stop).
Status trainStage(const StagePlan &plan, const StepFunctions &fns, const TrainOptions &opts,
                  const StageExtras &extras);

/// After a successful trainStage, on rank 0: for a stage with extras.peft, writes its
/// trained adapter to `<runDir>/adapter` (exportPeftAdapter: adapter_config.json,
/// adapter_model.safetensors) and prints one `adapter: ...` line to stdout; nothing for
/// other stages. Errors: exportPeftAdapter's, prefixed "writing the PEFT adapter: ".
Status writeStageAdapter(const StageExtras &extras, const std::string &runDir);

} // namespace lrt
