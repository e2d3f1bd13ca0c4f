// SPDX-License-Identifier: Apache-2.0
/// StagePlan to and from JSON (nlohmann-json, insertion-ordered). One field list,
/// planFields(), drives both directions: a new StagePlan field is one line there.
#include "runtime/PlanJson.h"

#include <nlohmann/json.hpp>

#include <stdexcept>

namespace lrt {
namespace {

using json = nlohmann::ordered_json;

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
  for (InitKind k : {InitKind::Normal, InitKind::Ones, InitKind::Zeros, InitKind::KaimingUniform})
    if (s == initName(k))
      return k;
  throw std::invalid_argument("unknown init '" + s + "'");
}

Storage storageKind(const std::string &s) {
  if (s == "f32")
    return Storage::F32;
  if (s == "nf4")
    return Storage::NF4;
  if (s == "bf16")
    return Storage::BF16;
  throw std::invalid_argument("unknown storage '" + s + "'");
}

/// Writes each visited field into a JSON object.
struct Writer {
  json &j;
  template <class T> void operator()(const char *key, const T &v) { j[key] = v; }
  void operator()(const char *key, const InitKind &v) { j[key] = initName(v); }
  void operator()(const char *key, const Storage &v) { j[key] = storageName(v); }
  /// An empty string as null (e.g. the pipeline of a stage in no pipeline).
  void orNull(const char *key, const std::string &v) {
    j[key] = v.empty() ? json(nullptr) : json(v);
  }
  void pair(const char *key, const double &a, const double &b) { j[key] = json::array({a, b}); }
  template <class F> void object(const char *key, F &&fields) {
    json sub = json::object();
    Writer w{sub};
    fields(w);
    j[key] = std::move(sub);
  }
  template <class T, class F> void array(const char *key, const std::vector<T> &items, F &&fields) {
    json list = json::array();
    for (const T &item : items) {
      json sub = json::object();
      Writer w{sub};
      fields(w, item);
      list.push_back(std::move(sub));
    }
    j[key] = std::move(list);
  }
};

/// Reads each visited field from a JSON object (json::at: a missing key throws, naming it).
struct Reader {
  const json &j;
  template <class T> void operator()(const char *key, T &v) { j.at(key).get_to(v); }
  void operator()(const char *key, InitKind &v) { v = initKind(j.at(key).get<std::string>()); }
  void operator()(const char *key, Storage &v) { v = storageKind(j.at(key).get<std::string>()); }
  void orNull(const char *key, std::string &v) {
    const json &x = j.at(key);
    v = x.is_null() ? std::string() : x.get<std::string>();
  }
  void pair(const char *key, double &a, double &b) {
    const json &x = j.at(key);
    if (!x.is_array() || x.size() != 2)
      throw std::invalid_argument(std::string("'") + key + "' is not a list of 2 numbers");
    x[0].get_to(a), x[1].get_to(b);
  }
  template <class F> void object(const char *key, F &&fields) {
    Reader r{j.at(key)};
    fields(r);
  }
  template <class T, class F> void array(const char *key, std::vector<T> &items, F &&fields) {
    items.clear();
    for (const json &x : j.at(key)) {
      Reader r{x};
      fields(r, items.emplace_back());
    }
  }
};

/// The fields of one ParamInfo (`P` ParamInfo or const ParamInfo) in plan.json's order.
template <class Io, class P> void paramFields(Io &o, P &param) {
  o("name", param.name);
  o("shape", param.shape);
  o("offset", param.offset);
  o("numel", param.numel);
  o("init", param.init);
  o("mean", param.mean);
  o("std", param.std);
  o("decay", param.decay);
  o("frozen", param.frozen);
  o("byte_offset", param.byteOffset);
  o("storage", param.storage);
  o("byte_size", param.byteSize);
}

/// The fields of a StagePlan in plan.json's order; `P` is StagePlan or const StagePlan.
template <class Io, class P> void planFields(Io &io, P &p) {
  io.orNull("pipeline", p.pipeline);
  io("stage", p.stage);
  io("kind", p.kind);
  io("model", p.model);
  io("precision", p.precision);
  io("num_params", p.numParams);
  io("frozen_bytes", p.frozenBytes);
  io.object("lora", [&](auto &o) {
    o("enabled", p.lora.enabled);
    o("rank", p.lora.rank);
    o("alpha", p.lora.alpha);
    o("scale", p.lora.scale);
    o("rslora", p.lora.rslora);
    o("dropout", p.lora.dropout);
    o("targets", p.lora.targets);
  });
  io.object("nf4", [&](auto &o) {
    o("enabled", p.nf4.enabled);
    o("block", p.nf4.block);
    o("double_quant", p.nf4.doubleQuant);
  });
  io("vocab", p.vocab);
  io("context", p.context);
  io("dim", p.dim);
  io("layers", p.layers);
  io("batch", p.batch);
  io("seq_len", p.seqLen);
  io("accumulate", p.accumulate);
  io("ranks", p.ranks);
  io("steps", p.steps);
  io("eval_every", p.evalEvery);
  io("eval_batches", p.evalBatches);
  io("warmup", p.warmup);
  io("lr", p.lr);
  io("min_lr", p.minLr);
  io.pair("betas", p.beta1, p.beta2);
  io("eps", p.eps);
  io("weight_decay", p.weightDecay);
  io("grad_clip", p.gradClip);
  io("seed", p.seed);
  io("packing", p.packing);
  io.object("data", [&](auto &o) {
    o("name", p.data.name);
    o("path", p.data.path);
    o("format", p.data.format);
    o("split", p.data.split);
    o("keys", p.data.keys);
    o("train_on_all", p.data.trainOnAll);
    o("correct_only", p.data.correctOnly);
  });
  io.object("tokenizer", [&](auto &o) {
    o("name", p.tokenizer.name);
    o("kind", p.tokenizer.kind);
    o("vocab", p.tokenizer.vocabSize);
    o("path", p.tokenizer.path);
  });
  io.array("params", p.params, paramFields<Io, decltype(p.params[0])>);
}

} // namespace

std::string writeStagePlanJson(const StagePlan &plan) {
  json j = json::object();
  Writer w{j};
  planFields(w, plan);
  return j.dump(2) + "\n";
}

Expected<StagePlan> readStagePlanJson(std::string_view text) {
  try {
    json j = json::parse(text);
    StagePlan plan;
    Reader r{j};
    planFields(r, plan);
    return plan;
  } catch (const std::exception &e) {
    return Status::invalid(std::string("malformed plan: ") + e.what());
  }
}

std::string writeParamsJson(const std::vector<ParamInfo> &params) {
  json j = json::object();
  Writer w{j};
  w.array("params", params, paramFields<Writer, const ParamInfo>);
  return j["params"].dump();
}

Expected<std::vector<ParamInfo>> readParamsJson(std::string_view text) {
  try {
    json j = json::object({{"params", json::parse(text)}});
    std::vector<ParamInfo> params;
    Reader r{j};
    r.array("params", params, paramFields<Reader, ParamInfo>);
    return params;
  } catch (const std::exception &e) {
    return Status::invalid(std::string("malformed parameter list: ") + e.what());
  }
}

} // namespace lrt
