// SPDX-License-Identifier: Apache-2.0
/// AotManifest to and from JSON (nlohmann-json); the plan is runtime/PlanJson.h's object.
#include "runtime/aot/Manifest.h"

#include "runtime/PlanJson.h"

#include <nlohmann/json.hpp>

namespace lrt {
namespace {

using json = nlohmann::ordered_json;

/// Bumped whenever a field of the manifest (or of StagePlan) changes.
constexpr int kVersion = 2;

} // namespace

std::string writeAotManifest(const AotManifest &m) {
  json j = {{"version", kVersion},
            {"source", m.source},
            {"run_dir", m.runDir},
            {"steps", m.steps},
            {"step_heap_peak_bytes", m.stepHeapPeakBytes},
            {"plan", json::parse(writeStagePlanJson(m.plan))}};
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
    return m;
  } catch (const std::exception &e) {
    return Status::invalid(std::string("malformed trainer manifest: ") + e.what());
  }
}

} // namespace lrt
