// SPDX-License-Identifier: Apache-2.0
/// Tests for runtime/Lora: the scale, the adapted layer merged and unmerged (issue #6's
/// worked example, computed by hand below), the unmerge round-trip bound, and merging named
/// adapter tensors. test/e2e/peft_export.py checks merging against the `peft` package.
#include "runtime/Lora.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

namespace lrt {
namespace {

TEST(LoraTest, Scale) {
  // alpha / rank (LoRA paper eq. 3) and alpha / sqrt(rank) (rsLoRA): by hand.
  EXPECT_DOUBLE_EQ(*loraScale(2.0, 1, false), 2.0);
  EXPECT_DOUBLE_EQ(*loraScale(16.0, 8, false), 2.0);
  EXPECT_DOUBLE_EQ(*loraScale(16.0, 16, false), 1.0);
  EXPECT_DOUBLE_EQ(*loraScale(16.0, 16, true), 4.0);
  EXPECT_DOUBLE_EQ(*loraScale(8.0, 4, true), 4.0);
  EXPECT_FALSE(loraScale(16.0, 0, false));
  EXPECT_FALSE(loraScale(NAN, 4, true));
}

// Issue #6: W0 = I (2x2), A = [[1, 1]], B = [[1], [2]], bias_B = [0.5, -0.5], alpha = 2,
// rank = 1, x = [1, 2]. By hand: scale = 2/1 = 2; base x @ I = [1, 2]; x @ A^T = 3,
// (x @ A^T) @ B^T = [3, 6], + bias_B = [3.5, 5.5], * 2 = [7, 11]; y = [8, 13]. Merged:
// W' = I + 2 (B A)^T = [[3, 4], [2, 5]], bias' = 0 + 2 bias_B = [1, -1], and
// x @ W' + bias' = [7, 14] + [1, -1] = [8, 13].
TEST(LoraTest, IssueExampleMergedAndUnmerged) {
  float w[4] = {1, 0, 0, 1};
  float bias[2] = {0, 0};
  const float a[2] = {1, 1};
  const float b[2] = {1, 2};
  const float biasB[2] = {0.5f, -0.5f};
  const float x[2] = {1, 2};
  const LoraDims d{2, 2, 1};
  double scale = *loraScale(2.0, 1, false);
  float y[2];
  ASSERT_TRUE(loraLinear(x, 1, w, bias, a, b, biasB, d, scale, y));
  EXPECT_EQ(y[0], 8.0f);
  EXPECT_EQ(y[1], 13.0f);

  ASSERT_TRUE(mergeLora(w, bias, a, b, biasB, d, scale));
  const float wMerged[4] = {3, 4, 2, 5};
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(w[i], wMerged[i]) << i;
  EXPECT_EQ(bias[0], 1.0f);
  EXPECT_EQ(bias[1], -1.0f);
  // The merged layer alone (no adapter path: zero B, zero bias_B) gives the same output.
  const float zeroB[2] = {0, 0};
  ASSERT_TRUE(loraLinear(x, 1, w, bias, a, zeroB, nullptr, d, scale, y));
  EXPECT_EQ(y[0], 8.0f);
  EXPECT_EQ(y[1], 13.0f);

  ASSERT_TRUE(unmergeLora(w, bias, a, b, biasB, d, scale));
  const float eye[4] = {1, 0, 0, 1};
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(w[i], eye[i]) << i; // small integers: exact
  EXPECT_EQ(bias[0], 0.0f);
  EXPECT_EQ(bias[1], 0.0f);
}

// Random layer, rsLoRA scale: merged forward equals the unmerged one within fp32 rounding
// of the two sums, and unmerge restores W within the documented bound
// |w'' - w| <= 2^-24 (|w'| + |w''|) (two round-to-nearest additions of the same delta).
TEST(LoraTest, RandomMergeUnmergeBound) {
  const LoraDims d{24, 40, 8};
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  auto fill = [&](std::vector<float> &v, float s) {
    for (float &e : v)
      e = s * normal(rng);
  };
  std::vector<float> w(d.in * d.out), bias(d.out), a(d.rank * d.in), b(d.out * d.rank),
      biasB(d.out), x(5 * d.in);
  fill(w, 0.1f), fill(bias, 0.1f), fill(a, 0.5f), fill(b, 0.5f), fill(biasB, 0.5f), fill(x, 1.0f);
  double scale = *loraScale(16.0, d.rank, true);
  EXPECT_DOUBLE_EQ(scale, 16.0 / std::sqrt(8.0));
  std::vector<float> yUnmerged(5 * d.out), yMerged(5 * d.out);
  ASSERT_TRUE(loraLinear(x.data(), 5, w.data(), bias.data(), a.data(), b.data(), biasB.data(),
                         d, scale, yUnmerged.data()));

  std::vector<float> w2 = w, bias2 = bias;
  ASSERT_TRUE(mergeLora(w2.data(), bias2.data(), a.data(), b.data(), biasB.data(), d, scale));
  std::vector<float> zeroB(b.size(), 0.0f);
  ASSERT_TRUE(loraLinear(x.data(), 5, w2.data(), bias2.data(), a.data(), zeroB.data(), nullptr,
                         d, scale, yMerged.data()));
  double maxAbs = 0, maxDiff = 0;
  for (size_t i = 0; i < yMerged.size(); ++i) {
    maxAbs = std::max(maxAbs, double(std::fabs(yUnmerged[i])));
    maxDiff = std::max(maxDiff, double(std::fabs(yMerged[i] - yUnmerged[i])));
  }
  // The merged weights carry one fp32 rounding each; over in = 24 terms of size ~|x w'|
  // that is far below 1e-5 of the output's scale.
  EXPECT_LE(maxDiff, 1e-5 * maxAbs) << maxDiff << " vs " << maxAbs;

  std::vector<float> w3 = w2, bias3 = bias2;
  ASSERT_TRUE(unmergeLora(w3.data(), bias3.data(), a.data(), b.data(), biasB.data(), d, scale));
  const double u = std::ldexp(1.0, -24);
  int changed = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    EXPECT_LE(std::fabs(double(w3[i]) - w[i]), u * (std::fabs(w2[i]) + std::fabs(w3[i])))
        << i << ": " << w[i] << " -> " << w2[i] << " -> " << w3[i];
    changed += w2[i] != w[i];
  }
  EXPECT_GT(changed, int(w.size()) / 2); // the merge really changed W
  for (size_t o = 0; o < bias.size(); ++o)
    EXPECT_LE(std::fabs(double(bias3[o]) - bias[o]), u * (std::fabs(bias2[o]) + std::fabs(bias3[o])));
}

Tensor tensor(const std::string &name, std::vector<int64_t> shape, std::vector<float> v) {
  Tensor t;
  t.name = name;
  t.shape = std::move(shape);
  t.bytes.resize(v.size() * sizeof(float));
  std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
  return t;
}

TEST(LoraTest, MergeNamedAdapters) {
  // The issue's layer as named tensors: layers.0.wq = I, its adapter A, B; scale 2.
  std::vector<Tensor> base = {tensor("embed", {3, 2}, {1, 2, 3, 4, 5, 6}),
                              tensor("layers.0.wq", {2, 2}, {1, 0, 0, 1})};
  std::vector<Tensor> adapters = {tensor("layers.0.wq.lora_A", {1, 2}, {1, 1}),
                                  tensor("layers.0.wq.lora_B", {2, 1}, {1, 2})};
  auto targets = loraTargetsOf(adapters);
  ASSERT_TRUE(targets);
  EXPECT_EQ(*targets, std::vector<std::string>{"layers.0.wq"});
  ASSERT_TRUE(mergeAdapters(base, adapters, 2.0));
  // I + 2 (B A)^T = [[3, 4], [2, 5]] (by hand, as above); embed untouched.
  EXPECT_EQ(base[1].as<float>(), (std::vector<float>{3, 4, 2, 5}));
  EXPECT_EQ(base[0].as<float>(), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  ASSERT_TRUE(mergeAdapters(base, adapters, 2.0, /*unmerge=*/true));
  EXPECT_EQ(base[1].as<float>(), (std::vector<float>{1, 0, 0, 1}));
}

TEST(LoraTest, MergeErrors) {
  std::vector<Tensor> base = {tensor("layers.0.wq", {2, 2}, {1, 0, 0, 1})};
  auto a = tensor("layers.0.wq.lora_A", {1, 2}, {1, 1});
  auto b = tensor("layers.0.wq.lora_B", {2, 1}, {1, 2});
  auto message = [&](std::vector<Tensor> adapters) {
    Status st = mergeAdapters(base, adapters, 1.0);
    return st ? std::string("ok") : st.message();
  };
  EXPECT_NE(message({a}).find("'layers.0.wq.lora_A' has no 'layers.0.wq.lora_B'"),
            std::string::npos)
      << message({a});
  EXPECT_NE(message({b}).find("'layers.0.wq.lora_B' has no 'layers.0.wq.lora_A'"),
            std::string::npos);
  auto wrongA = tensor("layers.0.wq.lora_A", {1, 3}, {1, 1, 1});
  EXPECT_NE(message({wrongA, b}).find("lora_A must be [rank, 2]"), std::string::npos)
      << message({wrongA, b});
  auto otherA = tensor("layers.0.wk.lora_A", {1, 2}, {1, 1});
  auto otherB = tensor("layers.0.wk.lora_B", {2, 1}, {1, 2});
  EXPECT_NE(message({otherA, otherB}).find("targets 'layers.0.wk'"), std::string::npos);
  float w[4] = {1, 0, 0, 1}, one[2] = {1, 1};
  EXPECT_FALSE(mergeLora(w, nullptr, one, one, one, LoraDims{2, 2, 1}, 1.0)); // bias_B, no bias
  EXPECT_FALSE(mergeLora(w, nullptr, one, one, nullptr, LoraDims{2, 2, 0}, 1.0));
  EXPECT_EQ(w[0], 1.0f); // failed calls leave W alone
}

} // namespace
} // namespace lrt
