// SPDX-License-Identifier: Apache-2.0
/// LoRA scale, reference forward, merge and unmerge on llmp's [in, out] weight layout.
#include "runtime/Lora.h"

#include "runtime/Frozen.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

namespace lrt {
namespace {

Status checkDims(const LoraDims &d) {
  if (d.in <= 0 || d.out <= 0 || d.rank <= 0)
    return Status::invalid(fmt::format("LoRA dims must be positive (in={}, out={}, rank={})",
                                       d.in, d.out, d.rank));
  return Status::ok();
}

/// w += sign * scale * (B A)^T and bias += sign * scale * biasB; the delta of each element
/// is summed in double and rounded to fp32 before it is added, so merge and unmerge add
/// and subtract the same fp32 number.
Status addDelta(float *w, float *bias, const float *a, const float *b, const float *biasB,
                const LoraDims &d, double scale, double sign) {
  if (Status st = checkDims(d); !st)
    return st;
  if (!w || !a || !b)
    return Status::invalid("LoRA merge needs the weight, lora_A and lora_B");
  if (biasB && !bias)
    return Status::invalid("LoRA merge: the adapter has a bias (lora_B.bias) but the base "
                           "layer has none to merge it into");
  // w is [in, out], a is [rank, in], b is [out, rank].
  for (int64_t i = 0; i < d.in; ++i)
    for (int64_t o = 0; o < d.out; ++o) {
      double acc = 0.0;
      for (int64_t r = 0; r < d.rank; ++r)
        acc += double(a[r * d.in + i]) * double(b[o * d.rank + r]);
      float delta = float(scale * acc);
      w[i * d.out + o] = sign > 0 ? w[i * d.out + o] + delta : w[i * d.out + o] - delta;
    }
  if (biasB)
    for (int64_t o = 0; o < d.out; ++o) {
      float delta = float(scale * double(biasB[o]));
      bias[o] = sign > 0 ? bias[o] + delta : bias[o] - delta;
    }
  return Status::ok();
}

bool endsWith(const std::string &s, const std::string &suffix) {
  return s.size() > suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string shapeString(const std::vector<int64_t> &shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

} // namespace

Expected<double> loraScale(double alpha, int64_t rank, bool rslora) {
  if (rank <= 0)
    return Status::invalid(fmt::format("LoRA rank must be positive, got {}", rank));
  if (!std::isfinite(alpha))
    return Status::invalid(fmt::format("LoRA alpha must be finite, got {}", alpha));
  return rslora ? alpha / std::sqrt(double(rank)) : alpha / double(rank);
}

Status loraLinear(const float *x, int64_t n, const float *w, const float *bias, const float *a,
                  const float *b, const float *biasB, const LoraDims &d, double scale,
                  float *y) {
  if (Status st = checkDims(d); !st)
    return st;
  if (n < 0 || !x || !w || !a || !b || !y)
    return Status::invalid(fmt::format("LoRA forward: bad arguments (n={})", n));
  std::vector<double> xa(d.rank);
  for (int64_t row = 0; row < n; ++row) {
    const float *xr = x + row * d.in;
    // xa[r] = sum_i x[i] * a[r, i]: the rank-dimensional bottleneck.
    for (int64_t r = 0; r < d.rank; ++r) {
      double acc = 0.0;
      for (int64_t i = 0; i < d.in; ++i)
        acc += double(xr[i]) * double(a[r * d.in + i]);
      xa[r] = acc;
    }
    for (int64_t o = 0; o < d.out; ++o) {
      double base = bias ? double(bias[o]) : 0.0;
      for (int64_t i = 0; i < d.in; ++i)
        base += double(xr[i]) * double(w[i * d.out + o]);
      double lora = biasB ? double(biasB[o]) : 0.0;
      for (int64_t r = 0; r < d.rank; ++r)
        lora += xa[r] * double(b[o * d.rank + r]);
      y[row * d.out + o] = float(base + scale * lora);
    }
  }
  return Status::ok();
}

Status mergeLora(float *w, float *bias, const float *a, const float *b, const float *biasB,
                 const LoraDims &dims, double scale) {
  return addDelta(w, bias, a, b, biasB, dims, scale, +1.0);
}

Status unmergeLora(float *w, float *bias, const float *a, const float *b, const float *biasB,
                   const LoraDims &dims, double scale) {
  return addDelta(w, bias, a, b, biasB, dims, scale, -1.0);
}

std::string loraAName(const std::string &target) { return target + ".lora_A"; }
std::string loraBName(const std::string &target) { return target + ".lora_B"; }

Expected<std::vector<std::string>> loraTargetsOf(const std::vector<Tensor> &tensors) {
  static const std::string kA = ".lora_A", kB = ".lora_B";
  std::vector<std::string> targets;
  std::map<std::string, int> bs; // target -> 0 unmatched B, 1 matched
  for (const Tensor &t : tensors)
    if (endsWith(t.name, kB))
      bs[t.name.substr(0, t.name.size() - kB.size())] = 0;
  for (const Tensor &t : tensors) {
    if (!endsWith(t.name, kA))
      continue;
    std::string target = t.name.substr(0, t.name.size() - kA.size());
    auto it = bs.find(target);
    if (it == bs.end())
      return Status::invalid(fmt::format("adapter tensor '{}' has no '{}'", t.name,
                                         loraBName(target)));
    it->second = 1;
    targets.push_back(target);
  }
  for (const auto &[target, matched] : bs)
    if (!matched)
      return Status::invalid(fmt::format("adapter tensor '{}' has no '{}'", loraBName(target),
                                         loraAName(target)));
  return targets;
}

Status mergeAdapters(std::vector<Tensor> &base, const std::vector<Tensor> &adapters,
                     double scale, bool unmerge) {
  auto targets = loraTargetsOf(adapters);
  if (!targets)
    return targets.status();
  std::map<std::string, const Tensor *> byName;
  for (const Tensor &t : adapters)
    byName[t.name] = &t;
  std::map<std::string, Tensor *> baseByName;
  for (Tensor &t : base)
    baseByName[t.name] = &t;
  for (const std::string &target : *targets) {
    const Tensor &a = *byName.at(loraAName(target)), &b = *byName.at(loraBName(target));
    auto wIt = baseByName.find(target);
    if (wIt == baseByName.end())
      return Status::invalid(fmt::format("the adapter targets '{}', which the base model "
                                         "does not have", target));
    Tensor &w = *wIt->second;
    for (const Tensor *t : {static_cast<const Tensor *>(&w), &a, &b})
      if (t->dtype != DType::F32)
        return Status::invalid(fmt::format("tensor '{}' is {}; LoRA merging needs F32",
                                           t->name, dtypeName(t->dtype)));
    if (w.shape.size() != 2 || a.shape.size() != 2 || b.shape.size() != 2)
      return Status::invalid(fmt::format("LoRA target '{}' {}, '{}' {} and '{}' {} must all "
                                         "be matrices", w.name, shapeString(w.shape), a.name,
                                         shapeString(a.shape), b.name, shapeString(b.shape)));
    LoraDims d{w.shape[0], w.shape[1], a.shape[0]};
    if (a.shape[1] != d.in || b.shape[0] != d.out || b.shape[1] != d.rank)
      return Status::invalid(fmt::format(
          "adapter of '{}' does not fit: the weight is [in, out] = {}, so lora_A must be "
          "[rank, {}] and lora_B [{}, rank]; got {} and {}",
          target, shapeString(w.shape), d.in, d.out, shapeString(a.shape), shapeString(b.shape)));
    auto *wData = reinterpret_cast<float *>(w.bytes.data());
    auto *aData = reinterpret_cast<const float *>(a.bytes.data());
    auto *bData = reinterpret_cast<const float *>(b.bytes.data());
    Status st = unmerge ? unmergeLora(wData, nullptr, aData, bData, nullptr, d, scale)
                        : mergeLora(wData, nullptr, aData, bData, nullptr, d, scale);
    if (!st)
      return st.withContext(target);
  }
  return Status::ok();
}

namespace {

/// The parameters of `plan` by name.
std::map<std::string, const ParamInfo *> paramsByName(const StagePlan &plan) {
  std::map<std::string, const ParamInfo *> byName;
  for (const ParamInfo &p : plan.params)
    byName[p.name] = &p;
  return byName;
}

/// lora_A and lora_B of `target` in `byName`, checked trainable and of the shapes that fit
/// w [in, out].
Status findAdapter(const std::map<std::string, const ParamInfo *> &byName,
                   const std::string &target, const ParamInfo &w, const ParamInfo *&a,
                   const ParamInfo *&b) {
  auto ia = byName.find(loraAName(target)), ib = byName.find(loraBName(target));
  if (ia == byName.end() || ib == byName.end() || ia->second->frozen || ib->second->frozen)
    return Status::invalid(fmt::format("LoRA target '{}' has no trainable '{}' and '{}'",
                                       target, loraAName(target), loraBName(target)));
  a = ia->second, b = ib->second;
  if (w.shape.size() != 2 || a->shape.size() != 2 || b->shape.size() != 2 ||
      a->shape[1] != w.shape[0] || b->shape[0] != w.shape[1] || b->shape[1] != a->shape[0])
    return Status::invalid(fmt::format(
        "adapter of '{}' does not fit: the weight is [in, out] = {}, so lora_A must be "
        "[rank, in] and lora_B [out, rank]; got {} and {}",
        target, shapeString(w.shape), shapeString(a->shape), shapeString(b->shape)));
  return Status::ok();
}

/// What merging stage `plan` into `layout` reads: for each parameter of `layout`, the
/// stage's parameter of the same name; for each LoRA target, its matrix in `layout` and
/// its adapters in `plan`.
struct MergeSources {
  std::vector<std::pair<const ParamInfo *, const ParamInfo *>> params; ///< (layout, stage)
  struct Target {
    const std::string *name;
    const ParamInfo *w, *a, *b; ///< w in `layout`; lora_A, lora_B in `plan`
  };
  std::vector<Target> targets;
};

/// The one walk behind checkMergedLayout and mergedStageParams; its errors are
/// checkMergedLayout's.
Expected<MergeSources> mergeSources(const StagePlan &plan, const std::vector<ParamInfo> &layout,
                                    int64_t numParams) {
  auto byName = paramsByName(plan);
  MergeSources out;
  std::map<std::string, const ParamInfo *> merged;
  for (const ParamInfo &p : layout) {
    auto it = byName.find(p.name);
    if (it == byName.end() || it->second->numel != p.numel)
      return Status::invalid(fmt::format(
          "parameter '{}' ({} values) of the model without adapter is not a parameter of "
          "stage '{}' of the same size{}",
          p.name, p.numel, plan.stage,
          it == byName.end() ? std::string() : fmt::format(" (it has {})", it->second->numel)));
    if (p.offset < 0 || p.numel < 0 || p.offset + p.numel > numParams)
      return Status::invalid(fmt::format("parameter '{}' [{}, +{}) lies outside the {} "
                                         "parameters of the model without adapter",
                                         p.name, p.offset, p.numel, numParams));
    merged[p.name] = &p;
    out.params.emplace_back(&p, it->second);
  }
  for (const std::string &target : plan.lora.targets) {
    auto it = merged.find(target);
    if (it == merged.end())
      return Status::invalid(fmt::format("LoRA target '{}' of stage '{}' is not a parameter of "
                                         "the model without adapter",
                                         target, plan.stage));
    const ParamInfo *a = nullptr, *b = nullptr;
    if (Status st = findAdapter(byName, target, *it->second, a, b); !st)
      return st;
    out.targets.push_back({&target, it->second, a, b});
  }
  return out;
}

} // namespace

Status checkMergedLayout(const StagePlan &plan, const std::vector<ParamInfo> &layout,
                         int64_t numParams) {
  return mergeSources(plan, layout, numParams).status();
}

Expected<std::vector<float>> mergedStageParams(const StagePlan &plan, const float *params,
                                               const uint8_t *frozen,
                                               const std::vector<ParamInfo> &layout,
                                               int64_t numParams) {
  auto sources = mergeSources(plan, layout, numParams);
  if (!sources)
    return sources.status();
  if (!params || (plan.frozenBytes > 0 && !frozen))
    return Status::invalid("LoRA merge needs the stage's trainable parameters and frozen base");
  std::vector<float> out(size_t(std::max<int64_t>(numParams, 0)), 0.0f);
  for (auto [p, q] : sources->params) {
    if (q->frozen) {
      if (Status st = loadFrozenParam(*q, plan.nf4, frozen, plan.frozenBytes, out.data() + p->offset);
          !st)
        return st;
    } else {
      std::memcpy(out.data() + p->offset, params + q->offset, size_t(p->numel) * sizeof(float));
    }
  }
  for (const MergeSources::Target &t : sources->targets) {
    LoraDims d{t.w->shape[0], t.w->shape[1], t.a->shape[0]};
    if (Status st = mergeLora(out.data() + t.w->offset, nullptr, params + t.a->offset,
                              params + t.b->offset, nullptr, d, plan.lora.scale);
        !st)
      return st.withContext(*t.name);
  }
  return out;
}

} // namespace lrt
