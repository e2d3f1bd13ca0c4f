// SPDX-License-Identifier: Apache-2.0
/// The manifest of a standalone trainer binary (`llmpc build`): everything about its stage
/// that the compiler computed and the runtime needs (the whole lrt::StagePlan: parameter
/// layout and initialisers, shapes, hyperparameters, data and tokenizer, as
/// runtime/PlanJson.h writes it; for an `sft` stage its lrt::StageExtras: starting weights,
/// GGUF tokenizer, the sampler's KV cache shape and merged-parameter layout, the PEFT
/// adapter settings), as JSON. llmpc writes it into the binary as the C string
/// `llmp_aot_manifest`; the trainer's main (runtime/aot/TrainerMain.cpp) reads it back.
/// The JSON is an internal format between one llmpc and the binary it links: its fields
/// follow StagePlan's and StageExtras', and `version` changes when they do.
///
/// Keys: version, source, run_dir, steps, step_heap_peak_bytes, plan (plan.json's object),
/// sft (null, or {weights, tokenizer, sampler: null or {cache {layers, batch, kv_heads,
/// context, head_dim, prefill_len}, merged_num_params, merged_params [plan.json's params
/// objects]}}), peft (null, or {rank, alpha, rslora, dropout, base_model, llama {vocab,
/// dim, layers, heads, hidden, context, kv_heads, eps, theta}}).
#pragma once

#include "runtime/Plan.h"
#include "runtime/StageRun.h"
#include "runtime/Status.h"

#include <cstdint>
#include <string>
#include <string_view>

namespace lrt {

/// What a trainer binary runs: one stage, as `llmpc run FILE --stage NAME` would.
struct AotManifest {
  StagePlan plan;          ///< plan.data.path and plan.tokenizer.path absolute (llmpc resolves them)
  std::string source;      ///< the .llmp file the binary was built from (for messages)
  std::string runDir;      ///< default run directory, relative to the working directory
  int64_t steps = 0;       ///< `llmpc build --steps N` (> 0 overrides plan.steps), else 0
  /// The largest step heap peak of the compiled step functions in bytes
  /// (TrainOptions::stepHeapPeakBytes).
  int64_t stepHeapPeakBytes = 0;
  /// An `sft` stage's extras (plan.kind == "sft"; unused otherwise): extras.sft's paths are
  /// absolute and read at run time (the GGUF or safetensors file is not embedded); its
  /// prefillStep / decodeStep are null here, and the binary points them at its linked
  /// prefill_step / decode_step when `sampler` is set.
  StageExtras extras;
  /// Whether prefill_step and decode_step are linked (the sampler of an sft stage: its KV
  /// cache shape in extras.sft.cache, a LoRA stage's merged layout in extras.sft.mergedParams).
  bool sampler = false;
};

/// The manifest as JSON (every field; numbers in the shortest form that reads back to the
/// same bits, so the plan round-trips exactly).
std::string writeAotManifest(const AotManifest &manifest);

/// Reads a manifest written by writeAotManifest. Errors: InvalidArgument for malformed
/// JSON, a missing or mistyped field (named), or another `version`.
Expected<AotManifest> readAotManifest(std::string_view json);

} // namespace lrt
