// SPDX-License-Identifier: Apache-2.0
/// Training checkpoints for exact resume: the parameters, the AdamW moments, the data order
/// and cursor (with the shuffle RNG), the step, and how far metrics.jsonl had got, written
/// atomically as `<dir>/step-<N>/` with a manifest that checksums every file, so a
/// truncated or corrupted checkpoint is detected and an older one used instead. See
/// docs/runtime.md ("Checkpoints and resume") for the layout.
#pragma once

#include "runtime/Data.h"
#include "runtime/Plan.h"
#include "runtime/Status.h"

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace lrt {

/// CRC-32 (IEEE 802.3 polynomial, the value of Python's `zlib.crc32`) of `size` bytes at
/// `data`, continuing from `crc` (0 to start).
uint32_t crc32(const void *data, size_t size, uint32_t crc = 0);

/// Writes `data` durably: to `path + ".tmp"`, fsync, rename over `path`, fsync of the
/// directory. On failure the temporary file is removed and `path` is left as it was.
/// Errors: IoError naming the file and the errno text.
Status writeFileDurable(const std::string &path, std::string_view data);

/// The state of a run after `step` completed steps: enough for runPretrain to continue
/// bit for bit as if it had not stopped.
struct TrainState {
  int64_t step = 0;                ///< steps completed
  int64_t steps = 0;               ///< the run's length (the lr schedule depends on it)
  std::vector<float> params, m, v; ///< flat fp32[plan.numParams]: weights, AdamW moments
  TrainBatches::State data;        ///< data order, cursor, epoch and shuffle RNG
  int64_t metricsBytes = 0;        ///< length of metrics.jsonl after this step's rows
  uint32_t metricsCrc = 0;         ///< crc32 of those bytes
  double elapsedSeconds = 0, trainSeconds = 0;  ///< wall time of the loop / of train steps
  double firstLoss = 0, lastLoss = 0, firstValLoss = 0, lastValLoss = 0;
};

/// `<dir>/step-<N>`, N zero-padded to 8 digits so names sort by step.
std::string checkpointPath(const std::string &dir, int64_t step);

/// Steps of the `step-<N>` folders in `dir`, ascending; empty if `dir` does not exist.
/// Temporary folders of unfinished writes (`.step-<N>.tmp`) are not listed.
std::vector<int64_t> listCheckpoints(const std::string &dir);

/// Writes `state` as `checkpointPath(dir, state.step)`:
///   model.safetensors      every parameter by name (F32, its shape), `metadata` as
///                          `__metadata__` (the same file as the final model checkpoint)
///   optimizer.safetensors  `m.<name>` and `v.<name>` for every parameter (F32)
///   data.safetensors       `order` (I64 [windows]); metadata rng, cursor, epoch
///   manifest.json          step, steps, plan identity, metrics offset, losses, timings,
///                          {bytes, crc32} of each file, and its own crc32 (written last)
/// All files go into `<dir>/.step-<N>.tmp/` and are fsynced; the folder is then renamed
/// to `step-<N>` (replacing one of that step) and `dir` fsynced, so a crash leaves either
/// the whole checkpoint or none. Then all but the newest `keep` checkpoints are deleted
/// (`keep` < 1 keeps all). Errors: InvalidArgument if a buffer's size is not
/// plan.numParams or a param lies outside it; IoError; the temporary folder is removed on
/// any error and existing checkpoints are untouched.
Status writeCheckpoint(const std::string &dir, const StagePlan &plan, const TrainState &state,
                       int64_t keep, const std::map<std::string, std::string> &metadata = {});

/// Reads and verifies one checkpoint folder. Errors: NotFound if it or a file is missing;
/// InvalidArgument naming the file and what is wrong: a size or crc32 differing from the
/// manifest (truncation, corruption), a manifest that does not parse or fails its own
/// crc32, a parameter missing or shaped differently from `plan`, a checkpoint of another
/// plan (pipeline, stage, seed, numParams, batch, seqLen).
Expected<TrainState> readCheckpoint(const std::string &path, const StagePlan &plan);

/// The newest checkpoint in `dir` that readCheckpoint accepts.
struct LoadedCheckpoint {
  TrainState state;
  std::string path;
  std::vector<std::string> rejected; ///< one message per newer checkpoint that failed
};
/// Tries the checkpoints newest first. Errors: NotFound if `dir` holds none;
/// InvalidArgument if none is valid (the message lists each one's problem).
Expected<LoadedCheckpoint> loadLatestCheckpoint(const std::string &dir, const StagePlan &plan);

/// Deletes all but the `keep` newest checkpoints of `dir` (all are kept if `keep` < 1),
/// and leftover temporary folders. Errors: IoError.
Status pruneCheckpoints(const std::string &dir, int64_t keep);

/// Deletes the checkpoints of `dir` with a step above `step`. Errors: IoError.
Status removeCheckpointsAfter(const std::string &dir, int64_t step);

} // namespace lrt
