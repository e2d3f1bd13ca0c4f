// SPDX-License-Identifier: Apache-2.0
#include "runtime/Gguf.h"

#include <gtest/gtest.h>

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
