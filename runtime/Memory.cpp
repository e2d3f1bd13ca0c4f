// SPDX-License-Identifier: Apache-2.0
#include "runtime/Memory.h"

#include "kernels/cpu/Alloc.h"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <malloc.h>
#include <mutex>
#include <sstream>
#include <sys/resource.h>

namespace lrt {

Expected<ResidentMemory> readResidentMemory() {
  std::ifstream in("/proc/self/status");
  if (!in)
    return Status::ioError("cannot read /proc/self/status");
  ResidentMemory m;
  bool rss = false, hwm = false;
  std::string line;
  while (std::getline(in, line)) {
    long long kb = 0;
    if (std::sscanf(line.c_str(), "VmRSS: %lld kB", &kb) == 1)
      m.rssBytes = kb * 1024, rss = true;
    else if (std::sscanf(line.c_str(), "VmHWM: %lld kB", &kb) == 1)
      m.hwmBytes = kb * 1024, hwm = true;
  }
  if (!rss || !hwm)
    return Status::ioError("/proc/self/status has no VmRSS/VmHWM lines");
  return m;
}

namespace {
/// The largest VmHWM that a resetResidentPeak ended (0: none yet), and the lock that makes
/// reading VmHWM, recording it and resetting one step.
std::mutex peakMutex;
int64_t peakBeforeResets = 0;
} // namespace

Status resetResidentPeak() {
  std::lock_guard<std::mutex> lock(peakMutex);
  auto now = readResidentMemory();
  if (!now)
    return now.status().withContext("resetting VmHWM");
  std::ofstream out("/proc/self/clear_refs");
  if (!out || !(out << "5") || !(out.flush()))
    return Status::ioError("cannot write /proc/self/clear_refs (resetting VmHWM)");
  peakBeforeResets = std::max(peakBeforeResets, now->hwmBytes);
  return Status::ok();
}

int64_t processResidentPeak() {
  std::lock_guard<std::mutex> lock(peakMutex);
  int64_t peak = peakBeforeResets;
  if (auto now = readResidentMemory())
    peak = std::max(peak, now->hwmBytes);
  struct rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) == 0)
    peak = std::max(peak, int64_t(usage.ru_maxrss) * 1024);
  return peak;
}

void releaseFreeMemory() {
  lrt_alloc_release_cached();
  malloc_trim(0);
}

std::string memoryJson(const std::string &plan, const MemoryReading &m) {
  return fmt::format("{{\n  \"plan\": {},\n  \"measured\": {{\"after_setup_rss\": {}, "
                     "\"training_peak_rss\": {}, \"process_peak_rss\": {}, "
                     "\"step_heap_peak\": {}, \"step_heap_cached\": {}}}\n}}\n",
                     plan.empty() ? "null" : plan, m.afterSetupBytes, m.trainingPeakBytes,
                     m.processPeakBytes, m.stepHeapPeakBytes, m.stepHeapCachedBytes);
}

} // namespace lrt
