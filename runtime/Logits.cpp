// SPDX-License-Identifier: Apache-2.0
/// Checkpoint -> parameter buffer, and prompt logits through a compiled logits_step.
#include "runtime/Logits.h"

#include "runtime/Safetensors.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace lrt {

Expected<std::vector<float>> readParams(const StagePlan &plan, const std::string &path) {
  auto file = readSafetensors(path);
  if (!file)
    return file.status();
  std::vector<float> params(plan.numParams);
  for (const ParamInfo &p : plan.params) {
    auto t = file->findF32(p.name, p.shape, path);
    if (!t)
      return t.status();
    if (p.offset < 0 || p.offset + p.numel > plan.numParams)
      return Status::invalid(fmt::format("parameter '{}' lies outside the buffer", p.name));
    std::memcpy(params.data() + p.offset, (*t)->bytes.data(), p.numel * sizeof(float));
  }
  return params;
}

Expected<std::vector<float>> promptLogits(const LogitsModel &model,
                                          const std::vector<int32_t> &ids) {
  if (!model.logitsStep || !model.params || model.context < 1 || model.vocab < 1)
    return Status::invalid("logits: no logits_step function, parameters or shapes");
  const int64_t n = int64_t(ids.size()), C = model.context, V = model.vocab;
  if (n < 1 || n > C)
    return Status::invalid(
        fmt::format("logits: the prompt has {} tokens; it must have 1 to {} (the context)", n, C));
  std::vector<int32_t> window(C, 0);
  std::copy(ids.begin(), ids.end(), window.begin());
  std::vector<float> all(C * V);
  auto params = viewOf(model.params, {model.numParams});
  auto tokens = viewOf(window.data(), {int64_t(1), C});
  auto out = viewOf(all.data(), {int64_t(1), C, V});
  model.logitsStep(&params, &tokens, &out);
  all.resize(n * V);
  return all;
}

} // namespace lrt
