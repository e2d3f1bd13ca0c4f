// SPDX-License-Identifier: Apache-2.0
/// Tests for runtime/collective in one process: the single-process implementation and the
/// launcher detection that createCollective() relies on. The MPI implementation is tested
/// across two processes by MpiCollectiveTest.cpp (ctest runs it under mpiexec -np 2).
#include "runtime/collective/Collective.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <vector>

namespace lrt {
namespace {

/// Sets (or, for nullptr, unsets) an environment variable for one scope.
class ScopedEnv {
public:
  ScopedEnv(const char *name, const char *value) : name_(name) {
    if (const char *old = std::getenv(name))
      old_ = old, had_ = true;
    if (value)
      ::setenv(name, value, 1);
    else
      ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (had_)
      ::setenv(name_, old_.c_str(), 1);
    else
      ::unsetenv(name_);
  }

private:
  const char *name_;
  std::string old_;
  bool had_ = false;
};

// Tests that one process is rank 0 of 1 and that its collectives leave the data as it is
// (the sum over one rank is the rank's own value).
TEST(CollectiveTest, SingleProcessIsIdentity) {
  auto c = makeSingleProcessCollective();
  EXPECT_EQ(c->rank(), 0);
  EXPECT_EQ(c->size(), 1);
  EXPECT_STREQ(c->name(), "single");
  std::vector<float> f = {1.5f, -2.25f, 3e-8f};
  ASSERT_TRUE(c->allreduceSum(f.data(), int64_t(f.size())));
  EXPECT_EQ(f, (std::vector<float>{1.5f, -2.25f, 3e-8f}));
  double d = 0.1;
  ASSERT_TRUE(c->allreduceSum(&d, 1));
  EXPECT_EQ(d, 0.1);
  std::vector<int64_t> i = {int64_t(1) << 60, -7};
  ASSERT_TRUE(c->allreduceSum(i.data(), int64_t(i.size())));
  EXPECT_EQ(i, (std::vector<int64_t>{int64_t(1) << 60, -7}));
  char bytes[4] = {'a', 'b', 'c', 'd'};
  ASSERT_TRUE(c->broadcast(bytes, 4, 0));
  EXPECT_EQ(std::string(bytes, 4), "abcd");
  EXPECT_TRUE(c->barrier());
  EXPECT_TRUE(c->finalize());
}

// Tests the argument errors: negative counts and a root that is not a rank.
TEST(CollectiveTest, SingleProcessArgumentErrors) {
  auto c = makeSingleProcessCollective();
  float f = 0;
  Status st = c->allreduceSum(&f, -1);
  EXPECT_EQ(st.code(), StatusCode::InvalidArgument);
  EXPECT_EQ(st.message(), "allreduce: negative count -1");
  st = c->broadcast(&f, 4, 1);
  EXPECT_EQ(st.code(), StatusCode::InvalidArgument);
  EXPECT_EQ(st.message(), "broadcast: root 1 is not one of the 1 ranks");
  EXPECT_EQ(c->broadcast(&f, -4, 0).code(), StatusCode::InvalidArgument);
}

// Tests the launcher detection: no variable -> 0 and a single-process layer; Open MPI's
// variable first; malformed counts are errors naming the variable.
TEST(CollectiveTest, LauncherWorldSize) {
  ScopedEnv a("OMPI_COMM_WORLD_SIZE", nullptr), b("PMI_SIZE", nullptr), c("PMIX_SIZE", nullptr);
  auto none = launcherWorldSize();
  ASSERT_TRUE(none);
  EXPECT_EQ(*none, 0);
  auto single = createCollective();
  ASSERT_TRUE(single) << single.status().message();
  EXPECT_STREQ((*single)->name(), "single");
  {
    ScopedEnv pmi("PMI_SIZE", "3");
    ScopedEnv ompi("OMPI_COMM_WORLD_SIZE", "2");
    auto n = launcherWorldSize();
    ASSERT_TRUE(n);
    EXPECT_EQ(*n, 2);
  }
  for (const char *bad : {"", "0", "-2", "2x", "99999999999"}) {
    ScopedEnv pmi("PMI_SIZE", bad);
    auto n = launcherWorldSize();
    ASSERT_FALSE(n) << bad;
    EXPECT_EQ(n.status().message(),
              std::string("environment variable PMI_SIZE='") + bad +
                  "' is not a positive process count");
  }
}

} // namespace
} // namespace lrt
