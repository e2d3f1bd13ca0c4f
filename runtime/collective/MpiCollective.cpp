// SPDX-License-Identifier: Apache-2.0
/// The MPI implementation of the collective layer (Open MPI; MPICH works the same).
/// MPI_COMM_WORLD gets MPI_ERRORS_RETURN, so a failing call becomes a Status carrying
/// MPI_Error_string's text instead of MPI's default abort of the job.
#include "runtime/collective/Collective.h"

#include <fmt/format.h>
#include <mpi.h>

#include <algorithm>
#include <climits>

namespace lrt {

Expected<std::unique_ptr<Collective>> createMpiCollective(int launcherSize);

namespace {

/// "MPI_Allreduce failed (count 123): MPI_ERR_TRUNCATE: message truncated".
Status mpiError(const char *what, int code, const std::string &detail) {
  char text[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS)
    fmt::format_to_n(text, sizeof text - 1, "error code {}", code);
  return Status::internal(fmt::format("{} failed ({}): {}", what, detail, text));
}

/// MPI counts are int: larger buffers go in chunks of at most INT_MAX elements.
constexpr int64_t kMaxChunk = INT_MAX;

class MpiCollective final : public Collective {
public:
  MpiCollective(int rank, int size) : rank_(rank), size_(size) {}
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char *name() const override { return "mpi"; }

  Status allreduceSum(float *data, int64_t n) override {
    return allreduce(data, n, MPI_FLOAT);
  }
  Status allreduceSum(double *data, int64_t n) override {
    return allreduce(data, n, MPI_DOUBLE);
  }
  Status allreduceSum(int64_t *data, int64_t n) override {
    return allreduce(data, n, MPI_INT64_T);
  }

  Status broadcast(void *data, int64_t bytes, int root) override {
    if (bytes < 0)
      return Status::invalid(fmt::format("broadcast: negative size {}", bytes));
    if (root < 0 || root >= size_)
      return Status::invalid(
          fmt::format("broadcast: root {} is not one of the {} ranks", root, size_));
    if (Status st = usable("MPI_Bcast"); !st)
      return st;
    auto *p = static_cast<char *>(data);
    for (int64_t done = 0; done < bytes;) {
      int count = int(std::min(bytes - done, kMaxChunk));
      if (int rc = MPI_Bcast(p + done, count, MPI_BYTE, root, MPI_COMM_WORLD); rc != MPI_SUCCESS)
        return mpiError("MPI_Bcast", rc, fmt::format("{} bytes from rank {}", bytes, root));
      done += count;
    }
    return Status::ok();
  }

  Status barrier() override {
    if (Status st = usable("MPI_Barrier"); !st)
      return st;
    if (int rc = MPI_Barrier(MPI_COMM_WORLD); rc != MPI_SUCCESS)
      return mpiError("MPI_Barrier", rc, fmt::format("{} processes", size_));
    return Status::ok();
  }

  Status finalize() override {
    if (finalized_)
      return Status::ok();
    finalized_ = true;
    if (int rc = MPI_Finalize(); rc != MPI_SUCCESS)
      return mpiError("MPI_Finalize", rc, fmt::format("rank {}", rank_));
    return Status::ok();
  }

private:
  Status usable(const char *what) const {
    if (finalized_)
      return Status::internal(fmt::format("{}: MPI is already finalized", what));
    return Status::ok();
  }

  template <typename T> Status allreduce(T *data, int64_t n, MPI_Datatype type) {
    if (n < 0)
      return Status::invalid(fmt::format("allreduce: negative count {}", n));
    if (Status st = usable("MPI_Allreduce"); !st)
      return st;
    for (int64_t done = 0; done < n;) {
      int count = int(std::min(n - done, kMaxChunk));
      if (int rc = MPI_Allreduce(MPI_IN_PLACE, data + done, count, type, MPI_SUM, MPI_COMM_WORLD);
          rc != MPI_SUCCESS)
        return mpiError("MPI_Allreduce", rc, fmt::format("{} elements", n));
      done += count;
    }
    return Status::ok();
  }

  int rank_, size_;
  bool finalized_ = false;
};

} // namespace

Expected<std::unique_ptr<Collective>> createMpiCollective(int launcherSize) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized)
    return Status::internal("MPI is already initialised in this process (createCollective "
                            "must be called once)");
  if (int rc = MPI_Init(nullptr, nullptr); rc != MPI_SUCCESS)
    return Status::internal(fmt::format("MPI_Init failed with code {}", rc));
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  int rank = 0, size = 0;
  if (int rc = MPI_Comm_rank(MPI_COMM_WORLD, &rank); rc != MPI_SUCCESS)
    return mpiError("MPI_Comm_rank", rc, "MPI_COMM_WORLD");
  if (int rc = MPI_Comm_size(MPI_COMM_WORLD, &size); rc != MPI_SUCCESS)
    return mpiError("MPI_Comm_size", rc, "MPI_COMM_WORLD");
  if (size != launcherSize)
    return Status::internal(fmt::format(
        "MPI reports {} processes but the launcher announced {}", size, launcherSize));
  return std::unique_ptr<Collective>(std::make_unique<MpiCollective>(rank, size));
}

} // namespace lrt
