// SPDX-License-Identifier: Apache-2.0
/// Resident memory of the process (Linux /proc), for the measured side of the memory plan:
/// `llmpc run` compares the peak resident set during training with the plan's bytes
/// (weights, frozen base, gradients, AdamW moments, the step heap's computed peak).
///
/// Units are bytes throughout. VmRSS / VmHWM come from /proc/self/status (kB there);
/// ru_maxrss from getrusage(RUSAGE_SELF) (kB on Linux). The high-water mark VmHWM is reset
/// to the current RSS by writing "5" to /proc/self/clear_refs (Linux >= 4.0,
/// Documentation/admin-guide/mm/soft-dirty.rst). Linux keeps one high-water mark per
/// address space and derives ru_maxrss from it (kernel/sys.c getrusage), so the reset
/// lowers ru_maxrss too, for getrusage and for a parent's wait4 (`/usr/bin/time`'s
/// "Maximum resident set size"): after a reset they see only the peak since it.
/// resetResidentPeak therefore folds the VmHWM it ends into a record of this process, and
/// processResidentPeak() gives the peak over the whole life of the process.
#pragma once

#include "runtime/Status.h"

#include <cstdint>
#include <string>

namespace lrt {

/// One reading of /proc/self/status.
struct ResidentMemory {
  int64_t rssBytes = 0; ///< VmRSS: resident now
  int64_t hwmBytes = 0; ///< VmHWM: peak resident since start or the last resetResidentPeak
};

/// Reads VmRSS and VmHWM. Errors: IoError where /proc/self/status is missing or has no such
/// lines (not Linux).
Expected<ResidentMemory> readResidentMemory();

/// Resets VmHWM to the current VmRSS, after adding the VmHWM it ends to the record that
/// processResidentPeak() reads. Thread-safe. Errors: IoError where /proc/self/status
/// cannot be read or /proc/self/clear_refs cannot be written (VmHWM is then unchanged).
Status resetResidentPeak();

/// The peak resident set over the whole life of the process (loading, compiling, every
/// stage of a pipeline), resets by resetResidentPeak included: the largest of the VmHWM
/// values those resets ended, VmHWM now and ru_maxrss. 0 where none can be read.
int64_t processResidentPeak();

/// Hands freed heap memory back to the system: the blocks the step heap caches
/// (lrt_alloc_release_cached, kernels/cpu/Alloc.h) and glibc's free pages (malloc_trim(0),
/// which also returns free pages inside the heap, e.g. what the JIT compile freed).
void releaseFreeMemory();

/// The measured side of a training run's memory, in bytes.
struct MemoryReading {
  int64_t afterSetupBytes = 0; ///< VmRSS once weights, state and data are loaded (trimmed)
  int64_t trainingPeakBytes = 0; ///< VmHWM over the training steps (reset after setup)
  int64_t processPeakBytes = 0;  ///< processResidentPeak() at the end
  /// lrt_alloc_stats().peakBytes: live step temporaries over the training steps and the
  /// evaluations before the last step (the peak restarts after setup, so it is this
  /// stage's; samples excluded)
  int64_t stepHeapPeakBytes = 0;
  int64_t stepHeapCachedBytes = 0; ///< lrt_alloc_stats().cachedBytes at the end
};

/// `memory.json` text: the plan's byte figures `plan` (a JSON object text, written as is)
/// next to `measured`.
std::string memoryJson(const std::string &plan, const MemoryReading &measured);

} // namespace lrt
