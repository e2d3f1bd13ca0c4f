// SPDX-License-Identifier: Apache-2.0
/// Tests for runtime/Safetensors: round trip, a hand-made file, and malformed input.
#include "runtime/Safetensors.h"

#include "TestUtil.h"

#include <gtest/gtest.h>

#include <cstring>

namespace lrt {
namespace {

std::vector<uint8_t> withHeader(const std::string &json, const std::vector<uint8_t> &data) {
  std::vector<uint8_t> out(8);
  uint64_t n = json.size();
  for (int k = 0; k < 8; ++k)
    out[k] = uint8_t(n >> (8 * k));
  out.insert(out.end(), json.begin(), json.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

// Tests that written tensors, shapes, dtypes and metadata read back unchanged.
TEST(SafetensorsTest, RoundTrip) {
  std::string path = test::freshDir() + "/t.safetensors";
  std::vector<float> w = {1.5f, -2.0f, 3.25f, 0.0f, 1e-7f, -1e7f};
  std::vector<int32_t> ids = {1, 2, 3, -4};
  float scalar = 42.0f;
  ASSERT_TRUE(writeSafetensors(path,
                               {{"layers.0.w", DType::F32, {2, 3}, w.data()},
                                {"ids", DType::I32, {2, 2}, ids.data()},
                                {"loss", DType::F32, {1}, &scalar},
                                {"empty", DType::F32, {0, 4}, nullptr}},
                               {{"stage", "pretrain"}, {"step", "7"}}));
  auto f = readSafetensors(path);
  ASSERT_TRUE(f) << f.status().message();
  ASSERT_EQ(f->tensors.size(), 4u);
  const Tensor *t = f->find("layers.0.w");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->dtype, DType::F32);
  EXPECT_EQ(t->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(t->as<float>(), w);
  ASSERT_NE(f->find("ids"), nullptr);
  EXPECT_EQ(f->find("ids")->as<int32_t>(), ids);
  EXPECT_EQ(f->find("loss")->as<float>(), std::vector<float>{42.0f});
  EXPECT_EQ(f->find("empty")->numel(), 0);
  EXPECT_EQ(f->metadata.at("stage"), "pretrain");
  EXPECT_EQ(f->metadata.at("step"), "7");
  EXPECT_EQ(f->find("nope"), nullptr);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

// Tests that the data section starts 8-byte aligned and the header length is little-endian.
TEST(SafetensorsTest, WrittenLayout) {
  float x = 1.0f;
  auto bytes = serializeSafetensors({{"x", DType::F32, {1}, &x}}, {});
  ASSERT_TRUE(bytes);
  uint64_t n = 0;
  std::memcpy(&n, bytes->data(), 8);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(bytes->size(), 8 + n + 4);
  EXPECT_EQ(bytes->substr(8, 2), "{\"");
  float back;
  std::memcpy(&back, bytes->data() + 8 + n, 4);
  EXPECT_EQ(back, 1.0f);
}

// Tests parsing a file built byte by byte per the format spec.
TEST(SafetensorsTest, HandMadeBuffer) {
  std::string json = R"({"b":{"dtype":"I32","shape":[],"data_offsets":[8,12]},)"
                     R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                     R"("__metadata__":{"k":"v"}})";
  // a = [1.0, -2.0] as little-endian f32; b = 7 as little-endian i32.
  std::vector<uint8_t> data = {0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0xC0,
                               0x07, 0x00, 0x00, 0x00};
  auto buf = withHeader(json, data);
  auto f = parseSafetensors(buf.data(), buf.size());
  ASSERT_TRUE(f) << f.status().message();
  ASSERT_EQ(f->tensors.size(), 2u);
  EXPECT_EQ(f->tensors[0].name, "a"); // sorted by offset
  EXPECT_EQ(f->tensors[0].as<float>(), (std::vector<float>{1.0f, -2.0f}));
  EXPECT_TRUE(f->tensors[1].shape.empty());
  EXPECT_EQ(f->tensors[1].numel(), 1);
  EXPECT_EQ(f->tensors[1].as<int32_t>(), std::vector<int32_t>{7});
  EXPECT_EQ(f->metadata.at("k"), "v");
}

// Tests that malformed files are rejected with a message.
TEST(SafetensorsTest, Malformed) {
  std::vector<uint8_t> four(4, 0);
  EXPECT_FALSE(parseSafetensors(four.data(), four.size()));
  auto tooLong = withHeader("{}", {});
  tooLong[0] = 0xFF;
  EXPECT_FALSE(parseSafetensors(tooLong.data(), tooLong.size()));
  auto notJson = withHeader("{oops", {});
  EXPECT_FALSE(parseSafetensors(notJson.data(), notJson.size()));
  auto wrongSize =
      withHeader(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::vector<uint8_t>(8));
  auto r = parseSafetensors(wrongSize.data(), wrongSize.size());
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("shape x dtype needs 12"), std::string::npos);
  auto hole =
      withHeader(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", std::vector<uint8_t>(8));
  EXPECT_FALSE(parseSafetensors(hole.data(), hole.size()));
  auto dtype =
      withHeader(R"({"a":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}})", std::vector<uint8_t>(8));
  EXPECT_FALSE(parseSafetensors(dtype.data(), dtype.size()));
  float x = 0;
  EXPECT_FALSE(serializeSafetensors({{"x", DType::F32, {1}, &x}, {"x", DType::F32, {1}, &x}}, {}));
}

} // namespace
} // namespace lrt
