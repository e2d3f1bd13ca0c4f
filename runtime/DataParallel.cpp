// SPDX-License-Identifier: Apache-2.0
/// Sharding of a step's rows across ranks and agreement checks between ranks.
#include "runtime/DataParallel.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace lrt {

void nextShard(TrainBatches &train, int rank, int ranks, int64_t microBatches,
               int32_t *tokens, int32_t *targets, int32_t *segments) {
  const int64_t rows = train.batch() * train.seqLen();
  for (int64_t j = 0; j < int64_t(ranks) * microBatches; ++j) {
    if (j / microBatches == rank) {
      int64_t i = j % microBatches;
      train.next(tokens + i * rows, targets + i * rows, segments ? segments + i * rows : nullptr);
    } else {
      // Another rank's micro-batch: skip its windows without copying them.
      for (int64_t b = 0; b < train.batch(); ++b)
        train.nextWindow();
    }
  }
}

Status agreeOnStatus(Collective &world, const Status &local) {
  if (world.size() == 1)
    return local;
  int64_t failed[2] = {local.isOk() ? 0 : 1, local.isOk() || world.rank() != 0 ? 0 : 1};
  if (Status st = world.allreduceSum(failed, 2); !st)
    return local.isOk() ? st : local;
  if (!local.isOk() || failed[0] == 0)
    return local;
  return Status::internal(fmt::format("stopped: {} of {} ranks failed{}", failed[0], world.size(),
                                      failed[1] ? " (rank 0 prints the error)" : ""));
}

Expected<bool> anyRank(Collective &world, bool local) {
  int64_t n = local ? 1 : 0;
  if (world.size() > 1)
    if (Status st = world.allreduceSum(&n, 1); !st)
      return st;
  return n > 0;
}

Status checkIdentical(Collective &world, const float *data, int64_t n, const std::string &what) {
  if (world.size() == 1)
    return Status::ok();
  constexpr int64_t kChunk = int64_t(1) << 20;
  std::vector<float> ref(size_t(std::min(n, kChunk)));
  Status local = Status::ok();
  for (int64_t done = 0; done < n; done += kChunk) {
    const int64_t len = std::min(kChunk, n - done);
    std::memcpy(ref.data(), data + done, size_t(len) * sizeof(float));
    if (Status st = world.broadcast(ref.data(), len * int64_t(sizeof(float)), 0); !st)
      return st;
    if (!local.isOk() || std::memcmp(ref.data(), data + done, size_t(len) * sizeof(float)) == 0)
      continue;
    for (int64_t i = 0; i < len; ++i)
      if (std::memcmp(&ref[size_t(i)], data + done + i, sizeof(float)) != 0) {
        local = Status::internal(fmt::format(
            "{} differ between ranks: first at element {} (rank 0: {}, rank {}: {})", what,
            done + i, ref[size_t(i)], world.rank(), data[done + i]));
        break;
      }
  }
  return agreeOnStatus(world, local);
}

} // namespace lrt
