// SPDX-License-Identifier: Apache-2.0
/// AotManifest to and from JSON (nlohmann-json); the plan is runtime/PlanJson.h's object.
#include "runtime/aot/Manifest.h"

#include "runtime/PlanJson.h"

#include <nlohmann/json.hpp>

namespace lrt {
namespace {

using json = nlohmann::ordered_json;

/// Bumped whenever a field of the manifest (or of StagePlan) changes.
constexpr int kVersion = 3;

/// Visits the fields of a KV cache shape by key (`C`: KVCacheShape, const or not).
template <class C, class F> void cacheFields(C &c, F &&field) {
  field("layers", c.layers);
  field("batch", c.batch);
  field("kv_heads", c.kvHeads);
  field("context", c.context);
  field("head_dim", c.headDim);
  field("prefill_len", c.prefillLen);
}

/// Visits the fields of a llama config by key (`L`: LlamaConfig, const or not).
template <class L, class F> void llamaFields(L &c, F &&field) {
  field("vocab", c.vocab);
  field("dim", c.dim);
  field("layers", c.layers);
  field("heads", c.heads);
  field("hidden", c.hidden);
  field("context", c.context);
  field("kv_heads", c.kvHeads);
  field("eps", c.eps);
  field("theta", c.theta);
}

/// A JSON object of the fields `visit` passes (cacheFields, llamaFields).
template <class T, class V> json fieldsJson(const T &value, V visit) {
  json j = json::object();
  visit(value, [&](const char *key, const auto &v) { j[key] = v; });
  return j;
}

/// Reads fieldsJson's object into `value` (json::at: a missing key throws, naming it).
template <class T, class V> void readFields(const json &j, T &value, V visit) {
  visit(value, [&](const char *key, auto &v) { j.at(key).get_to(v); });
}

constexpr auto kCache = [](auto &c, auto &&f) { cacheFields(c, f); };
constexpr auto kLlama = [](auto &c, auto &&f) { llamaFields(c, f); };

json sftJson(const AotManifest &m) {
  if (m.plan.kind != "sft")
    return nullptr;
  const SftSource &s = m.extras.sft;
  json sampler = nullptr;
  if (m.sampler)
    sampler = {{"cache", fieldsJson(s.cache, kCache)},
               {"merged_num_params", s.mergedNumParams},
               {"merged_params", json::parse(writeParamsJson(s.mergedParams))}};
  return {{"weights", s.weightsPath}, {"tokenizer", s.tokenizerPath}, {"sampler", sampler}};
}

json peftJson(const StageExtras &e) {
  if (!e.peft)
    return nullptr;
  return {{"rank", e.peft->rank},
          {"alpha", e.peft->alpha},
          {"rslora", e.peft->rslora},
          {"dropout", e.peft->dropout},
          {"base_model", e.peft->baseModel},
          {"llama", fieldsJson(e.llama, kLlama)}};
}

/// Reads sftJson's object into `m` (throws, naming the field, if one is missing).
Status readSft(const json &j, AotManifest &m) {
  if (j.is_null())
    return Status::ok();
  SftSource &s = m.extras.sft;
  s.weightsPath = j.at("weights").get<std::string>();
  s.tokenizerPath = j.at("tokenizer").get<std::string>();
  const json &sampler = j.at("sampler");
  m.sampler = !sampler.is_null();
  if (!m.sampler)
    return Status::ok();
  readFields(sampler.at("cache"), s.cache, kCache);
  s.mergedNumParams = sampler.at("merged_num_params").get<int64_t>();
  auto params = readParamsJson(sampler.at("merged_params").dump());
  if (!params)
    return params.status().withContext("sft.sampler.merged_params");
  s.mergedParams = params.take();
  return Status::ok();
}

/// Reads peftJson's object into `e` (throws, naming the field, if one is missing).
void readPeft(const json &j, StageExtras &e) {
  if (j.is_null())
    return;
  LoraExportSpec spec;
  spec.rank = j.at("rank").get<int64_t>();
  spec.alpha = j.at("alpha").get<double>();
  spec.rslora = j.at("rslora").get<bool>();
  spec.dropout = j.at("dropout").get<double>();
  spec.baseModel = j.at("base_model").get<std::string>();
  e.peft = spec;
  readFields(j.at("llama"), e.llama, kLlama);
}

} // namespace

std::string writeAotManifest(const AotManifest &m) {
  json j = {{"version", kVersion},
            {"source", m.source},
            {"run_dir", m.runDir},
            {"steps", m.steps},
            {"step_heap_peak_bytes", m.stepHeapPeakBytes},
            {"plan", json::parse(writeStagePlanJson(m.plan))},
            {"sft", sftJson(m)},
            {"peft", peftJson(m.extras)}};
  return j.dump(1) + "\n";
}

Expected<AotManifest> readAotManifest(std::string_view text) {
  try {
    json j = json::parse(text);
    if (j.at("version").get<int>() != kVersion)
      return Status::invalid("trainer manifest version " +
                             std::to_string(j.at("version").get<int>()) + ", expected " +
                             std::to_string(kVersion));
    AotManifest m;
    m.source = j.at("source").get<std::string>();
    m.runDir = j.at("run_dir").get<std::string>();
    m.steps = j.at("steps").get<int64_t>();
    m.stepHeapPeakBytes = j.at("step_heap_peak_bytes").get<int64_t>();
    auto plan = readStagePlanJson(j.at("plan").dump());
    if (!plan)
      return Status::invalid("malformed trainer manifest: " + plan.status().message());
    m.plan = std::move(*plan);
    if (Status st = readSft(j.at("sft"), m); !st)
      return Status::invalid("malformed trainer manifest: " + st.message());
    readPeft(j.at("peft"), m.extras);
    return m;
  } catch (const std::exception &e) {
    return Status::invalid(std::string("malformed trainer manifest: ") + e.what());
  }
}

} // namespace lrt
