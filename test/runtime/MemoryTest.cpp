// SPDX-License-Identifier: Apache-2.0
/// Tests for runtime/Memory.h: the process's resident peak survives resetting VmHWM.
#include "runtime/Memory.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>

namespace lrt {
namespace {

// Tests that resetting VmHWM (which lowers ru_maxrss too on Linux, so wait4 and
// /usr/bin/time see only what follows it) keeps the peak it ended in
// processResidentPeak(): a 256 MiB block touched page by page and freed before the reset
// is in the process peak and not in VmHWM after the reset. 256 MiB is far above glibc's
// mmap threshold, so free() returns the pages to the system. "Holds the block" is read as
// at least 7/8 of it above the resident set before it: other pages of the process may be
// reclaimed meanwhile (a few dozen kB were).
TEST(MemoryTest, ProcessPeakSurvivesResettingVmHWM) {
  constexpr int64_t kBlock = int64_t(256) << 20;
  auto before = readResidentMemory();
  ASSERT_TRUE(before) << before.status().message();
  char *block = static_cast<char *>(std::malloc(kBlock));
  ASSERT_NE(block, nullptr);
  std::memset(block, 1, kBlock); // resident, not just reserved
  asm volatile("" : : "r"(block) : "memory"); // keeps the compiler from eliding the block
  auto touched = readResidentMemory();
  std::free(block);
  ASSERT_TRUE(touched);
  EXPECT_GE(touched->hwmBytes, before->rssBytes + kBlock / 8 * 7);
  Status reset = resetResidentPeak();
  ASSERT_TRUE(reset) << reset.message();
  auto after = readResidentMemory();
  ASSERT_TRUE(after);
  // VmHWM restarted below the block (the block is gone).
  EXPECT_LT(after->hwmBytes, before->rssBytes + kBlock / 2);
  // The process peak still holds it.
  EXPECT_GE(processResidentPeak(), before->rssBytes + kBlock / 8 * 7);
}

} // namespace
} // namespace lrt
