// SPDX-License-Identifier: Apache-2.0
/// The manifest of a standalone trainer binary (`llmpc build`): everything about its stage
/// that the compiler computed and the runtime needs (the whole lrt::StagePlan: parameter
/// layout and initialisers, shapes, hyperparameters, data and tokenizer, as
/// runtime/PlanJson.h writes it), as JSON. llmpc
/// writes it into the binary as the C string `llmp_aot_manifest`; the trainer's main
/// (runtime/aot/TrainerMain.cpp) reads it back. The JSON is an internal format between
/// one llmpc and the binary it links: its fields follow StagePlan's, and `version`
/// changes when they do.
#pragma once

#include "runtime/Plan.h"
#include "runtime/Status.h"

#include <cstdint>
#include <string>
#include <string_view>

namespace lrt {

/// What a trainer binary runs: one stage, as `llmpc run FILE --stage NAME` would.
struct AotManifest {
  StagePlan plan;          ///< plan.data.path absolute (llmpc resolves it)
  std::string source;      ///< the .llmp file the binary was built from (for messages)
  std::string runDir;      ///< default run directory, relative to the working directory
  int64_t steps = 0;       ///< `llmpc build --steps N` (> 0 overrides plan.steps), else 0
  /// The largest step heap peak of the compiled step functions in bytes
  /// (TrainOptions::stepHeapPeakBytes).
  int64_t stepHeapPeakBytes = 0;
};

/// The manifest as JSON (every field; numbers in the shortest form that reads back to the
/// same bits, so the plan round-trips exactly).
std::string writeAotManifest(const AotManifest &manifest);

/// Reads a manifest written by writeAotManifest. Errors: InvalidArgument for malformed
/// JSON, a missing or mistyped field (named), or another `version`.
Expected<AotManifest> readAotManifest(std::string_view json);

} // namespace lrt
