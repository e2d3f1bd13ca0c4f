// SPDX-License-Identifier: Apache-2.0
/// Tests for the MPI implementation of runtime/collective, run as two processes:
///   mpiexec --allow-run-as-root --oversubscribe -np 2 collective-mpi-tests
/// (ctest does this). Each rank contributes values derived from its rank; the expected
/// results are the sums worked out by hand in the comments. Both ranks run every test,
/// in the same order, so each collective call is matched on the other rank.
#include "runtime/DataParallel.h"
#include "runtime/collective/Collective.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <numeric>
#include <vector>

namespace lrt {
namespace {

Collective *world = nullptr;

// Tests that the launcher's two processes are ranks 0 and 1 of 2: the sum of the ranks
// is 0 + 1 = 1 and the sum of 2^rank is 1 + 2 = 3 (so the ranks are distinct).
TEST(MpiCollectiveTest, RankAndSize) {
  EXPECT_STREQ(world->name(), "mpi");
  ASSERT_EQ(world->size(), 2);
  std::vector<int64_t> v = {world->rank(), int64_t(1) << world->rank()};
  ASSERT_TRUE(world->allreduceSum(v.data(), 2));
  EXPECT_EQ(v[0], 1);
  EXPECT_EQ(v[1], 3);
}

// Tests the fp32 sum in place: rank r holds x[i] = (r + 1) * i + 0.25 * r, so the sum over
// ranks 0 and 1 is (1 + 2) * i + 0.25 = 3i + 0.25, exact in fp32 for i < 2^20. 1,000,003
// elements: more than one message of Open MPI's pipelined algorithms.
TEST(MpiCollectiveTest, AllreduceSumFloat) {
  const int64_t n = 1000003;
  const int r = world->rank();
  std::vector<float> x(n);
  for (int64_t i = 0; i < n; ++i)
    x[i] = float((r + 1) * i) + 0.25f * float(r);
  ASSERT_TRUE(world->allreduceSum(x.data(), n));
  int64_t wrong = 0;
  for (int64_t i = 0; i < n; ++i)
    wrong += x[i] != float(3 * i) + 0.25f;
  EXPECT_EQ(wrong, 0);
  EXPECT_EQ(x[0], 0.25f);
  EXPECT_EQ(x[n - 1], 3000006.25f);
  // Zero elements is a no-op that still succeeds on both ranks.
  EXPECT_TRUE(world->allreduceSum(x.data(), 0));
}

// Tests the fp64 sum: rank r holds 0.1 * (r + 1) and 1e300 * (1 - 2r), so the sums are
// 0.1 + 0.2 (which is 0.30000000000000004 in fp64, exactly as 0.1 + 0.2 in C++) and 0.
TEST(MpiCollectiveTest, AllreduceSumDouble) {
  const int r = world->rank();
  double x[2] = {0.1 * (r + 1), 1e300 * (1 - 2 * r)};
  ASSERT_TRUE(world->allreduceSum(x, 2));
  EXPECT_EQ(x[0], 0.1 + 0.2);
  EXPECT_EQ(x[1], 0.0);
}

// Tests the int64 sum beyond 2^53 (where a float or double sum would round): rank 0 holds
// 2^62 + i, rank 1 holds -(2^61) + 3i, so the sum is 2^62 - 2^61 + 4i = 2^61 + 4i.
TEST(MpiCollectiveTest, AllreduceSumInt64) {
  const int64_t n = 17;
  std::vector<int64_t> x(n);
  for (int64_t i = 0; i < n; ++i)
    x[i] = world->rank() == 0 ? (int64_t(1) << 62) + i : -(int64_t(1) << 61) + 3 * i;
  ASSERT_TRUE(world->allreduceSum(x.data(), n));
  for (int64_t i = 0; i < n; ++i)
    EXPECT_EQ(x[i], (int64_t(1) << 61) + 4 * i) << i;
}

// Tests broadcast from each root: the root's bytes arrive everywhere, the other rank's
// are overwritten.
TEST(MpiCollectiveTest, Broadcast) {
  for (int root = 0; root < 2; ++root) {
    char text[32] = {};
    std::snprintf(text, sizeof text, "from rank %d", world->rank());
    ASSERT_TRUE(world->broadcast(text, sizeof text, root));
    EXPECT_EQ(std::string(text), "from rank " + std::to_string(root));
  }
  // 3 MiB of a pattern only the root has.
  std::vector<uint32_t> big(3 << 18, world->rank() == 0 ? 0u : 0xdeadbeefu);
  if (world->rank() == 0)
    std::iota(big.begin(), big.end(), 7u);
  ASSERT_TRUE(world->broadcast(big.data(), int64_t(big.size() * 4), 0));
  EXPECT_EQ(big.front(), 7u);
  EXPECT_EQ(big.back(), 7u + uint32_t(big.size()) - 1);
}

// Tests the barrier and the argument checks (made before any message, so both ranks
// fail the same way and stay matched).
TEST(MpiCollectiveTest, BarrierAndArgumentErrors) {
  EXPECT_TRUE(world->barrier());
  float f = 0;
  EXPECT_EQ(world->allreduceSum(&f, -3).message(), "allreduce: negative count -3");
  EXPECT_EQ(world->broadcast(&f, 4, 2).message(), "broadcast: root 2 is not one of the 2 ranks");
}

// Tests agreeOnStatus when only rank 1 fails: rank 1 keeps its own error, rank 0 learns
// that 1 of the 2 ranks failed; when rank 0 fails, rank 1 is told rank 0 prints the error.
TEST(DataParallelMpiTest, AgreeOnStatus) {
  const int r = world->rank();
  EXPECT_TRUE(agreeOnStatus(*world, Status::ok()));
  Status st = agreeOnStatus(*world, r == 1 ? Status::ioError("disk full") : Status::ok());
  if (r == 1)
    EXPECT_EQ(st.message(), "disk full");
  else
    EXPECT_EQ(st.message(), "stopped: 1 of 2 ranks failed");
  st = agreeOnStatus(*world, r == 0 ? Status::ioError("disk full") : Status::ok());
  EXPECT_EQ(st.message(), r == 0 ? "disk full" : "stopped: 1 of 2 ranks failed (rank 0 prints the error)");
  auto any = anyRank(*world, r == 1);
  ASSERT_TRUE(any);
  EXPECT_TRUE(*any) << "rank 1 said yes";
  any = anyRank(*world, false);
  ASSERT_TRUE(any);
  EXPECT_FALSE(*any);
}

// Tests checkIdentical: equal buffers pass; a buffer that differs on rank 1 at element
// 1,500,000 (in the second 1 Mi-element chunk) is reported there with both values.
TEST(DataParallelMpiTest, CheckIdentical) {
  std::vector<float> p(2000000);
  for (size_t i = 0; i < p.size(); ++i)
    p[i] = float(i) * 0.5f;
  EXPECT_TRUE(checkIdentical(*world, p.data(), int64_t(p.size()), "parameters"));
  if (world->rank() == 1)
    p[1500000] = 1.0f;
  Status st = checkIdentical(*world, p.data(), int64_t(p.size()), "parameters");
  if (world->rank() == 1)
    EXPECT_EQ(st.message(), "parameters differ between ranks: first at element 1500000 "
                            "(rank 0: 750000, rank 1: 1)");
  else
    EXPECT_EQ(st.message(), "stopped: 1 of 2 ranks failed");
}

} // namespace
} // namespace lrt

int main(int argc, char **argv) {
  ::testing::InitGoogleTest(&argc, argv);
  auto created = lrt::createCollective();
  if (!created) {
    std::fprintf(stderr, "collective-mpi-tests: %s\n", created.status().message().c_str());
    return 1;
  }
  if ((*created)->size() != 2) {
    std::fprintf(stderr,
                 "collective-mpi-tests: needs 2 processes, got %d; run it as "
                 "mpiexec --allow-run-as-root --oversubscribe -np 2 %s\n",
                 (*created)->size(), argv[0]);
    return 1;
  }
  lrt::world = created->get();
  int failed = RUN_ALL_TESTS();
  // After finalize, operations fail with a clear status instead of calling MPI.
  lrt::Status fin = lrt::world->finalize();
  if (!fin) {
    std::fprintf(stderr, "collective-mpi-tests: %s\n", fin.message().c_str());
    return 1;
  }
  lrt::Status after = lrt::world->barrier();
  if (after || after.message() != "MPI_Barrier: MPI is already finalized") {
    std::fprintf(stderr, "collective-mpi-tests: barrier after finalize gave '%s'\n",
                 after.message().c_str());
    return 1;
  }
  return failed;
}
