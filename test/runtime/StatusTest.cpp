// SPDX-License-Identifier: Apache-2.0
/// Tests for runtime/Status: success and failure values, context, Expected.
#include "runtime/Status.h"

#include <gtest/gtest.h>

#include <memory>

namespace lrt {
namespace {

Expected<std::unique_ptr<int>> makeInt(bool ok) {
  if (!ok)
    return Status::invalid("no int (asked for 1)");
  return std::make_unique<int>(7);
}

// Tests Status codes/messages and that context is prepended only to failures.
TEST(StatusTest, Status) {
  EXPECT_TRUE(Status::ok());
  EXPECT_TRUE(Status::ok().withContext("x"));
  Status s = Status::ioError("cannot write 'a'").withContext("checkpoint");
  EXPECT_FALSE(s);
  EXPECT_EQ(s.code(), StatusCode::IoError);
  EXPECT_EQ(s.message(), "checkpoint: cannot write 'a'");
}

// Tests Expected with a move-only value and with an error.
TEST(StatusTest, Expected) {
  auto good = makeInt(true);
  ASSERT_TRUE(good);
  EXPECT_EQ(**good, 7);
  std::unique_ptr<int> owned = good.take();
  EXPECT_EQ(*owned, 7);
  auto bad = makeInt(false);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.status().code(), StatusCode::InvalidArgument);
  EXPECT_EQ(bad.status().message(), "no int (asked for 1)");
  Expected<int> misuse{Status::ok()};
  EXPECT_FALSE(misuse);
  EXPECT_EQ(misuse.status().code(), StatusCode::Internal);
}

} // namespace
} // namespace lrt
