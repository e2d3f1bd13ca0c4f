// SPDX-License-Identifier: Apache-2.0
#include "runtime/Frozen.h"

#include "kernels/cpu/Quant.h"
#include "runtime/Safetensors.h"
#include "test/runtime/TestUtil.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace {

/// The 16 NF4 values of the QLoRA paper (Dettmers et al. 2023, appendix E; bitsandbytes'
/// table), as fp32. Weights on this grid with absmax 1 quantize and dequantize exactly.
const float kNf4[16] = {-1.0f, -0.6961928009986877f, -0.5250730514526367f,
                        -0.39491748809814453f, -0.28444138169288635f, -0.18477343022823334f,
                        -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f,
                        0.24611230194568634f, 0.33791524171829224f, 0.44070982933044434f,
                        0.5626170039176941f, 0.7229568362236023f, 1.0f};

/// A QLoRA-like plan: a frozen fp32 norm [4] at byte 0, a frozen NF4 matrix [4, 16] (one
/// block of 64, no double quantization) at byte 64, and a trainable adapter that the
/// weights file does not have.
lrt::StagePlan twoFrozenParams() {
  lrt::StagePlan plan;
  plan.nf4.block = 64;
  plan.nf4.doubleQuant = false;
  lrt::ParamInfo norm;
  norm.name = "final_norm", norm.shape = {4}, norm.numel = 4, norm.frozen = true;
  norm.byteOffset = 0, norm.byteSize = 16;
  lrt::ParamInfo w;
  w.name = "layers.0.wq", w.shape = {4, 16}, w.numel = 64, w.frozen = true;
  w.storage = lrt::Storage::NF4, w.byteOffset = 64;
  w.byteSize = lrt::quant::nf4Layout(64, 64, false).byteSize;
  lrt::ParamInfo a;
  a.name = "layers.0.wq.lora_A", a.shape = {1, 4}, a.numel = 4, a.offset = 0;
  plan.params = {norm, w, a};
  plan.numParams = 4;
  plan.frozenBytes = 64 + w.byteSize;
  return plan;
}

TEST(FrozenTest, ReadFrozenBaseFromSafetensorsCopiesF32AndQuantizesNf4) {
  lrt::StagePlan plan = twoFrozenParams();
  std::vector<float> norm = {1.0f, 0.5f, -2.0f, 3.25f}, w(64);
  for (int i = 0; i < 64; ++i)
    w[i] = kNf4[(i * 7) % 16]; // every code, absmax 1
  std::string path = lrt::test::freshDir() + "/model.safetensors";
  ASSERT_TRUE(lrt::writeSafetensors(path, {{"final_norm", lrt::DType::F32, {4}, norm.data()},
                                           {"layers.0.wq", lrt::DType::F32, {4, 16}, w.data()}},
                                    {})
                  .isOk());
  std::vector<uint8_t> frozen;
  lrt::Status st = lrt::readFrozenBase(plan, path, frozen);
  ASSERT_TRUE(st.isOk()) << st.message();
  ASSERT_EQ(int64_t(frozen.size()), plan.frozenBytes);
  // The fp32 param is its bytes; the NF4 one dequantizes to the grid values exactly.
  EXPECT_EQ(std::memcmp(frozen.data(), norm.data(), 16), 0);
  for (int i = 16; i < 64; ++i)
    EXPECT_EQ(frozen[i], 0) << "padding byte " << i;
  std::vector<float> back(64);
  ASSERT_TRUE(
      lrt::loadFrozenParam(plan.params[1], plan.nf4, frozen.data(), plan.frozenBytes, back.data())
          .isOk());
  EXPECT_EQ(back, w);
  // Packed codes: weight 0 is kNf4[0] (code 0), weight 1 kNf4[7] (code 7), high nibble first
  // (Quant.h): 0x07.
  EXPECT_EQ(frozen[64], 0x07);
}

TEST(FrozenTest, Bf16StorageRoundsToNearestEvenAndWidensExactly) {
  // A frozen bf16 matrix [2, 3] at byte 64 (a LoRA base under precision: bf16): 2 bytes per
  // value, little-endian; the values' bf16 bits by hand: 1.0 = 0x3F80, -2.0 = 0xC000,
  // 1 + 2^-8 ties to even -> 0x3F80, 1 + 3 * 2^-8 ties up -> 0x3F82 (1 + 2^-6),
  // 1 + 2^-8 + 2^-20 rounds up -> 0x3F81, 0.1f = 0x3DCCCCCD -> 0x3DCD.
  lrt::ParamInfo w;
  w.name = "layers.0.wq", w.shape = {2, 3}, w.numel = 6, w.frozen = true;
  w.storage = lrt::Storage::BF16, w.byteOffset = 64, w.byteSize = 12;
  const float values[6] = {1.0f, -2.0f, 1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f,
                           1.0f + 0x1p-8f + 0x1p-20f, 0.1f};
  const uint16_t bits[6] = {0x3F80, 0xC000, 0x3F80, 0x3F82, 0x3F81, 0x3DCD};
  std::vector<uint8_t> frozen(76, 0xAB);
  ASSERT_TRUE(lrt::storeFrozenParam(w, {}, values, frozen.data(), 76).isOk());
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(frozen[64 + 2 * i], bits[i] & 0xFF) << i;
    EXPECT_EQ(frozen[65 + 2 * i], bits[i] >> 8) << i;
  }
  EXPECT_EQ(frozen[63], 0xAB); // nothing outside [64, 76) is written
  std::vector<float> back(6);
  ASSERT_TRUE(lrt::loadFrozenParam(w, {}, frozen.data(), 76, back.data()).isOk());
  const float want[6] = {1.0f, -2.0f, 1.0f, 1.0f + 0x1p-6f, 1.0f + 0x1p-7f, 0x1.9ap-4f};
  for (int i = 0; i < 6; ++i)
    EXPECT_EQ(back[i], want[i]) << i;
  // The byte size must be 2 per element, and the tensor must fit.
  w.byteSize = 24;
  lrt::Status st = lrt::storeFrozenParam(w, {}, values, frozen.data(), 88);
  EXPECT_FALSE(st.isOk());
  EXPECT_NE(st.message().find("bf16"), std::string::npos) << st.message();
  w.byteSize = 12;
  EXPECT_FALSE(lrt::storeFrozenParam(w, {}, values, frozen.data(), 70).isOk());
}

TEST(FrozenTest, ReadFrozenBaseNamesAMissingOrMisshapenTensor) {
  lrt::StagePlan plan = twoFrozenParams();
  std::vector<float> norm(4, 1.0f), w(64, 0.5f);
  std::string dir = lrt::test::freshDir();
  ASSERT_TRUE(lrt::writeSafetensors(dir + "/a.safetensors",
                                    {{"final_norm", lrt::DType::F32, {4}, norm.data()}}, {})
                  .isOk());
  std::vector<uint8_t> frozen;
  lrt::Status st = lrt::readFrozenBase(plan, dir + "/a.safetensors", frozen);
  EXPECT_FALSE(st.isOk());
  EXPECT_NE(st.message().find("has no tensor 'layers.0.wq'"), std::string::npos) << st.message();
  ASSERT_TRUE(lrt::writeSafetensors(dir + "/b.safetensors",
                                    {{"final_norm", lrt::DType::F32, {4}, norm.data()},
                                     {"layers.0.wq", lrt::DType::F32, {16, 4}, w.data()}},
                                    {})
                  .isOk());
  st = lrt::readFrozenBase(plan, dir + "/b.safetensors", frozen);
  EXPECT_FALSE(st.isOk());
  EXPECT_NE(st.message().find("'layers.0.wq' is F32 [16, 4], expected F32 [4, 16]"),
            std::string::npos)
      << st.message();
  st = lrt::readFrozenBase(plan, dir + "/absent.gguf", frozen);
  EXPECT_FALSE(st.isOk());
}

} // namespace
