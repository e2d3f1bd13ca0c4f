// SPDX-License-Identifier: Apache-2.0
/// NF4 quantization (kernels/cpu/Quant): the packing of code pairs, exact round trips of
/// weights on the NF4 grid at every block size, the storage cost of double quantization,
/// the error bound, and clear errors. The comparison with bitsandbytes on random and real
/// SmolLM2 weights is test/e2e/nf4_bitsandbytes.py.
#include "kernels/cpu/Quant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

using lrt::quant::kNf4Code;
using lrt::quant::Nf4Options;

namespace {

std::vector<float> roundTrip(const std::vector<float> &x, const Nf4Options &opts) {
  auto q = lrt::quant::quantizeNf4(x.data(), static_cast<int64_t>(x.size()), opts);
  EXPECT_TRUE(q.isOk()) << q.status().message();
  std::vector<float> y(x.size());
  EXPECT_TRUE(lrt::quant::dequantizeNf4(*q, y.data()).isOk());
  return y;
}

} // namespace

// Issue #6: the code pairs (15, 0), (0, 0), (8, 6) pack to 0xF0, 0x00, 0x86 (first code
// in the high nibble). With absmax 1 the weights 1, -1, -1, -1, code[8], code[6] take
// exactly these codes.
TEST(QuantTest, PacksCodePairsHighNibbleFirst) {
  EXPECT_EQ(lrt::quant::packNibbles(15, 0), 0xF0);
  EXPECT_EQ(lrt::quant::packNibbles(0, 0), 0x00);
  EXPECT_EQ(lrt::quant::packNibbles(8, 6), 0x86);
  std::vector<float> x = {1.0f, -1.0f, -1.0f, -1.0f, kNf4Code[8], kNf4Code[6]};
  auto q = lrt::quant::quantizeNf4(x.data(), 6, {64, false, 256});
  ASSERT_TRUE(q.isOk()) << q.status().message();
  EXPECT_EQ(q->packed, (std::vector<uint8_t>{0xF0, 0x00, 0x86}));
  // An odd count pads the last low nibble with the code of 0.0 (7), as bitsandbytes.
  auto odd = lrt::quant::quantizeNf4(x.data(), 5, {64, false, 256});
  ASSERT_TRUE(odd.isOk());
  EXPECT_EQ(odd->packed, (std::vector<uint8_t>{0xF0, 0x00, 0x87}));
}

// The table is the QLoRA NF4 data type: 16 ascending values, -1, exact 0 at code 7, 1.
TEST(QuantTest, Nf4TableShape) {
  EXPECT_EQ(kNf4Code[0], -1.0f);
  EXPECT_EQ(kNf4Code[7], 0.0f);
  EXPECT_EQ(kNf4Code[15], 1.0f);
  for (int k = 0; k < 15; ++k)
    EXPECT_LT(kNf4Code[k], kNf4Code[k + 1]);
  const auto &d = lrt::quant::dynamicCode8();
  EXPECT_EQ(d.back(), 1.0f);
  for (int k = 0; k < 255; ++k)
    EXPECT_LT(d[k], d[k + 1]) << k;
}

// Weights on the NF4 grid (code[k] * s for each block's absmax s, with one weight = +-s)
// come back bit for bit at every block size, with any scales (no double quantization),
// and with double quantization when every block has the same absmax (the offset is then
// that absmax and the centred values are 0).
TEST(QuantTest, GridValuesRoundTripExactlyAtEveryBlockSize) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> code(0, 15);
  std::uniform_real_distribution<float> scale(1e-3f, 10.0f);
  for (int64_t block : {1, 2, 3, 5, 16, 32, 64, 100, 128, 256, 512, 1024, 2048, 4096}) {
    for (bool dq : {false, true}) {
      int64_t blocks = 5;
      std::vector<float> x(static_cast<size_t>(block * blocks - (block > 1 ? 1 : 0)));
      float common = scale(rng);
      for (size_t i = 0; i < x.size(); ++i) {
        size_t b = i / static_cast<size_t>(block);
        float s = dq ? common : 0.5f + static_cast<float>(b) * 1.37f;
        x[i] = kNf4Code[code(rng)] * s;
        if (i % static_cast<size_t>(block) == 0)
          x[i] = (b % 2 ? -1.0f : 1.0f) * s; // the block's absmax
      }
      std::vector<float> y = roundTrip(x, {block, dq, 256});
      for (size_t i = 0; i < x.size(); ++i)
        ASSERT_EQ(y[i], x[i]) << "block " << block << " dq " << dq << " index " << i;
    }
  }
}

// Storage with double quantization: 4 bits per weight + 8 bits per 64 weights + 32 bits
// per 64 * 256 weights (+ one fp32 offset) = 4 + 0.125 + 0.001953 = 4.127 (QLoRA 2.1).
TEST(QuantTest, DoubleQuantCostsAbout4127BitsPerParameter) {
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<float> x(576 * 1536); // a SmolLM2-135M MLP matrix
  for (float &v : x)
    v = normal(rng);
  auto q = lrt::quant::quantizeNf4(x.data(), static_cast<int64_t>(x.size()));
  ASSERT_TRUE(q.isOk());
  double n = static_cast<double>(x.size());
  double want = (4 * n + 8 * (n / 64) + 32 * std::ceil(n / 64 / 256) + 32) / n;
  EXPECT_DOUBLE_EQ(q->bitsPerParameter(), want);
  EXPECT_NEAR(q->bitsPerParameter(), 4.127, 5e-4);
  std::printf("NF4 + double quantization, 576 x 1536 weights: %.6f bits per parameter\n", q->bitsPerParameter());
  auto plain = lrt::quant::quantizeNf4(x.data(), static_cast<int64_t>(x.size()), {64, false, 256});
  EXPECT_DOUBLE_EQ(plain->bitsPerParameter(), 4.5);
}

// The error of a weight is at most half the widest gap between neighbouring NF4 values
// (between code 0 and 1: 0.1519) times its block's absmax, plus the double-quantization
// error of the absmax itself (scale / 2 * the widest gap of the dynamic map near 1, under
// 1% of the absmax range here).
TEST(QuantTest, ErrorWithinHalfACodeGap) {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(64 * 300 + 17);
  for (float &v : x)
    v = normal(rng);
  float maxGap = 0;
  for (int k = 0; k < 15; ++k)
    maxGap = std::max(maxGap, kNf4Code[k + 1] - kNf4Code[k]);
  std::vector<float> y = roundTrip(x, {64, false, 256});
  for (size_t b = 0; b * 64 < x.size(); ++b) {
    float am = 0;
    for (size_t i = b * 64; i < std::min(x.size(), b * 64 + 64); ++i)
      am = std::max(am, std::fabs(x[i]));
    for (size_t i = b * 64; i < std::min(x.size(), b * 64 + 64); ++i)
      ASSERT_LE(std::fabs(y[i] - x[i]), am * maxGap / 2 * (1 + 1e-6f)) << i;
  }
  auto q = lrt::quant::quantizeNf4(x.data(), static_cast<int64_t>(x.size()));
  ASSERT_TRUE(q.isOk());
  std::vector<float> plainAbsmax = lrt::quant::quantizeNf4(x.data(), static_cast<int64_t>(x.size()), {64, false, 256})->absmax;
  std::vector<float> dqAbsmax = q->blockAbsmax();
  for (size_t b = 0; b < dqAbsmax.size(); ++b)
    EXPECT_NEAR(dqAbsmax[b], plainAbsmax[b], 0.01f * q->absmaxScales[b / 256] + 1e-6f) << b;
}

TEST(QuantTest, ClearErrors) {
  std::vector<float> x = {0.5f, std::numeric_limits<float>::quiet_NaN(), 1.0f};
  auto q = lrt::quant::quantizeNf4(x.data(), 3);
  ASSERT_FALSE(q.isOk());
  EXPECT_EQ(q.status().message(), "quantize: weight 1 is not finite (nan)");
  auto bad = lrt::quant::quantizeNf4(x.data(), 1, {0, true, 256});
  EXPECT_FALSE(bad.isOk());
  EXPECT_NE(bad.status().message().find("blockSize=0"), std::string::npos);
  lrt::quant::Nf4Tensor t;
  t.numel = 10;
  t.packed.resize(2);
  float out[10];
  EXPECT_FALSE(lrt::quant::dequantizeNf4(t, out).isOk());
  // All-zero blocks quantize to code 7 and come back as zeros.
  std::vector<float> zeros(130, 0.0f);
  EXPECT_EQ(roundTrip(zeros, {}), zeros);
}

// Int8 per output channel, by hand: row [1, -2, 0.5, 4] has absmax 4, scale 127/4 = 31.75,
// so the products 31.75, -63.5, 15.875, 127 round (ties to even) to 32, -64, 16, 127; a
// zero row stays zero.
TEST(QuantTest, Int8PerChannelByHand) {
  std::vector<float> w = {1.0f, -2.0f, 0.5f, 4.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  auto t = lrt::quant::quantizeInt8PerChannel(w.data(), 2, 4);
  ASSERT_TRUE(t.isOk()) << t.status().message();
  EXPECT_EQ(t->q, (std::vector<int8_t>{32, -64, 16, 127, 0, 0, 0, 0}));
  EXPECT_EQ(t->absmax, (std::vector<float>{4.0f, 0.0f}));
  std::vector<float> y(8);
  ASSERT_TRUE(lrt::quant::dequantizeInt8(*t, y.data()).isOk());
  for (int i = 0; i < 4; ++i) // within half a step (4 / 127 / 2) of the input
    EXPECT_NEAR(y[i], w[i], 2.0f / 127.0f);
  EXPECT_EQ(y[3], 4.0f);
  EXPECT_EQ(y[4], 0.0f);
}

// Int4 group-wise, by hand: group [1, -2, 0.5, 4] has m = 4, d = -0.5, 1/d = -2, so
// w / d + 8.5 = 6.5, 12.5, 7.5, 0.5 and the codes are 6, 12, 7, 0 (bytes 0x6C, 0x70);
// (code - 8) * d gives the input back exactly.
TEST(QuantTest, Int4GroupwiseByHand) {
  std::vector<float> w = {1.0f, -2.0f, 0.5f, 4.0f, -3.0f, 1.5f, 0.0f, 0.75f};
  auto t = lrt::quant::quantizeInt4Groupwise(w.data(), 2, 4, 4);
  ASSERT_TRUE(t.isOk()) << t.status().message();
  // Second group: m = -3, d = 0.375, w / d + 8.5 = 0.5, 12.5, 8.5, 10.5 -> 0, 12, 8, 10.
  EXPECT_EQ(t->packed, (std::vector<uint8_t>{0x6C, 0x70, 0x0C, 0x8A}));
  EXPECT_EQ(t->scales, (std::vector<float>{-0.5f, 0.375f}));
  std::vector<float> y(8);
  ASSERT_TRUE(lrt::quant::dequantizeInt4(*t, y.data()).isOk());
  EXPECT_EQ(y, w);
  auto bad = lrt::quant::quantizeInt4Groupwise(w.data(), 2, 4, 3);
  ASSERT_FALSE(bad.isOk());
  EXPECT_EQ(bad.status().message(), "quantizeInt4Groupwise: group 3 does not divide the input dimension 4");
}
