// SPDX-License-Identifier: Apache-2.0
/// AotManifest to and from JSON (nlohmann-json).
#include "runtime/aot/Manifest.h"

#include <nlohmann/json.hpp>

namespace lrt {
namespace {

using json = nlohmann::json;

/// Bumped whenever a field of the manifest (or of StagePlan) changes.
constexpr int kVersion = 1;

const char *initName(InitKind k) {
  switch (k) {
  case InitKind::Normal: return "normal";
  case InitKind::Ones: return "ones";
  case InitKind::Zeros: return "zeros";
  case InitKind::KaimingUniform: return "kaiming_uniform";
  }
  return "normal";
}

InitKind initKind(const std::string &s) {
  if (s == "ones")
    return InitKind::Ones;
  if (s == "zeros")
    return InitKind::Zeros;
  if (s == "kaiming_uniform")
    return InitKind::KaimingUniform;
  if (s == "normal")
    return InitKind::Normal;
  throw std::invalid_argument("unknown init '" + s + "'");
}

json paramJson(const ParamInfo &p) {
  return {{"name", p.name},           {"shape", p.shape},
          {"offset", p.offset},       {"numel", p.numel},
          {"init", initName(p.init)}, {"mean", p.mean},
          {"std", p.std},             {"decay", p.decay},
          {"frozen", p.frozen},       {"byte_offset", p.byteOffset},
          {"storage", p.storage == Storage::NF4 ? "nf4" : "f32"},
          {"byte_size", p.byteSize}};
}

ParamInfo paramFrom(const json &j) {
  ParamInfo p;
  p.name = j.at("name").get<std::string>();
  p.shape = j.at("shape").get<std::vector<int64_t>>();
  p.offset = j.at("offset").get<int64_t>();
  p.numel = j.at("numel").get<int64_t>();
  p.init = initKind(j.at("init").get<std::string>());
  p.mean = j.at("mean").get<float>();
  p.std = j.at("std").get<float>();
  p.decay = j.at("decay").get<bool>();
  p.frozen = j.at("frozen").get<bool>();
  p.byteOffset = j.at("byte_offset").get<int64_t>();
  p.storage = j.at("storage").get<std::string>() == "nf4" ? Storage::NF4 : Storage::F32;
  p.byteSize = j.at("byte_size").get<int64_t>();
  return p;
}

json planJson(const StagePlan &p) {
  json params = json::array();
  for (const ParamInfo &param : p.params)
    params.push_back(paramJson(param));
  return {
      {"pipeline", p.pipeline},
      {"stage", p.stage},
      {"model", p.model},
      {"kind", p.kind},
      {"params", params},
      {"num_params", p.numParams},
      {"frozen_bytes", p.frozenBytes},
      {"lora",
       {{"enabled", p.lora.enabled},
        {"rank", p.lora.rank},
        {"alpha", p.lora.alpha},
        {"rslora", p.lora.rslora},
        {"scale", p.lora.scale},
        {"dropout", p.lora.dropout},
        {"targets", p.lora.targets}}},
      {"nf4", {{"enabled", p.nf4.enabled}, {"block", p.nf4.block}, {"double_quant", p.nf4.doubleQuant}}},
      {"vocab", p.vocab},
      {"context", p.context},
      {"dim", p.dim},
      {"layers", p.layers},
      {"batch", p.batch},
      {"seq_len", p.seqLen},
      {"accumulate", p.accumulate},
      {"ranks", p.ranks},
      {"steps", p.steps},
      {"eval_every", p.evalEvery},
      {"eval_batches", p.evalBatches},
      {"warmup", p.warmup},
      {"lr", p.lr},
      {"min_lr", p.minLr},
      {"beta1", p.beta1},
      {"beta2", p.beta2},
      {"eps", p.eps},
      {"weight_decay", p.weightDecay},
      {"grad_clip", p.gradClip},
      {"seed", p.seed},
      {"packing", p.packing},
      {"data",
       {{"name", p.data.name},
        {"path", p.data.path},
        {"format", p.data.format},
        {"split", p.data.split},
        {"keys", p.data.keys},
        {"train_on_all", p.data.trainOnAll},
        {"correct_only", p.data.correctOnly}}},
      {"tokenizer",
       {{"name", p.tokenizer.name},
        {"kind", p.tokenizer.kind},
        {"vocab_size", p.tokenizer.vocabSize},
        {"path", p.tokenizer.path}}},
  };
}

StagePlan planFrom(const json &j) {
  StagePlan p;
  p.pipeline = j.at("pipeline").get<std::string>();
  p.stage = j.at("stage").get<std::string>();
  p.model = j.at("model").get<std::string>();
  p.kind = j.at("kind").get<std::string>();
  for (const json &param : j.at("params"))
    p.params.push_back(paramFrom(param));
  p.numParams = j.at("num_params").get<int64_t>();
  p.frozenBytes = j.at("frozen_bytes").get<int64_t>();
  const json &lora = j.at("lora");
  p.lora.enabled = lora.at("enabled").get<bool>();
  p.lora.rank = lora.at("rank").get<int64_t>();
  p.lora.alpha = lora.at("alpha").get<double>();
  p.lora.rslora = lora.at("rslora").get<bool>();
  p.lora.scale = lora.at("scale").get<double>();
  p.lora.dropout = lora.at("dropout").get<double>();
  p.lora.targets = lora.at("targets").get<std::vector<std::string>>();
  const json &nf4 = j.at("nf4");
  p.nf4.enabled = nf4.at("enabled").get<bool>();
  p.nf4.block = nf4.at("block").get<int64_t>();
  p.nf4.doubleQuant = nf4.at("double_quant").get<bool>();
  p.vocab = j.at("vocab").get<int64_t>();
  p.context = j.at("context").get<int64_t>();
  p.dim = j.at("dim").get<int64_t>();
  p.layers = j.at("layers").get<int64_t>();
  p.batch = j.at("batch").get<int64_t>();
  p.seqLen = j.at("seq_len").get<int64_t>();
  p.accumulate = j.at("accumulate").get<int64_t>();
  p.ranks = j.at("ranks").get<int64_t>();
  p.steps = j.at("steps").get<int64_t>();
  p.evalEvery = j.at("eval_every").get<int64_t>();
  p.evalBatches = j.at("eval_batches").get<int64_t>();
  p.warmup = j.at("warmup").get<int64_t>();
  p.lr = j.at("lr").get<double>();
  p.minLr = j.at("min_lr").get<double>();
  p.beta1 = j.at("beta1").get<double>();
  p.beta2 = j.at("beta2").get<double>();
  p.eps = j.at("eps").get<double>();
  p.weightDecay = j.at("weight_decay").get<double>();
  p.gradClip = j.at("grad_clip").get<double>();
  p.seed = j.at("seed").get<uint64_t>();
  p.packing = j.at("packing").get<bool>();
  const json &data = j.at("data");
  p.data.name = data.at("name").get<std::string>();
  p.data.path = data.at("path").get<std::string>();
  p.data.format = data.at("format").get<std::string>();
  p.data.split = data.at("split").get<double>();
  p.data.keys = data.at("keys").get<std::map<std::string, std::string>>();
  p.data.trainOnAll = data.at("train_on_all").get<bool>();
  p.data.correctOnly = data.at("correct_only").get<bool>();
  const json &tok = j.at("tokenizer");
  p.tokenizer.name = tok.at("name").get<std::string>();
  p.tokenizer.kind = tok.at("kind").get<std::string>();
  p.tokenizer.vocabSize = tok.at("vocab_size").get<int64_t>();
  p.tokenizer.path = tok.at("path").get<std::string>();
  return p;
}

} // namespace

std::string writeAotManifest(const AotManifest &m) {
  json j = {{"version", kVersion},
            {"source", m.source},
            {"run_dir", m.runDir},
            {"steps", m.steps},
            {"plan_json", m.planJson},
            {"step_heap_peak_bytes", m.stepHeapPeakBytes},
            {"plan", planJson(m.plan)}};
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
    m.planJson = j.at("plan_json").get<std::string>();
    m.stepHeapPeakBytes = j.at("step_heap_peak_bytes").get<int64_t>();
    m.plan = planFrom(j.at("plan"));
    return m;
  } catch (const std::exception &e) {
    return Status::invalid(std::string("malformed trainer manifest: ") + e.what());
  }
}

} // namespace lrt
