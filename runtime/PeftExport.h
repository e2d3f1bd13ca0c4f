// SPDX-License-Identifier: Apache-2.0
/// Export of a LoRA stage of the stdlib `llama` family: the adapter as a PEFT folder
/// (`adapter_config.json` + `adapter_model.safetensors`, as `peft`'s
/// `PeftModel.save_pretrained` writes them for a `LlamaForCausalLM`, so that
/// `PeftModel.from_pretrained(base, folder)` loads it onto the base model), and the model with
/// the adapter merged into the base as a Hugging Face folder (runtime/HfExport.h).
/// llmp's adapter tensors `<target>.lora_A` [rank, in] and `<target>.lora_B` [out, rank]
/// already have PEFT's layout, so the export renames them: `layers.0.wq.lora_A` ->
/// `base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`. See docs/runtime.md
/// ("LoRA adapters: merge and PEFT export").
#pragma once

#include "runtime/HfExport.h"
#include "runtime/Safetensors.h"
#include "runtime/Status.h"

#include <cstdint>
#include <string>
#include <vector>

namespace lrt {

/// The adapter's hyper-parameters (the stage's `adapter: lora(...)`).
struct LoraExportSpec {
  int64_t rank = 0;
  double alpha = 0;     ///< lora_alpha
  bool rslora = false;  ///< scale alpha / sqrt(rank) instead of alpha / rank
  double dropout = 0;   ///< lora_dropout (training only; recorded in the config)
  /// `base_model_name_or_path` of adapter_config.json; empty writes null (as PEFT does for
  /// a base model built in memory). `PeftModel.from_pretrained(base, dir)` ignores it.
  std::string baseModel;
};

/// The Hugging Face module an llmp linear parameter lives in: `layers.N.wq` ->
/// `model.layers.N.self_attn.q_proj`, ... `layers.N.w_down` -> `model.layers.N.mlp.down_proj`.
/// Errors: InvalidArgument for a parameter that is not a linear layer of the llama family
/// (embeddings and norms cannot carry a LoRA adapter in PEFT's `Linear` layers).
Expected<std::string> hfModuleOf(const std::string &target);

/// PEFT's tensors for llmp adapter tensors (F32, copied, in the order given): `<target>.lora_A`
/// -> `base_model.model.<module>.lora_A.weight`, likewise lora_B. Other tensors are skipped.
/// Errors: InvalidArgument for a target that hfModuleOf rejects or an unpaired A/B.
Expected<std::vector<Tensor>> toPeftTensors(const std::vector<Tensor> &adapters);

/// `adapter_config.json` as peft 0.21 writes it (every field of its LoraConfig, keys
/// sorted, 2-space indent) for adapters on `targets` (llmp names) of a llama model with
/// `layers` blocks. `target_modules` lists a projection's short name (`q_proj`) when every
/// layer adapts it, else the full module names of the adapted layers, sorted.
/// Errors: InvalidArgument for an empty or unknown target, or rank <= 0.
Expected<std::string> peftAdapterConfigJson(const LoraExportSpec &spec,
                                            const std::vector<std::string> &targets,
                                            int64_t layers);

/// The non-adapter tensors of `tensors` (the base weights a checkpoint may hold besides
/// its adapters), and the adapter tensors (`*.lora_A`, `*.lora_B`).
void splitAdapterTensors(const std::vector<Tensor> &tensors, std::vector<Tensor> &base,
                         std::vector<Tensor> &adapters);

/// Writes `outDir` (created): adapter_config.json and adapter_model.safetensors (metadata
/// format=pt) for the adapters in `<runDir>/checkpoint/model.safetensors`, a stage's run
/// directory. Errors: NotFound for a missing checkpoint; InvalidArgument when it holds no
/// adapter, an adapter's shape does not match `config` and `spec.rank`, or as above.
Status exportPeftAdapter(const LoraExportSpec &spec, const LlamaConfig &config,
                         const std::string &runDir, const std::string &outDir);

/// Writes `outDir` as exportHuggingFace does, with the adapters of
/// `<runDir>/checkpoint/model.safetensors` merged into the base weights (mergeAdapters in
/// runtime/Lora.h, scale from `spec`). The base weights are the checkpoint's own
/// non-adapter tensors when it holds the whole model, else those of
/// `<baseRunDir>/checkpoint/model.safetensors` (the `from:` stage's run directory); the
/// tokenizer is the run's, else the base run's. Errors: NotFound, InvalidArgument (no
/// adapter, shapes, an incomplete base), and exportHuggingFace's errors.
Status exportMergedHuggingFace(const LoraExportSpec &spec, const LlamaConfig &config,
                               const std::string &runDir, const std::string &baseRunDir,
                               const std::string &outDir);

} // namespace lrt
