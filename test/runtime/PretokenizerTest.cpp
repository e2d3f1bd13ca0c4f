// SPDX-License-Identifier: Apache-2.0
#include "runtime/Pretokenizer.h"

#include <gtest/gtest.h>

using lrt::Pretokenizer;

namespace {
std::vector<std::string> split(const char *pattern, std::string_view text) {
  auto p = Pretokenizer::compile(pattern);
  EXPECT_TRUE(p.isOk()) << p.status().message();
  std::vector<std::string_view> v;
  EXPECT_TRUE(p->split(text, v).isOk());
  return {v.begin(), v.end()};
}
} // namespace

// Splits as openai/gpt-2's encoder.py does (hand-checked against its regex).
TEST(PretokenizerTest, Gpt2Pattern) {
  using V = std::vector<std::string>;
  EXPECT_EQ(split(lrt::pretok::kGpt2, "Hello world, it's 2024!  ok\n"),
            (V{"Hello", " world", ",", " it", "'s", " 2024", "!", " ", " ok", "\n"}));
  EXPECT_EQ(split(lrt::pretok::kGpt2, "I'M"), (V{"I", "'", "M"}));
}

TEST(PretokenizerTest, Llama3AndQwen2Patterns) {
  using V = std::vector<std::string>;
  EXPECT_EQ(split(lrt::pretok::kLlama3, "I'M 12345 x\n\n y"),
            (V{"I", "'M", " ", "123", "45", " x", "\n\n", " y"}));
  EXPECT_EQ(split(lrt::pretok::kQwen2, "12345"), (V{"1", "2", "3", "4", "5"}));
}

TEST(PretokenizerTest, InvalidUtf8BytesBecomePieces) {
  std::string text = "ab\xFF cd";
  auto pieces = split(lrt::pretok::kGpt2, text);
  std::string joined;
  for (auto &p : pieces)
    joined += p;
  EXPECT_EQ(joined, text);
  EXPECT_NE(std::find(pieces.begin(), pieces.end(), std::string("\xFF")), pieces.end());
}

TEST(PretokenizerTest, BadPatternIsAnError) {
  auto p = Pretokenizer::compile("(unclosed");
  ASSERT_FALSE(p.isOk());
  EXPECT_NE(p.status().message().find("(unclosed"), std::string::npos);
}

TEST(PretokenizerTest, ByteMappingRoundTrips) {
  std::string all;
  for (int b = 0; b < 256; ++b)
    all += char(b);
  auto back = lrt::unicodeStringToBytes(lrt::bytesToUnicodeString(all));
  ASSERT_TRUE(back.isOk());
  EXPECT_EQ(*back, all);
  EXPECT_EQ(lrt::byteToUnicode(' '), char32_t(0x120)); // 'Ġ'
  EXPECT_EQ(lrt::byteToUnicode('\n'), char32_t(0x10A)); // 'Ċ'
  EXPECT_FALSE(lrt::unicodeStringToBytes("\xE4\xB8\xAD").isOk());
}
