// SPDX-License-Identifier: Apache-2.0
/// Tests for runtime/Lora: the scale, the adapted layer merged and unmerged (issue #6's
/// worked example, computed by hand below), the unmerge round-trip bound, and merging named
/// adapter tensors, and a stage's merged weights from its frozen buffer (fp32 and NF4) and
/// adapters (mergedStageParams). test/e2e/peft_export.py checks merging against the `peft`
/// package; test/e2e/lora_kv_cache.py generation on merged weights against the unmerged
/// compiled forward.
#include "runtime/Lora.h"

#include "kernels/cpu/Quant.h"
#include "runtime/Frozen.h"

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

/// A LoRA stage's plan: frozen fp32 "norm" [2] at byte 0, frozen "l.w" [2, 2] (fp32) or
/// "l.w" [4, 16] (NF4, one block of 64, no double quantization) at byte 64, and the
/// trainable adapter of l.w: lora_A [1, in] at offset 0 and lora_B [out, 1] after it; scale 2.
StagePlan mergePlan(bool nf4) {
  StagePlan plan;
  plan.stage = "tune";
  plan.nf4 = {nf4, 64, false};
  const int64_t in = nf4 ? 4 : 2, out = nf4 ? 16 : 2;
  ParamInfo norm;
  norm.name = "norm", norm.shape = {2}, norm.numel = 2, norm.frozen = true;
  norm.byteOffset = 0, norm.byteSize = 8;
  ParamInfo w;
  w.name = "l.w", w.shape = {in, out}, w.numel = in * out, w.frozen = true;
  w.byteOffset = 64;
  w.storage = nf4 ? Storage::NF4 : Storage::F32;
  w.byteSize = nf4 ? quant::nf4Layout(64, 64, false).byteSize : 4 * w.numel;
  ParamInfo a;
  a.name = "l.w.lora_A", a.shape = {1, in}, a.numel = in, a.offset = 0;
  ParamInfo b;
  b.name = "l.w.lora_B", b.shape = {out, 1}, b.numel = out, b.offset = in;
  plan.params = {norm, w, a, b};
  plan.numParams = in + out;
  plan.frozenBytes = 64 + w.byteSize;
  plan.lora.enabled = true;
  plan.lora.rank = 1;
  plan.lora.alpha = 2;
  plan.lora.scale = 2.0;
  plan.lora.targets = {"l.w"};
  return plan;
}

/// The model's own layout (no adapter): norm at 0, l.w after it.
std::vector<ParamInfo> plainLayout(const StagePlan &plan) {
  ParamInfo norm = plan.params[0], w = plan.params[1];
  norm.frozen = w.frozen = false;
  norm.offset = 0, w.offset = 2;
  return {norm, w};
}

TEST(LoraTest, MergedStageParamsIssueExample) {
  // The issue's layer in a stage: frozen W = I and norm [5, 6], trainable A = [[1, 1]],
  // B = [[1], [2]], scale 2: by hand (as above) W' = [[3, 4], [2, 5]], the norm copied.
  StagePlan plan = mergePlan(false);
  std::vector<uint8_t> frozen(plan.frozenBytes);
  const float norm[2] = {5, 6}, w[4] = {1, 0, 0, 1};
  ASSERT_TRUE(storeFrozenParam(plan.params[0], plan.nf4, norm, frozen.data(), plan.frozenBytes));
  ASSERT_TRUE(storeFrozenParam(plan.params[1], plan.nf4, w, frozen.data(), plan.frozenBytes));
  const std::vector<float> params = {1, 1, 1, 2}; // A, then B
  auto merged = mergedStageParams(plan, params.data(), frozen.data(), plainLayout(plan), 6);
  ASSERT_TRUE(merged) << merged.status().message();
  EXPECT_EQ(*merged, (std::vector<float>{5, 6, 3, 4, 2, 5}));
}

TEST(LoraTest, MergedStageParamsNf4Base) {
  // An NF4 base whose weights lie on the NF4 grid with absmax 1 (the QLoRA paper's table,
  // appendix E) dequantizes exactly; A = [1, 2, 0, 0], B = e_3 (out 3 only), scale 2 adds
  // 2 * A[i] * B[o] to W[i, o]: +2 at (0, 3), +4 at (1, 3), by hand.
  const float grid[16] = {-1.0f, -0.6961928009986877f, -0.5250730514526367f,
                          -0.39491748809814453f, -0.28444138169288635f, -0.18477343022823334f,
                          -0.09105003625154495f, 0.0f, 0.07958029955625534f,
                          0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
                          0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};
  StagePlan plan = mergePlan(true);
  std::vector<uint8_t> frozen(plan.frozenBytes);
  std::vector<float> w(64);
  for (int i = 0; i < 64; ++i)
    w[i] = grid[(i * 7) % 16];
  const float norm[2] = {5, 6};
  ASSERT_TRUE(storeFrozenParam(plan.params[0], plan.nf4, norm, frozen.data(), plan.frozenBytes));
  ASSERT_TRUE(storeFrozenParam(plan.params[1], plan.nf4, w.data(), frozen.data(),
                               plan.frozenBytes));
  std::vector<float> params(20, 0.0f);
  params[0] = 1, params[1] = 2;  // A [1, 4]
  params[4 + 3] = 1;             // B [16, 1]
  auto merged = mergedStageParams(plan, params.data(), frozen.data(), plainLayout(plan), 66);
  ASSERT_TRUE(merged) << merged.status().message();
  std::vector<float> want = {5, 6};
  want.insert(want.end(), w.begin(), w.end());
  want[2 + 0 * 16 + 3] += 2.0f;
  want[2 + 1 * 16 + 3] += 4.0f;
  EXPECT_EQ(*merged, want);
}

TEST(LoraTest, MergedStageParamsErrors) {
  StagePlan plan = mergePlan(false);
  std::vector<uint8_t> frozen(plan.frozenBytes);
  const std::vector<float> params = {1, 1, 1, 2};
  auto message = [&](const StagePlan &p, const std::vector<ParamInfo> &layout, int64_t n) {
    Status st = checkMergedLayout(p, layout, n);
    return st ? std::string("ok") : st.message();
  };
  std::vector<ParamInfo> layout = plainLayout(plan);
  EXPECT_EQ(message(plan, layout, 6), "ok");
  EXPECT_NE(message(plan, layout, 5).find("'l.w' [2, +4) lies outside the 5 parameters"),
            std::string::npos)
      << message(plan, layout, 5);
  std::vector<ParamInfo> other = layout;
  other[0].name = "final_norm";
  EXPECT_NE(message(plan, other, 6).find("'final_norm' (2 values) of the model without "
                                         "adapter is not a parameter of stage 'tune'"),
            std::string::npos)
      << message(plan, other, 6);
  StagePlan noB = plan;
  noB.params.pop_back();
  EXPECT_NE(message(noB, layout, 6).find("'l.w' has no trainable 'l.w.lora_A' and 'l.w.lora_B'"),
            std::string::npos)
      << message(noB, layout, 6);
  StagePlan badA = plan;
  badA.params[2].shape = {1, 3};
  EXPECT_NE(message(badA, layout, 6).find("lora_A must be [rank, in]"), std::string::npos)
      << message(badA, layout, 6);
  EXPECT_FALSE(mergedStageParams(plan, params.data(), nullptr, layout, 6)); // no frozen base
}

} // namespace
} // namespace lrt
