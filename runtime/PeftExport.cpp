// SPDX-License-Identifier: Apache-2.0
/// PEFT adapter folders and merged Hugging Face folders for LoRA stages of the llama family.
#include "runtime/PeftExport.h"

#include "runtime/FileUtil.h"
#include "runtime/Lora.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <map>
#include <set>

namespace lrt {
namespace {

/// std::map keeps the keys sorted, as peft's `json.dumps(..., sort_keys=True)` does.
using json = nlohmann::json;

constexpr const char *kPeftPrefix = "base_model.model.";
constexpr const char *kWeightSuffix = ".weight";

bool endsWith(const std::string &s, const std::string &suffix) {
  return s.size() > suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool isAdapterName(const std::string &name) {
  return endsWith(name, ".lora_A") || endsWith(name, ".lora_B");
}

/// A number as PEFT writes it: an int when it is integral (lora_alpha=16), else a float.
json number(double x) {
  if (std::isfinite(x) && x == std::floor(x) && std::fabs(x) < 1e15)
    return int64_t(x);
  return x;
}

Expected<SafetensorsFile> readCheckpoint(const std::string &runDir) {
  std::string path = runDir + "/checkpoint/model.safetensors";
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    return Status::error(StatusCode::NotFound,
                         fmt::format("'{}' does not exist: no checkpoint in the run directory "
                                     "'{}'", path, runDir));
  auto file = readSafetensors(path);
  if (!file)
    return file.status();
  return file;
}

/// The adapters of the checkpoint in `runDir`, checked against `config` and `spec.rank`.
Expected<std::vector<Tensor>> readAdapters(const LoraExportSpec &spec, const LlamaConfig &config,
                                           const std::string &runDir,
                                           std::vector<Tensor> *baseOut = nullptr) {
  auto file = readCheckpoint(runDir);
  if (!file)
    return file.status();
  std::vector<Tensor> base, adapters;
  splitAdapterTensors(file->tensors, base, adapters);
  std::string path = runDir + "/checkpoint/model.safetensors";
  if (adapters.empty())
    return Status::invalid(fmt::format("'{}' holds no LoRA adapter (no '<param>.lora_A' "
                                       "tensors); export it with --format hf", path));
  auto targets = loraTargetsOf(adapters);
  if (!targets)
    return targets.status().withContext(path);
  // The shapes a llama model of `config` gives each adapted weight ([in, out]).
  const int64_t kv = (config.kvHeads > 0 ? config.kvHeads : config.heads);
  const int64_t kvDim = config.heads > 0 ? config.dim / config.heads * kv : 0;
  std::map<std::string, std::pair<int64_t, int64_t>> linear = {
      {"wq", {config.dim, config.dim}},       {"wk", {config.dim, kvDim}},
      {"wv", {config.dim, kvDim}},            {"wo", {config.dim, config.dim}},
      {"w_gate", {config.dim, config.hidden}}, {"w_up", {config.dim, config.hidden}},
      {"w_down", {config.hidden, config.dim}}};
  std::map<std::string, const Tensor *> byName;
  for (const Tensor &t : adapters)
    byName[t.name] = &t;
  for (const std::string &target : *targets) {
    if (auto module = hfModuleOf(target); !module)
      return module.status().withContext(path);
    std::string suffix = target.substr(target.rfind('.') + 1);
    auto [in, out] = linear.at(suffix);
    const Tensor &a = *byName.at(loraAName(target)), &b = *byName.at(loraBName(target));
    std::vector<int64_t> wantA{spec.rank, in}, wantB{out, spec.rank};
    if (a.shape != wantA || b.shape != wantB || a.dtype != DType::F32 || b.dtype != DType::F32)
      return Status::invalid(fmt::format(
          "{}: adapter of '{}' must be F32 lora_A [{}, {}] and lora_B [{}, {}] (rank {}); got "
          "{} [{}] and {} [{}]",
          path, target, spec.rank, in, out, spec.rank, spec.rank, dtypeName(a.dtype),
          fmt::join(a.shape, ", "), dtypeName(b.dtype), fmt::join(b.shape, ", ")));
  }
  if (baseOut)
    *baseOut = std::move(base);
  return adapters;
}

} // namespace

Expected<std::string> hfModuleOf(const std::string &target) {
  auto hf = hfNameOf(target);
  if (!hf)
    return hf.status();
  if (!hf->transposed)
    return Status::invalid(fmt::format("parameter '{}' is not a linear layer; LoRA adapters "
                                       "export only on wq, wk, wv, wo, w_gate, w_up, w_down",
                                       target));
  return hf->name.substr(0, hf->name.size() - std::string(kWeightSuffix).size());
}

void splitAdapterTensors(const std::vector<Tensor> &tensors, std::vector<Tensor> &base,
                         std::vector<Tensor> &adapters) {
  for (const Tensor &t : tensors)
    (isAdapterName(t.name) ? adapters : base).push_back(t);
}

Expected<std::vector<Tensor>> toPeftTensors(const std::vector<Tensor> &adapters) {
  auto targets = loraTargetsOf(adapters);
  if (!targets)
    return targets.status();
  std::vector<Tensor> out;
  for (const Tensor &t : adapters) {
    if (!isAdapterName(t.name))
      continue;
    std::string target = t.name.substr(0, t.name.size() - 7); // ".lora_A" / ".lora_B"
    auto module = hfModuleOf(target);
    if (!module)
      return module.status();
    Tensor p = t;
    p.name = kPeftPrefix + *module + t.name.substr(target.size()) + kWeightSuffix;
    out.push_back(std::move(p));
  }
  return out;
}

Expected<std::string> peftAdapterConfigJson(const LoraExportSpec &spec,
                                            const std::vector<std::string> &targets,
                                            int64_t layers) {
  if (spec.rank <= 0)
    return Status::invalid(fmt::format("LoRA rank must be positive, got {}", spec.rank));
  if (targets.empty())
    return Status::invalid("the adapter has no target");
  // Projection ("self_attn.q_proj") -> layers that adapt it, and the full module names.
  std::map<std::string, std::set<int64_t>> layersOf;
  std::map<std::string, std::vector<std::string>> modulesOf;
  for (const std::string &target : targets) {
    auto module = hfModuleOf(target);
    if (!module)
      return module.status();
    // "model.layers.N.<proj>"
    size_t start = std::string("model.layers.").size();
    size_t dot = module->find('.', start);
    int64_t layer = std::stoll(module->substr(start, dot - start));
    std::string proj = module->substr(dot + 1);
    layersOf[proj].insert(layer);
    modulesOf[proj].push_back(*module);
  }
  std::set<std::string> targetModules;
  for (const auto &[proj, adapted] : layersOf) {
    if (int64_t(adapted.size()) == layers && *adapted.begin() == 0 && *adapted.rbegin() == layers - 1)
      targetModules.insert(proj.substr(proj.rfind('.') + 1)); // "q_proj": every layer's
    else
      targetModules.insert(modulesOf[proj].begin(), modulesOf[proj].end());
  }
  // Every field peft 0.21's LoraConfig saves, with the defaults it writes for a plain LoRA.
  json j = json::object();
  j["alora_invocation_tokens"] = nullptr;
  j["alpha_pattern"] = json::object();
  j["arrow_config"] = nullptr;
  j["auto_mapping"] = nullptr;
  j["base_model_name_or_path"] = spec.baseModel.empty() ? json(nullptr) : json(spec.baseModel);
  j["bias"] = "none";
  j["corda_config"] = nullptr;
  j["ensure_weight_tying"] = false;
  j["eva_config"] = nullptr;
  j["exclude_modules"] = nullptr;
  j["fan_in_fan_out"] = false; // PEFT's lora_A/lora_B layout for nn.Linear
  j["inference_mode"] = true;
  j["init_lora_weights"] = true;
  j["kasa_config"] = nullptr;
  j["layer_replication"] = nullptr;
  j["layers_pattern"] = nullptr;
  j["layers_to_transform"] = nullptr;
  j["loftq_config"] = json::object();
  j["lora_alpha"] = number(spec.alpha);
  j["lora_bias"] = false;
  j["lora_dropout"] = number(spec.dropout);
  j["lora_ga_config"] = nullptr;
  j["megatron_config"] = nullptr;
  j["megatron_core"] = "megatron.core";
  j["modules_to_save"] = nullptr;
  j["monteclora_config"] = nullptr;
  j["peft_type"] = "LORA";
  j["peft_version"] = "0.21.2"; // the peft release whose format this mirrors
  j["qalora_group_size"] = 16;
  j["r"] = spec.rank;
  j["rank_pattern"] = json::object();
  j["revision"] = nullptr;
  j["target_modules"] = json(std::vector<std::string>(targetModules.begin(), targetModules.end()));
  j["target_parameters"] = nullptr;
  j["task_type"] = "CAUSAL_LM";
  j["trainable_token_indices"] = nullptr;
  j["use_bdlora"] = nullptr;
  j["use_dora"] = false;
  j["use_qalora"] = false;
  j["use_rslora"] = spec.rslora;
  j["velora_config"] = nullptr;
  return j.dump(2);
}

Status exportPeftAdapter(const LoraExportSpec &spec, const LlamaConfig &config,
                         const std::string &runDir, const std::string &outDir) {
  auto adapters = readAdapters(spec, config, runDir);
  if (!adapters)
    return adapters.status();
  auto targets = loraTargetsOf(*adapters);
  auto peft = toPeftTensors(*adapters);
  if (!peft)
    return peft.status();
  auto configJson = peftAdapterConfigJson(spec, *targets, config.layers);
  if (!configJson)
    return configJson.status();
  std::vector<TensorRef> refs;
  for (const Tensor &t : *peft)
    refs.push_back({t.name, t.dtype, t.shape, t.bytes.data()});
  if (Status st = makeDirs(outDir); !st)
    return st;
  if (Status st = writeFileAtomic(outDir + "/adapter_config.json", *configJson); !st)
    return st;
  return writeSafetensors(outDir + "/adapter_model.safetensors", refs, {{"format", "pt"}});
}

Status exportMergedHuggingFace(const LoraExportSpec &spec, const LlamaConfig &config,
                               const std::string &runDir, const std::string &baseRunDir,
                               const std::string &outDir) {
  std::vector<Tensor> base;
  auto adapters = readAdapters(spec, config, runDir, &base);
  if (!adapters)
    return adapters.status();
  std::string source = runDir + "/checkpoint/model.safetensors";
  // A checkpoint that holds the frozen base as well is complete; else the base is the
  // `from:` stage's model.
  const size_t numParams = llamaParamNames(config.layers).size();
  if (base.size() < numParams) {
    auto file = readCheckpoint(baseRunDir);
    if (!file)
      return file.status().withContext("the base model of the LoRA stage");
    source = baseRunDir + "/checkpoint/model.safetensors";
    std::vector<Tensor> more, ignored;
    splitAdapterTensors(file->tensors, more, ignored);
    base = std::move(more);
  }
  auto scale = loraScale(spec.alpha, spec.rank, spec.rslora);
  if (!scale)
    return scale.status();
  if (Status st = mergeAdapters(base, *adapters, *scale); !st)
    return st.withContext(source);
  std::error_code ec;
  std::string tokPath = runTokenizerPath(runDir);
  if (!std::filesystem::exists(tokPath, ec))
    tokPath = runTokenizerPath(baseRunDir);
  return writeHuggingFaceFolder(config, base, tokPath, outDir, source);
}

} // namespace lrt
