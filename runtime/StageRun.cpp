// SPDX-License-Identifier: Apache-2.0
/// trainStage and writeStageAdapter (StageRun.h).
#include "runtime/StageRun.h"

#include <cstdio>

namespace lrt {

Status trainStage(const StagePlan &plan, const StepFunctions &fns, const TrainOptions &opts,
                  const StageExtras &extras) {
  if (plan.kind == "sft")
    return runSft(plan, fns, opts, extras.sft);
  return runPretrain(plan, fns, opts);
}

Status writeStageAdapter(const StageExtras &extras, const std::string &runDir) {
  if (!extras.peft)
    return Status::ok();
  // The trained adapter as `PeftModel.from_pretrained(base, <run>/adapter)` loads it.
  std::string dir = runDir + "/adapter";
  if (Status st = exportPeftAdapter(*extras.peft, extras.llama, runDir, dir); !st)
    return st.withContext("writing the PEFT adapter");
  std::printf("adapter: %s (PEFT: adapter_config.json, adapter_model.safetensors; base %s)\n",
              dir.c_str(), extras.peft->baseModel.c_str());
  std::fflush(stdout);
  return Status::ok();
}

} // namespace lrt
