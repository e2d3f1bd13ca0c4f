// SPDX-License-Identifier: Apache-2.0
/// Helpers shared by the runtime tests: fresh temporary directories and a small
/// deterministic English corpus.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <unistd.h>
#include <string>

namespace lrt::test {

/// A new empty directory under the GoogleTest temp dir, named after the running test and
/// the process (two test binaries running at once must not share folders).
inline std::string freshDir() {
  const auto *info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::filesystem::path p = std::filesystem::path(::testing::TempDir()) /
                            (std::string("llmp_rt_") + info->test_suite_name() + "_" +
                             info->name() + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p.string();
}

/// The real-data folder ../shared/data next to the source tree (LLMP_SHARED_DATA
/// overrides; LLMP_SOURCE_DIR is the source tree, set by ctest), or "" when absent.
inline std::string sharedDataDir() {
  const char *e = std::getenv("LLMP_SHARED_DATA");
  const char *src = std::getenv("LLMP_SOURCE_DIR");
  std::string d = e ? e : std::string(src ? src : ".") + "/../shared/data";
  return std::filesystem::is_directory(d) ? d : std::string();
}

/// `lines` lines of English built from fixed sentences with a fixed LCG, so the text is
/// the same on every run and has enough variety for a few hundred BPE pieces.
inline std::string englishText(int lines) {
  static const char *kSentences[] = {
      "In the beginning God created the heaven and the earth.",
      "And the earth was without form, and void; and darkness was upon the face of the deep.",
      "And God said, Let there be light: and there was light.",
      "And God saw the light, that it was good: and God divided the light from the darkness.",
      "The quick brown fox jumps over the lazy dog near the river bank.",
      "She sells sea shells by the sea shore, and the shells she sells are surely sea shells.",
      "Blessed are the meek: for they shall inherit the earth.",
      "A journey of a thousand miles begins with a single step, 42 times over.",
      "To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer.",
      "It was the best of times, it was the worst of times, it was the age of wisdom.",
      "Numbers like 1769 and 31102 appear in the text; so do (parentheses) and \"quotes\".",
      "Unicode works too: café, naïve, Ångström, and λόγος.",
  };
  constexpr int n = sizeof(kSentences) / sizeof(kSentences[0]);
  std::string text;
  uint64_t state = 12345;
  for (int i = 0; i < lines; ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    text += kSentences[(state >> 33) % n];
    if ((state >> 20) % 3 == 0) {
      text += ' ';
      text += kSentences[(state >> 40) % n];
    }
    text += '\n';
  }
  return text;
}

} // namespace lrt::test
