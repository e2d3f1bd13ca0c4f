// SPDX-License-Identifier: Apache-2.0
#include "runtime/Gguf.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace {

/// Builds GGUF v3 bytes by hand, following the format spec (ggml docs/gguf.md).
struct Builder {
  std::string b;
  template <typename T> Builder &put(T v) {
    b.append(reinterpret_cast<const char *>(&v), sizeof(T));
    return *this;
  }
  Builder &str(const std::string &s) {
    put<uint64_t>(s.size());
    b += s;
    return *this;
  }
};

std::string sampleGguf() {
  Builder w;
  w.b = "GGUF";
  w.put<uint32_t>(3).put<uint64_t>(1).put<uint64_t>(5);
  w.str("general.name").put<uint32_t>(8).str("tiny");
  w.str("x.u32").put<uint32_t>(4).put<uint32_t>(4000000000u);
  w.str("x.f32").put<uint32_t>(6).put<float>(0.5f);
  w.str("x.tokens").put<uint32_t>(9).put<uint32_t>(8).put<uint64_t>(2).str("a").str("bc");
  w.str("x.nested").put<uint32_t>(9).put<uint32_t>(9).put<uint64_t>(1);
  w.put<uint32_t>(5).put<uint64_t>(2).put<int32_t>(-7).put<int32_t>(9);
  w.str("tok_embd.weight").put<uint32_t>(2).put<uint64_t>(4).put<uint64_t>(3);
  w.put<uint32_t>(0).put<uint64_t>(0);
  while (w.b.size() % 32)
    w.b += '\0';
  w.b += std::string(48, '\0');
  return w.b;
}

} // namespace

TEST(GgufTest, ParsesAllValueKindsAndTensorInfos) {
  auto f = lrt::parseGguf(sampleGguf());
  ASSERT_TRUE(f.isOk()) << f.status().message();
  EXPECT_EQ(f->version, 3u);
  EXPECT_EQ(*f->getString("general.name"), "tiny");
  EXPECT_EQ(*f->getInt("x.u32"), 4000000000LL);
  EXPECT_FLOAT_EQ(float(f->find("x.f32")->f), 0.5f);
  EXPECT_EQ(*f->getStringArray("x.tokens"), (std::vector<std::string>{"a", "bc"}));
  const lrt::GgufValue *n = f->find("x.nested");
  ASSERT_TRUE(n && n->arr.size() == 1);
  EXPECT_EQ(n->arr[0].arr[0].i, -7);
  ASSERT_EQ(f->tensors.size(), 1u);
  EXPECT_EQ(f->tensors[0].name, "tok_embd.weight");
  EXPECT_EQ(f->tensors[0].dims, (std::vector<uint64_t>{4, 3}));
  EXPECT_EQ(f->dataOffset % 32, 0u);
  EXPECT_FALSE(f->getString("x.u32").isOk());
  EXPECT_EQ(f->getString("missing").status().code(), lrt::StatusCode::NotFound);
}

TEST(GgufTest, MalformedInputGivesClearErrors) {
  std::string good = sampleGguf();
  auto bad = lrt::parseGguf("GGML" + good.substr(4), "m.gguf");
  ASSERT_FALSE(bad.isOk());
  EXPECT_NE(bad.status().message().find("magic"), std::string::npos);
  // Every truncation fails with a message, never crashes.
  for (size_t n = 0; n < 150; ++n) {
    auto t = lrt::parseGguf(good.substr(0, n), "t.gguf");
    EXPECT_FALSE(t.isOk()) << n;
    EXPECT_NE(t.status().message().find("t.gguf"), std::string::npos) << t.status().message();
  }
  std::string v9 = good;
  v9[4] = 9;
  EXPECT_NE(lrt::parseGguf(v9).status().message().find("version 9"), std::string::npos);
  std::string badType = good;
  size_t at = badType.find("general.name") + std::strlen("general.name");
  badType[at] = 42;
  auto bt = lrt::parseGguf(badType);
  ASSERT_FALSE(bt.isOk());
  EXPECT_NE(bt.status().message().find("unknown value type 42"), std::string::npos)
      << bt.status().message();
  // An array length the file cannot hold is rejected before allocating.
  std::string huge = good;
  size_t arr = huge.find("x.tokens") + std::strlen("x.tokens") + 8;
  uint64_t big = 1ull << 60;
  std::memcpy(&huge[arr], &big, 8);
  EXPECT_FALSE(lrt::parseGguf(huge).isOk());
}

TEST(GgufTest, ReadsRealQwen2VocabMetadata) {
  const char *e = std::getenv("LLMP_SHARED_DATA");
  const char *src = std::getenv("LLMP_SOURCE_DIR");
  std::string path = std::string(e ? e : std::string(src ? src : ".") + "/../shared/data") +
                     "/tokenizers/gguf/ggml-vocab-qwen2.gguf";
  if (!std::filesystem::exists(path))
    GTEST_SKIP() << "shared data not found (" << path << "); skipping";
  auto f = lrt::readGguf(path);
  ASSERT_TRUE(f.isOk()) << f.status().message();
  EXPECT_EQ(*f->getString("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(*f->getString("tokenizer.ggml.pre"), "qwen2");
  auto toks = f->getStringArray("tokenizer.ggml.tokens");
  ASSERT_TRUE(toks.isOk());
  EXPECT_GT(toks->size(), 150000u);
  EXPECT_EQ(f->getIntArray("tokenizer.ggml.token_type")->size(), toks->size());
}

//===----------------------------------------------------------------------===//
// Tensor data: hand-made ggml blocks (layouts in ggml-common.h), values by hand
//===----------------------------------------------------------------------===//

namespace {

void putHalf(std::vector<uint8_t> &b, uint16_t h) {
  b.push_back(uint8_t(h & 0xff));
  b.push_back(uint8_t(h >> 8));
}

} // namespace

TEST(GgufTensorTest, Q4_0BlockByHand) {
  // d = 0.5 (half 0x3800); qs[j] = j | (15 - j) << 4, so the low nibbles are 0..15 and the
  // high ones 15..0: y[j] = 0.5 * (j - 8), y[j + 16] = 0.5 * (15 - j - 8).
  std::vector<uint8_t> b;
  putHalf(b, 0x3800);
  for (int j = 0; j < 16; ++j)
    b.push_back(uint8_t(j | (15 - j) << 4));
  ASSERT_EQ(b.size(), 18u);
  std::vector<float> y(32);
  ASSERT_TRUE(lrt::dequantizeGgml(2, b.data(), 32, y.data()).isOk());
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 0.5f * float(j - 8)) << j;
    EXPECT_EQ(y[j + 16], 0.5f * float(7 - j)) << j;
  }
  EXPECT_EQ(y[0], -4.0f);
  EXPECT_EQ(y[16], 3.5f);
}

TEST(GgufTensorTest, Q4_1BlockByHand) {
  // d = 0.25 (0x3400), m = -1 (0xBC00); the same nibbles: y[j] = 0.25 j - 1,
  // y[j + 16] = 0.25 (15 - j) - 1.
  std::vector<uint8_t> b;
  putHalf(b, 0x3400);
  putHalf(b, 0xBC00);
  for (int j = 0; j < 16; ++j)
    b.push_back(uint8_t(j | (15 - j) << 4));
  ASSERT_EQ(b.size(), 20u);
  std::vector<float> y(32);
  ASSERT_TRUE(lrt::dequantizeGgml(3, b.data(), 32, y.data()).isOk());
  EXPECT_EQ(y[0], -1.0f);
  EXPECT_EQ(y[4], 0.0f);
  EXPECT_EQ(y[15], 2.75f);
  EXPECT_EQ(y[16], 2.75f);
  EXPECT_EQ(y[31], -1.0f);
}

TEST(GgufTensorTest, Q8_0TwoBlocksByHand) {
  // Block 0: d = 2 (0x4000), qs[j] = j - 16 -> y = 2 (j - 16); block 1: d = -0.125
  // (0xB000), qs[j] = 127 - j -> y = -0.125 (127 - j).
  std::vector<uint8_t> b;
  putHalf(b, 0x4000);
  for (int j = 0; j < 32; ++j)
    b.push_back(uint8_t(int8_t(j - 16)));
  putHalf(b, 0xB000);
  for (int j = 0; j < 32; ++j)
    b.push_back(uint8_t(int8_t(127 - j)));
  ASSERT_EQ(b.size(), 68u);
  std::vector<float> y(64);
  ASSERT_TRUE(lrt::dequantizeGgml(8, b.data(), 64, y.data()).isOk());
  EXPECT_EQ(y[0], -32.0f);
  EXPECT_EQ(y[16], 0.0f);
  EXPECT_EQ(y[31], 30.0f);
  EXPECT_EQ(y[32], -15.875f);
  EXPECT_EQ(y[63], -12.0f);
}

TEST(GgufTensorTest, F16AndF32ByHand) {
  // IEEE binary16: 1, -2, 2^-24 (smallest subnormal), 65504 (largest finite), +inf, -0,
  // 0x3555 = 1 + 341/1024 scaled by 2^-2 = 0.333251953125.
  const uint16_t halves[] = {0x3C00, 0xC000, 0x0001, 0x7BFF, 0x7C00, 0x8000, 0x3555};
  std::vector<uint8_t> b;
  for (uint16_t h : halves)
    putHalf(b, h);
  std::vector<float> y(7);
  ASSERT_TRUE(lrt::dequantizeGgml(1, b.data(), 7, y.data()).isOk());
  EXPECT_EQ(y[0], 1.0f);
  EXPECT_EQ(y[1], -2.0f);
  EXPECT_EQ(y[2], std::ldexp(1.0f, -24));
  EXPECT_EQ(y[3], 65504.0f);
  EXPECT_TRUE(std::isinf(y[4]) && y[4] > 0);
  EXPECT_TRUE(y[5] == 0.0f && std::signbit(y[5]));
  EXPECT_EQ(y[6], 0.333251953125f);
  const float f32[] = {1.5f, -0.0f, 3e-39f};
  std::vector<float> z(3);
  ASSERT_TRUE(lrt::dequantizeGgml(0, reinterpret_cast<const uint8_t *>(f32), 3, z.data()).isOk());
  EXPECT_EQ(std::memcmp(z.data(), f32, sizeof f32), 0);
}

TEST(GgufTensorTest, SizesAndErrors) {
  EXPECT_EQ(*lrt::ggmlTensorBytes(0, 10), 40u);
  EXPECT_EQ(*lrt::ggmlTensorBytes(1, 10), 20u);
  EXPECT_EQ(*lrt::ggmlTensorBytes(2, 64), 36u);
  EXPECT_EQ(*lrt::ggmlTensorBytes(3, 64), 40u);
  EXPECT_EQ(*lrt::ggmlTensorBytes(8, 64), 68u);
  auto partial = lrt::ggmlTensorBytes(2, 33);
  ASSERT_FALSE(partial.isOk());
  EXPECT_EQ(partial.status().message(), "33 elements of type q4_0 are not whole blocks of 32");
  auto k = lrt::ggmlTensorBytes(12, 256);
  ASSERT_FALSE(k.isOk());
  EXPECT_EQ(k.status().message(),
            "ggml type q4_k is not supported (f32, f16, q4_0, q4_1, q8_0)");
  EXPECT_EQ(lrt::ggmlTypeName(99), "type 99");
}

TEST(GgufTensorTest, ReadsTensorDataAndRejectsDataPastTheEnd) {
  std::string bytes = sampleGguf();
  auto f = lrt::parseGguf(bytes);
  ASSERT_TRUE(f.isOk()) << f.status().message();
  // sampleGguf: tok_embd.weight, F32 dims {4, 3}, 48 zero bytes; write 12 values into it.
  for (int i = 0; i < 12; ++i) {
    float v = 0.25f * float(i) - 1.0f;
    std::memcpy(&bytes[f->dataOffset + 4 * i], &v, 4);
  }
  auto t = lrt::readGgufTensor(*f, bytes, f->tensors[0]);
  ASSERT_TRUE(t.isOk()) << t.status().message();
  ASSERT_EQ(t->size(), 12u);
  EXPECT_EQ((*t)[0], -1.0f);
  EXPECT_EQ((*t)[11], 1.75f);
  auto cut = lrt::readGgufTensor(*f, bytes.substr(0, bytes.size() - 4), f->tensors[0]);
  ASSERT_FALSE(cut.isOk());
  EXPECT_NE(cut.status().message().find("'tok_embd.weight': data"), std::string::npos)
      << cut.status().message();
  EXPECT_NE(cut.status().message().find("past the end of the file"), std::string::npos);
}
