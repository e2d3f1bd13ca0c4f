// SPDX-License-Identifier: Apache-2.0
/// The single-process collective layer and the choice between it and MPI.
#include "runtime/collective/Collective.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstdlib>

namespace lrt {

#ifdef LLMP_HAVE_MPI
/// In MpiCollective.cpp: MPI_Init and the MPI implementation.
Expected<std::unique_ptr<Collective>> createMpiCollective(int launcherSize);
#endif

namespace {

class SingleProcessCollective final : public Collective {
public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  const char *name() const override { return "single"; }
  Status allreduceSum(float *, int64_t n) override { return checkCount(n); }
  Status allreduceSum(double *, int64_t n) override { return checkCount(n); }
  Status allreduceSum(int64_t *, int64_t n) override { return checkCount(n); }
  Status broadcast(void *, int64_t bytes, int root) override {
    if (bytes < 0)
      return Status::invalid(fmt::format("broadcast: negative size {}", bytes));
    if (root != 0)
      return Status::invalid(fmt::format("broadcast: root {} is not one of the 1 ranks", root));
    return Status::ok();
  }
  Status barrier() override { return Status::ok(); }
  Status finalize() override { return Status::ok(); }

private:
  static Status checkCount(int64_t n) {
    if (n < 0)
      return Status::invalid(fmt::format("allreduce: negative count {}", n));
    return Status::ok();
  }
};

} // namespace

std::unique_ptr<Collective> makeSingleProcessCollective() {
  return std::make_unique<SingleProcessCollective>();
}

Expected<int> launcherWorldSize() {
  for (const char *var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"}) {
    const char *text = std::getenv(var);
    if (!text)
      continue;
    char *end = nullptr;
    errno = 0;
    long n = std::strtol(text, &end, 10);
    if (errno || end == text || *end || n < 1 || n > (1 << 30))
      return Status::invalid(
          fmt::format("environment variable {}='{}' is not a positive process count", var, text));
    return int(n);
  }
  return 0;
}

bool haveMpi() {
#ifdef LLMP_HAVE_MPI
  return true;
#else
  return false;
#endif
}

Expected<std::unique_ptr<Collective>> createCollective() {
  auto launched = launcherWorldSize();
  if (!launched)
    return launched.status();
  if (*launched == 0)
    return makeSingleProcessCollective();
#ifdef LLMP_HAVE_MPI
  return createMpiCollective(*launched);
#else
  return Status::invalid(fmt::format(
      "started by an MPI launcher ({} processes) but this llmpc was built without MPI; "
      "install Open MPI (Debian: libopenmpi-dev openmpi-bin) and rebuild",
      *launched));
#endif
}

} // namespace lrt
