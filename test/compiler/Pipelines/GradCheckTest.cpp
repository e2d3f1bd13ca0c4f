// SPDX-License-Identifier: Apache-2.0
/// End-to-end checks of the compiler on the CPU: every forward op's gradient rule (through
/// llmp-autodiff, the lowering and the JIT) against central finite differences, and one
/// exact AdamW step of grad_step + apply_step against a hand computation.
///
/// Finite differences: each case computes f(x) = mean(op(x...) * r) with a fixed random r,
/// evaluated by the compiled fp32 eval_step. With h = 1e-2 the truncation error is O(h^2)
/// and the fp32 rounding error of (f(x+h) - f(x-h)) / 2h is about 1e-7 / h = 1e-5, so the
/// test accepts |analytic - fd| <= 2e-3 + 2e-2 |fd|.
#include "compiler/Pipelines/Pipelines.h"
#include "compiler/Target/CPU/JIT.h"
#include "test/compiler/CompiledTestUtil.h"
#include "kernels/cpu/Quant.h"
#include "runtime/Data.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <cstring>
#include <random>
#include <sstream>

using namespace mlir;

namespace {

/// A compiled module with its step functions.
using llmp_test::Compiled;

/// Compiles `src` to the JIT; `atLinalg`, when given, edits the module at the linalg phase.
std::unique_ptr<Compiled> compile(const std::string &src,
                                  const std::function<void(ModuleOp)> &atLinalg = {}) {
  auto c = std::make_unique<Compiled>();
  OwningOpRef<ModuleOp> module = llmp_test::parseModule(*c, src);
  if (!module)
    return nullptr;
  if (atLinalg) {
    if (failed(llmp::lowerToPhase(*module, llmp::Phase::Linalg)))
      return nullptr;
    atLinalg(*module);
    if (failed(llmp::lowerToPhase(*module, llmp::Phase::LLVM, llmp::Phase::Linalg)))
      return nullptr;
  } else if (failed(llmp::lowerToPhase(*module, llmp::Phase::LLVM))) {
    return nullptr;
  }
  if (!llmp_test::jitCompile(*c, *module))
    return nullptr;
  return c;
}

/// `dense<"0x...">` of `n` raw bytes (little-endian element values), any shape and type.
std::string denseHexBytes(const unsigned char *bytes, size_t n) {
  std::ostringstream os;
  os << "dense<\"0x";
  for (size_t i = 0; i < n; ++i) {
    static const char *hex = "0123456789ABCDEF";
    os << hex[bytes[i] >> 4] << hex[bytes[i] & 15];
  }
  os << "\">";
  return os.str();
}

/// `dense<"0x...">` for `values` (little-endian f32 bytes), any shape.
std::string denseHex(const std::vector<float> &values) {
  return denseHexBytes(reinterpret_cast<const unsigned char *>(values.data()), 4 * values.size());
}

int64_t numel(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

std::string tensorType(const std::vector<int64_t> &shape, const char *elt = "f32") {
  std::string s = "tensor<";
  for (int64_t d : shape)
    s += std::to_string(d) + "x";
  return s + elt + ">";
}

/// One gradient-check case: parameters %p0.. and the body defining %y.
struct Case {
  std::string name;
  std::vector<std::vector<int64_t>> params;
  std::string body;
  std::vector<int64_t> yShape;
};

constexpr int64_t kB = 2, kT = 3, kVocab = 7;
const int32_t kTokens[kB * kT] = {1, 4, 1, 6, 0, 4};
const int32_t kTargets[kB * kT] = {2, 0, 6, 3, 3, 5};

/// The module of one case: @loss(params..., tokens, targets) = mean(y * r).
std::string caseModule(const Case &c, std::mt19937 &rng) {
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  std::ostringstream os;
  int64_t offset = 0;
  std::ostringstream args;
  for (size_t i = 0; i < c.params.size(); ++i) {
    args << "%p" << i << ": " << tensorType(c.params[i]) << " {llmp.param = \"p" << i
         << "\", llmp.offset = " << offset << " : i64}, ";
    offset += numel(c.params[i]);
  }
  std::vector<float> r(numel(c.yShape));
  for (float &v : r)
    v = uni(rng);
  std::string yTy = tensorType(c.yShape);
  os << "module attributes {llmp.num_params = " << offset << " : i64} {\n"
     << "func.func @loss(" << args.str() << "%tokens: tensor<2x3xi32>, %targets: tensor<2x3xi32>)"
     << " -> tensor<f32> attributes {llmp.differentiate} {\n"
     << c.body << "\n"
     << "%gc_r = arith.constant " << denseHex(r) << " : " << yTy << "\n"
     << "%gc_yr = llmp.mul %y, %gc_r : (" << yTy << ", " << yTy << ") -> " << yTy << "\n"
     << "%gc_l = llmp.mean %gc_yr : (" << yTy << ") -> tensor<f32>\n"
     << "return %gc_l : tensor<f32>\n}\n}\n";
  return os.str();
}

/// Buffers of one train/eval call.
struct Buffers {
  std::vector<float> params, grads, m, v, hyper = std::vector<float>(8, 0.0f),
                                          metrics = std::vector<float>(4, 0.0f);
  std::vector<int32_t> tokens{kTokens, kTokens + kB * kT}, targets{kTargets, kTargets + kB * kT};

  explicit Buffers(int64_t n) : params(n), grads(n), m(n), v(n) {}

  float eval(const lrt::StepFunctions &f) {
    auto p = lrt::viewOf(params.data(), {(int64_t)params.size()});
    auto tk = lrt::viewOf(tokens.data(), {kB, kT});
    auto tg = lrt::viewOf(targets.data(), {kB, kT});
    auto mt = lrt::viewOf(metrics.data(), {4});
    f.evalStep(&p, &tk, &tg, &mt);
    return metrics[0];
  }

  /// grad_step: adds hyper[kHyperGradScale] * the gradient to `grads`.
  void grad(const lrt::StepFunctions &f) {
    int64_t n = params.size();
    auto p = lrt::viewOf(params.data(), {n});
    auto g = lrt::viewOf(grads.data(), {n});
    auto tk = lrt::viewOf(tokens.data(), {kB, kT});
    auto tg = lrt::viewOf(targets.data(), {kB, kT});
    auto h = lrt::viewOf(hyper.data(), {8});
    auto mt = lrt::viewOf(metrics.data(), {4});
    f.gradStep(&p, &g, &tk, &tg, &h, &mt);
  }

  /// grad_step into zeroed gradients, then apply_step.
  void train(const lrt::StepFunctions &f) {
    int64_t n = params.size();
    std::fill(grads.begin(), grads.end(), 0.0f);
    grad(f);
    auto p = lrt::viewOf(params.data(), {n});
    auto g = lrt::viewOf(grads.data(), {n});
    auto mm = lrt::viewOf(m.data(), {n});
    auto vv = lrt::viewOf(v.data(), {n});
    auto h = lrt::viewOf(hyper.data(), {8});
    auto mt = lrt::viewOf(metrics.data(), {4});
    f.applyStep(&p, &g, &mm, &vv, &h, &mt);
  }
};

void checkGradients(const Case &c) {
  SCOPED_TRACE(c.name);
  std::mt19937 rng(1234);
  std::string src = caseModule(c, rng);
  auto compiled = compile(src);
  ASSERT_TRUE(compiled) << src;
  ASSERT_TRUE(compiled->fns.gradStep && compiled->fns.applyStep && compiled->fns.evalStep);
  int64_t n = 0;
  for (auto &s : c.params)
    n += numel(s);
  Buffers buf(n);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  for (float &x : buf.params)
    x = uni(rng);
  // lr = 0 leaves the parameters unchanged; grads receives the analytic gradient.
  buf.hyper = {0.0f, 0.9f, 0.999f, 1e-8f, 0.0f, 0.0f, 1.0f, 1.0f};
  std::vector<float> before = buf.params;
  buf.train(compiled->fns);
  ASSERT_EQ(buf.params, before);
  float loss = buf.metrics[0];
  EXPECT_NEAR(buf.eval(compiled->fns), loss, 1e-6f);
  const float h = 1e-2f;
  for (int64_t i = 0; i < n; ++i) {
    float x = buf.params[i];
    buf.params[i] = x + h;
    float fp = buf.eval(compiled->fns);
    buf.params[i] = x - h;
    float fm = buf.eval(compiled->fns);
    buf.params[i] = x;
    float fd = (fp - fm) / (2 * h);
    EXPECT_NEAR(buf.grads[i], fd, 2e-3f + 2e-2f * std::fabs(fd)) << "element " << i;
  }
}

#define MM(a, b, y, attrs)                                                                 \
  "%y = llmp.matmul %p0, %p1 " attrs " : (" a ", " b ") -> " y

TEST(GradCheck, Matmul) {
  checkGradients({"nn", {{3, 4}, {4, 5}}, MM("tensor<3x4xf32>", "tensor<4x5xf32>", "tensor<3x5xf32>", ""), {3, 5}});
  checkGradients({"ta", {{4, 3}, {4, 5}}, MM("tensor<4x3xf32>", "tensor<4x5xf32>", "tensor<3x5xf32>", "{transpose_a}"), {3, 5}});
  checkGradients({"tb", {{3, 4}, {5, 4}}, MM("tensor<3x4xf32>", "tensor<5x4xf32>", "tensor<3x5xf32>", "{transpose_b}"), {3, 5}});
  checkGradients({"tt", {{4, 3}, {5, 4}}, MM("tensor<4x3xf32>", "tensor<5x4xf32>", "tensor<3x5xf32>", "{transpose_a, transpose_b}"), {3, 5}});
}

TEST(GradCheck, Transpose) {
  checkGradients({"transpose", {{3, 4}},
                  "%y = llmp.transpose %p0 : (tensor<3x4xf32>) -> tensor<4x3xf32>", {4, 3}});
  checkGradients({"transpose+matmul", {{3, 4}, {5, 4}},
                  "%t = llmp.transpose %p1 : (tensor<5x4xf32>) -> tensor<4x5xf32>\n"
                  "%y = llmp.matmul %p0, %t : (tensor<3x4xf32>, tensor<4x5xf32>) -> tensor<3x5xf32>",
                  {3, 5}});
}

TEST(GradCheck, Reshape) {
  checkGradients({"reshape", {{2, 6}},
                  "%y = llmp.reshape %p0 : (tensor<2x6xf32>) -> tensor<3x4xf32>", {3, 4}});
}

TEST(GradCheck, AddMul) {
  checkGradients({"add", {{2, 3}, {2, 3}},
                  "%y = llmp.add %p0, %p1 : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>", {2, 3}});
  checkGradients({"mul", {{2, 3}, {2, 3}},
                  "%y = llmp.mul %p0, %p1 : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>", {2, 3}});
  // Repeated uses: the gradients of %p0 must be summed.
  checkGradients({"square+add", {{2, 3}},
                  "%s = llmp.mul %p0, %p0 : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>\n"
                  "%y = llmp.add %s, %p0 : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>", {2, 3}});
}

TEST(GradCheck, Silu) {
  checkGradients({"silu", {{2, 5}}, "%y = llmp.silu %p0 : (tensor<2x5xf32>) -> tensor<2x5xf32>", {2, 5}});
}

TEST(GradCheck, RMSNorm) {
  checkGradients({"rmsnorm", {{2, 3, 4}, {4}},
                  "%y = llmp.rmsnorm %p0, %p1 {eps = 1.0e-05 : f32} : (tensor<2x3x4xf32>, tensor<4xf32>) -> tensor<2x3x4xf32>",
                  {2, 3, 4}});
}

TEST(GradCheck, Rope) {
  checkGradients({"rope", {{2, 3, 8}},
                  "%y = llmp.rope %p0 {heads = 2 : i64, theta = 1.0e+01 : f32} : (tensor<2x3x8xf32>) -> tensor<2x3x8xf32>",
                  {2, 3, 8}});
}

TEST(GradCheck, Attention) {
  const char *ty = "tensor<2x3x8xf32>";
  std::string sig = std::string(" : (") + ty + ", " + ty + ", " + ty + ") -> " + ty;
  checkGradients({"causal", {{2, 3, 8}, {2, 3, 8}, {2, 3, 8}},
                  "%y = llmp.attention %p0, %p1, %p2 {heads = 2 : i64, causal}" + sig, {2, 3, 8}});
  checkGradients({"full", {{2, 3, 8}, {2, 3, 8}, {2, 3, 8}},
                  "%y = llmp.attention %p0, %p1, %p2 {heads = 2 : i64}" + sig, {2, 3, 8}});
}

/// Grouped-query attention: query head h uses key/value head h / (heads / kv_heads), so the
/// gradients of k and v sum over the query heads of their group.
TEST(GradCheck, GroupedQueryAttention) {
  auto attn = [](int64_t kv, const char *attrs) {
    std::string qt = "tensor<2x3x8xf32>", kt = tensorType({2, 3, 2 * kv});
    std::string y = "%y = llmp.attention %p0, %p1, %p2 {heads = 4 : i64, kv_heads = " +
                    std::to_string(kv) + " : i64" + attrs + "} : (" + qt + ", " + kt + ", " +
                    kt + ") -> " + qt;
    return Case{"gqa kv_heads=" + std::to_string(kv) + attrs, {{2, 3, 8}, {2, 3, 2 * kv}, {2, 3, 2 * kv}}, y, {2, 3, 8}};
  };
  checkGradients(attn(2, ", causal"));
  checkGradients(attn(2, ""));
  checkGradients(attn(1, ", causal")); // multi-query attention
}

/// Packed rows: documents [0, 0, 1, 1] and [0, 0, 0, 1] of length 4, block-diagonal causal
/// (or block-diagonal only) attention, with and without grouped-query heads.
TEST(GradCheck, PackedAttention) {
  const std::string seg =
      "%seg = arith.constant dense<[[0, 0, 1, 1], [0, 0, 0, 1]]> : tensor<2x4xi32>\n";
  auto attn = [&](int64_t heads, int64_t kv, const char *causal) {
    std::string qt = "tensor<2x4x8xf32>", kt = tensorType({2, 4, 8 / heads * kv});
    std::string y = seg + "%y = llmp.attention %p0, %p1, %p2 segments %seg {heads = " +
                    std::to_string(heads) + " : i64, kv_heads = " + std::to_string(kv) +
                    " : i64" + causal + "} : (" + qt + ", " + kt + ", " + kt +
                    ", tensor<2x4xi32>) -> " + qt;
    return Case{"packed heads=" + std::to_string(heads) + " kv_heads=" + std::to_string(kv) + causal,
                {{2, 4, 8}, {2, 4, 8 / heads * kv}, {2, 4, 8 / heads * kv}}, y, {2, 4, 8}};
  };
  checkGradients(attn(2, 2, ", causal"));
  checkGradients(attn(4, 2, ", causal"));
  checkGradients(attn(2, 2, ""));
}

/// RoPE at per-document positions (llmp.positions of the segments): [0, 1, 0, 1] and
/// [0, 1, 2, 0].
TEST(GradCheck, RopePositions) {
  checkGradients({"rope positions", {{2, 4, 8}},
                  "%seg = arith.constant dense<[[0, 0, 1, 1], [0, 0, 0, 1]]> : tensor<2x4xi32>\n"
                  "%pos = llmp.positions %seg : (tensor<2x4xi32>) -> tensor<2x4xi32>\n"
                  "%y = llmp.rope %p0 positions %pos {heads = 2 : i64, theta = 1.0e+01 : f32} : (tensor<2x4x8xf32>, tensor<2x4xi32>) -> tensor<2x4x8xf32>",
                  {2, 4, 8}});
}

TEST(GradCheck, CrossEntropy) {
  checkGradients({"cross_entropy", {{2, 3, 7}},
                  "%y = llmp.cross_entropy %p0, %targets : (tensor<2x3x7xf32>, tensor<2x3xi32>) -> tensor<2x3xf32>",
                  {2, 3}});
}

// Targets of -100 (PyTorch's ignore_index) add 0 to the loss and get no gradient: the
// finite differences of eval_step see no dependence on their logits either.
TEST(GradCheck, CrossEntropyIgnoresTargets) {
  checkGradients({"cross_entropy-ignore", {{2, 3, 7}},
                  "%t = arith.constant dense<[[2, -100, 6], [-100, -100, 5]]> : tensor<2x3xi32>\n"
                  "%y = llmp.cross_entropy %p0, %t : (tensor<2x3x7xf32>, tensor<2x3xi32>) -> tensor<2x3xf32>",
                  {2, 3}});
  checkGradients({"target_mean", {{2, 3}},
                  "%t = arith.constant dense<[[2, -100, 6], [-100, 0, 5]]> : tensor<2x3xi32>\n"
                  "%m = llmp.target_mean %p0, %t : (tensor<2x3xf32>, tensor<2x3xi32>) -> tensor<f32>\n"
                  "%y = llmp.mul %m, %m : (tensor<f32>, tensor<f32>) -> tensor<f32>",
                  {}});
}

// V = 32, a multiple of the 16 lanes of the one-pass log-sum-exp (LLMPToLinalg.cpp,
// logSumExpOnePass), which the cases above (V = 7) do not reach.
TEST(GradCheck, CrossEntropyOnePassLogSumExp) {
  checkGradients({"cross_entropy-lanes", {{2, 3, 32}},
                  "%t = arith.constant dense<[[2, -100, 31], [16, 0, 17]]> : tensor<2x3xi32>\n"
                  "%y = llmp.cross_entropy %p0, %t : (tensor<2x3x32xf32>, tensor<2x3xi32>) -> tensor<2x3xf32>",
                  {2, 3}});
}

/// next_token's loss (target_mean of cross_entropy) over logits (1, 4, 48) taken as the
/// parameters, through eval_step and grad_step, against the same loss and its gradient
/// (softmax - onehot) / count evaluated in double. The rows stress the one-pass online
/// log-sum-exp: increasing logits (the running max changes at every element), decreasing
/// ones, a wide random row, and one logit of 80 among -80s (exp(-160) underflows to 0);
/// the last target is -100.
TEST(CrossEntropy, OnePassLogSumExpMatchesDoubleReference) {
  constexpr int64_t T = 4, V = 48;
  const char *src = R"(
  module attributes {llmp.num_params = 192 : i64} {
    func.func @loss(%lg: tensor<1x4x48xf32> {llmp.param = "logits", llmp.offset = 0 : i64},
                    %tokens: tensor<1x4xi32>, %targets: tensor<1x4xi32>) -> tensor<f32>
        attributes {llmp.differentiate} {
      %ce = llmp.cross_entropy %lg, %targets : (tensor<1x4x48xf32>, tensor<1x4xi32>) -> tensor<1x4xf32>
      %l = llmp.target_mean %ce, %targets : (tensor<1x4xf32>, tensor<1x4xi32>) -> tensor<f32>
      return %l : tensor<f32>
    }
  })";
  auto c = compile(src);
  ASSERT_TRUE(c && c->fns.gradStep && c->fns.evalStep);
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 10.0f);
  std::vector<float> logits(T * V);
  for (int64_t v = 0; v < V; ++v) {
    logits[0 * V + v] = 0.5f * v - 10.0f;
    logits[1 * V + v] = 12.0f - 0.75f * v;
    logits[2 * V + v] = normal(rng);
    logits[3 * V + v] = v == 29 ? 80.0f : -80.0f;
  }
  std::vector<int32_t> tokens(T, 0), targets = {47, 0, 5, -100};
  // Reference in double: loss = mean over the 3 counted rows of lse - logit[target].
  double loss = 0;
  std::vector<double> grad(T * V, 0.0);
  for (int64_t t = 0; t < 3; ++t) {
    double mx = -INFINITY, sum = 0;
    for (int64_t v = 0; v < V; ++v)
      mx = std::max(mx, (double)logits[t * V + v]);
    for (int64_t v = 0; v < V; ++v)
      sum += std::exp(logits[t * V + v] - mx);
    loss += (mx + std::log(sum) - logits[t * V + targets[t]]) / 3;
    for (int64_t v = 0; v < V; ++v)
      grad[t * V + v] = (std::exp(logits[t * V + v] - mx) / sum - (v == targets[t])) / 3;
  }
  std::vector<float> grads(T * V, 0.0f), hyper(8, 0.0f), metrics(4, 0.0f);
  hyper[lrt::kHyperGradScale] = 1.0f;
  auto p = lrt::viewOf(logits.data(), {T * V});
  auto g = lrt::viewOf(grads.data(), {T * V});
  auto tk = lrt::viewOf(tokens.data(), {1, T});
  auto tg = lrt::viewOf(targets.data(), {1, T});
  auto h = lrt::viewOf(hyper.data(), {8});
  auto mt = lrt::viewOf(metrics.data(), {4});
  c->fns.evalStep(&p, &tk, &tg, &mt);
  EXPECT_NEAR(metrics[lrt::kMetricLoss], loss, 1e-5 * std::fabs(loss));
  c->fns.gradStep(&p, &g, &tk, &tg, &h, &mt);
  EXPECT_NEAR(metrics[lrt::kMetricLoss], loss, 1e-5 * std::fabs(loss));
  for (int64_t i = 0; i < T * V; ++i)
    EXPECT_NEAR(grads[i], grad[i], 1e-6) << "row " << i / V << " vocab " << i % V;
}

TEST(GradCheck, Embedding) {
  // Token 1 and 4 repeat: their rows accumulate two gradients (scatter-add).
  checkGradients({"embedding", {{7, 4}},
                  "%y = llmp.embedding %p0, %tokens : (tensor<7x4xf32>, tensor<2x3xi32>) -> tensor<2x3x4xf32>",
                  {2, 3, 4}});
}

TEST(GradCheck, Mean) {
  checkGradients({"mean-of-mean", {{2, 3}},
                  "%m = llmp.mean %p0 : (tensor<2x3xf32>) -> tensor<f32>\n"
                  "%y = llmp.mul %m, %m : (tensor<f32>, tensor<f32>) -> tensor<f32>",
                  {}});
}

TEST(GradCheck, UnusedParamGetsZero) {
  checkGradients({"unused", {{2, 3}, {4}},
                  "%y = llmp.silu %p0 : (tensor<2x3xf32>) -> tensor<2x3xf32>", {2, 3}});
}

/// A small transformer block end to end: every op together, FD on all parameters.
TEST(GradCheck, TinyModel) {
  const char *body = R"(
    %x = llmp.embedding %p0, %tokens : (tensor<7x8xf32>, tensor<2x3xi32>) -> tensor<2x3x8xf32>
    %h = llmp.rmsnorm %x, %p1 {eps = 1.0e-5 : f32} : (tensor<2x3x8xf32>, tensor<8xf32>) -> tensor<2x3x8xf32>
    %h2 = llmp.reshape %h : (tensor<2x3x8xf32>) -> tensor<6x8xf32>
    %q2 = llmp.matmul %h2, %p2 {transpose_b} : (tensor<6x8xf32>, tensor<8x8xf32>) -> tensor<6x8xf32>
    %k2 = llmp.matmul %h2, %p3 : (tensor<6x8xf32>, tensor<8x8xf32>) -> tensor<6x8xf32>
    %q = llmp.reshape %q2 : (tensor<6x8xf32>) -> tensor<2x3x8xf32>
    %k = llmp.reshape %k2 : (tensor<6x8xf32>) -> tensor<2x3x8xf32>
    %qr = llmp.rope %q {heads = 2 : i64, theta = 100.0 : f32} : (tensor<2x3x8xf32>) -> tensor<2x3x8xf32>
    %kr = llmp.rope %k {heads = 2 : i64, theta = 100.0 : f32} : (tensor<2x3x8xf32>) -> tensor<2x3x8xf32>
    %a = llmp.attention %qr, %kr, %h {heads = 2 : i64, causal} : (tensor<2x3x8xf32>, tensor<2x3x8xf32>, tensor<2x3x8xf32>) -> tensor<2x3x8xf32>
    %r = llmp.add %x, %a : (tensor<2x3x8xf32>, tensor<2x3x8xf32>) -> tensor<2x3x8xf32>
    %r2 = llmp.reshape %r : (tensor<2x3x8xf32>) -> tensor<6x8xf32>
    %f = llmp.silu %r2 : (tensor<6x8xf32>) -> tensor<6x8xf32>
    %lg = llmp.matmul %f, %p0 {transpose_b} : (tensor<6x8xf32>, tensor<7x8xf32>) -> tensor<6x7xf32>
    %lg3 = llmp.reshape %lg : (tensor<6x7xf32>) -> tensor<2x3x7xf32>
    %y = llmp.cross_entropy %lg3, %targets : (tensor<2x3x7xf32>, tensor<2x3xi32>) -> tensor<2x3xf32>)";
  checkGradients({"tiny", {{7, 8}, {8}, {8, 8}, {8, 8}}, body, {2, 3}});
}

/// loss = mean(w^2) + mean(b) over w f32[2, 2] (decayed) and b f32[2].
const char *kQuadraticLoss = R"(
  module attributes {llmp.num_params = 6 : i64} {
    func.func @loss(%w: tensor<2x2xf32> {llmp.param = "w", llmp.offset = 0 : i64, llmp.decay},
                    %b: tensor<2xf32> {llmp.param = "b", llmp.offset = 4 : i64},
                    %tokens: tensor<2x3xi32>, %targets: tensor<2x3xi32>) -> tensor<f32>
        attributes {llmp.differentiate} {
      %ww = llmp.mul %w, %w : (tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<2x2xf32>
      %lw = llmp.mean %ww : (tensor<2x2xf32>) -> tensor<f32>
      %lb = llmp.mean %b : (tensor<2xf32>) -> tensor<f32>
      %l = llmp.add %lw, %lb : (tensor<f32>, tensor<f32>) -> tensor<f32>
      return %l : tensor<f32>
    }
  })";

/// grad_step + apply_step on two parameters (one decayed), from non-zero moments at step
/// t = 3 with clipping active, against the AdamW formulas evaluated in double precision.
TEST(TrainStep, AdamWMatchesHandComputation) {
  auto compiled = compile(kQuadraticLoss);
  ASSERT_TRUE(compiled);
  Buffers buf(6);
  buf.params = {0.5f, -1.0f, 2.0f, 0.25f, 3.0f, -2.0f};
  buf.m = {0.1f, -0.2f, 0.3f, 0.0f, 0.05f, -0.05f};
  buf.v = {0.01f, 0.02f, 0.03f, 0.04f, 0.001f, 0.002f};
  const double lr = 0.1, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1, clip = 0.5, t = 3;
  buf.hyper = {(float)lr, (float)b1, (float)b2, (float)eps, (float)wd, (float)clip, (float)t, 1.0f};
  std::vector<float> p0 = buf.params, m0 = buf.m, v0 = buf.v;
  buf.train(compiled->fns);

  // Hand computation: loss = mean(w^2) + mean(b); dL/dw = 2w/4, dL/db = 1/2.
  double loss = 0, sq = 0;
  std::vector<double> g(6);
  for (int i = 0; i < 4; ++i) {
    loss += p0[i] * (double)p0[i] / 4;
    g[i] = 2.0 * p0[i] / 4;
  }
  loss += (p0[4] + (double)p0[5]) / 2;
  g[4] = g[5] = 0.5;
  for (double x : g)
    sq += x * x;
  double norm = std::sqrt(sq), factor = std::min(1.0, clip / (norm + 1e-6));
  EXPECT_NEAR(buf.metrics[0], loss, 1e-5);
  EXPECT_NEAR(buf.metrics[1], norm, 1e-5);
  for (int i = 0; i < 6; ++i) {
    SCOPED_TRACE(i);
    double gc = g[i] * factor;
    double m = b1 * m0[i] + (1 - b1) * gc, v = b2 * v0[i] + (1 - b2) * gc * gc;
    double mhat = m / (1 - std::pow(b1, t)), vhat = v / (1 - std::pow(b2, t));
    double decay = i < 4 ? wd : 0.0;
    double p = p0[i] - lr * (mhat / (std::sqrt(vhat) + eps) + decay * p0[i]);
    EXPECT_NEAR(buf.grads[i], g[i], 1e-6);
    EXPECT_NEAR(buf.m[i], m, 1e-6);
    EXPECT_NEAR(buf.v[i], v, 1e-7);
    EXPECT_NEAR(buf.params[i], p, 1e-5);
  }
}

/// grad_step adds scale * gradient to what `grads` holds (accumulation), reports the
/// unscaled loss and counts the targets that are not -100; apply_step is not involved.
TEST(GradStep, AccumulatesScaledGradient) {
  auto compiled = compile(kQuadraticLoss);
  ASSERT_TRUE(compiled);
  Buffers buf(6);
  buf.params = {0.5f, -1.0f, 2.0f, 0.25f, 3.0f, -2.0f};
  std::vector<float> before = {1, 2, 3, 4, 5, 6};
  buf.grads = before;
  buf.targets = {2, -100, 6, 3, -100, 5};
  buf.hyper[lrt::kHyperGradScale] = 0.25f;
  buf.grad(compiled->fns);
  // By hand: loss = mean(w^2) + mean(b) = (0.25 + 1 + 4 + 0.0625) / 4 + 0.5 = 1.828125;
  // dL/dw = w / 2, dL/db = 1/2; 4 of the 6 targets are not -100.
  EXPECT_NEAR(buf.metrics[lrt::kMetricLoss], 1.828125f, 1e-6f);
  EXPECT_EQ(buf.metrics[lrt::kMetricTokens], 4.0f);
  const float grad[6] = {0.25f, -0.5f, 1.0f, 0.125f, 0.5f, 0.5f};
  for (int i = 0; i < 6; ++i)
    EXPECT_NEAR(buf.grads[i], before[i] + 0.25f * grad[i], 1e-6f) << i;
  EXPECT_EQ(buf.params, (std::vector<float>{0.5f, -1.0f, 2.0f, 0.25f, 3.0f, -2.0f}));
}

/// A bigram "model" whose logits are embedding rows, with next_token's loss
/// (target_mean of cross_entropy), for loss-semantics checks on one row of 4 tokens.
const char *kBigramLoss = R"(
  module attributes {llmp.num_params = 8 : i64} {
    func.func @loss(%w: tensor<4x2xf32> {llmp.param = "w", llmp.offset = 0 : i64},
                    %tokens: tensor<1x4xi32>, %targets: tensor<1x4xi32>) -> tensor<f32>
        attributes {llmp.differentiate} {
      %lg = llmp.embedding %w, %tokens : (tensor<4x2xf32>, tensor<1x4xi32>) -> tensor<1x4x2xf32>
      %ce = llmp.cross_entropy %lg, %targets : (tensor<1x4x2xf32>, tensor<1x4xi32>) -> tensor<1x4xf32>
      %l = llmp.target_mean %ce, %targets : (tensor<1x4xf32>, tensor<1x4xi32>) -> tensor<f32>
      return %l : tensor<f32>
    }
  })";

/// One grad_step of kBigramLoss on one row; returns {loss, target tokens}.
std::pair<float, float> bigramGradStep(const lrt::StepFunctions &f, std::vector<float> &params,
                                       std::vector<float> &grads, std::vector<int32_t> tokens,
                                       std::vector<int32_t> targets, float scale) {
  std::vector<float> hyper(8, 0.0f), metrics(4, -1.0f);
  hyper[lrt::kHyperGradScale] = scale;
  auto p = lrt::viewOf(params.data(), {8});
  auto g = lrt::viewOf(grads.data(), {8});
  auto tk = lrt::viewOf(tokens.data(), {1, 4});
  auto tg = lrt::viewOf(targets.data(), {1, 4});
  auto h = lrt::viewOf(hyper.data(), {8});
  auto mt = lrt::viewOf(metrics.data(), {4});
  f.gradStep(&p, &g, &tk, &tg, &h, &mt);
  return {metrics[lrt::kMetricLoss], metrics[lrt::kMetricTokens]};
}

/// Issue #5: gradient accumulation divides by the total number of target tokens. Token 0's
/// logits [0, d4] with target 0 have cross-entropy log(1 + e^d4) = 4 for
/// d4 = log(e^4 - 1); token 1's [0, d1] give 1 for d1 = log(e - 1). Micro-batch A has one
/// target (per-token losses [4]), B three ([1, 1, 1]); with the host's scales n_i / N =
/// 1/4, 3/4 the step loss is 1.75 (not 2.5) and the gradient is the mean over the 4 target
/// tokens: d(CE)/d(logits) = softmax - onehot = [-q, q] with q = 1 - e^-CE, so row 0 gets
/// [-q4, q4] / 4 and row 1 gets 3 [-q1, q1] / 4 (by hand).
TEST(GradStep, AccumulationDividesByAllTargetTokens) {
  auto compiled = compile(kBigramLoss);
  ASSERT_TRUE(compiled);
  const double d4 = std::log(std::exp(4.0) - 1), d1 = std::log(std::exp(1.0) - 1);
  std::vector<float> params = {0, (float)d4, 0, (float)d1, 0.3f, -0.2f, 0.1f, 0.5f};
  std::vector<float> grads(8, 0.0f);
  const std::vector<int32_t> tokA = {0, 2, 3, 1}, tgtA = {0, -100, -100, -100};
  const std::vector<int32_t> tokB = {1, 1, 2, 1}, tgtB = {0, 0, -100, 0};
  int64_t nA = lrt::countTargets(tgtA.data(), 4), nB = lrt::countTargets(tgtB.data(), 4);
  ASSERT_EQ(nA + nB, 4);
  auto [lossA, countA] = bigramGradStep(compiled->fns, params, grads, tokA, tgtA,
                                        (float)lrt::gradScale(nA, nA + nB));
  auto [lossB, countB] = bigramGradStep(compiled->fns, params, grads, tokB, tgtB,
                                        (float)lrt::gradScale(nB, nA + nB));
  EXPECT_NEAR(lossA, 4.0f, 1e-5f);
  EXPECT_NEAR(lossB, 1.0f, 1e-5f);
  EXPECT_EQ(countA, 1.0f);
  EXPECT_EQ(countB, 3.0f);
  EXPECT_NEAR(lrt::weightedMeanLoss({lossA, lossB}, {nA, nB}), 1.75, 1e-5);
  const double q4 = 1 - std::exp(-4.0), q1 = 1 - std::exp(-1.0);
  const double want[8] = {-q4 / 4, q4 / 4, -3 * q1 / 4, 3 * q1 / 4, 0, 0, 0, 0};
  for (int i = 0; i < 8; ++i)
    EXPECT_NEAR(grads[i], want[i], 1e-6) << i;
}

/// Issue #5: a micro-batch whose targets are all -100 has loss 0, 0 target tokens and adds
/// exactly zero (finite) gradients, even with scale 1 (no 0/0 in the mean).
TEST(GradStep, AllMaskedBatchIsZeroNotNaN) {
  auto compiled = compile(kBigramLoss);
  ASSERT_TRUE(compiled);
  std::vector<float> params = {0.1f, 0.2f, -0.3f, 0.4f, 0.5f, -0.6f, 0.7f, 0.8f};
  std::vector<float> grads(8, 0.0f);
  auto [loss, count] = bigramGradStep(compiled->fns, params, grads, {0, 1, 2, 3},
                                      {-100, -100, -100, -100}, 1.0f);
  EXPECT_EQ(loss, 0.0f);
  EXPECT_EQ(count, 0.0f);
  for (float g : grads) {
    EXPECT_TRUE(std::isfinite(g));
    EXPECT_EQ(g, 0.0f);
  }
}

/// logits_step writes the logits of the forward pass (here a pure embedding lookup).
TEST(LogitsStep, WritesLogits) {
  const char *src = R"(
  module attributes {llmp.num_params = 14 : i64} {
    func.func @logits(%e: tensor<7x2xf32> {llmp.param = "e", llmp.offset = 0 : i64},
                      %tokens: tensor<1x3xi32>) -> tensor<1x3x2xf32> {
      %x = llmp.embedding %e, %tokens : (tensor<7x2xf32>, tensor<1x3xi32>) -> tensor<1x3x2xf32>
      return %x : tensor<1x3x2xf32>
    }
  })";
  auto compiled = compile(src);
  ASSERT_TRUE(compiled);
  ASSERT_TRUE(compiled->fns.logitsStep);
  EXPECT_FALSE(compiled->fns.gradStep);
  EXPECT_FALSE(compiled->fns.applyStep);
  std::vector<float> params(14), out(6, -1.0f);
  for (int i = 0; i < 14; ++i)
    params[i] = (float)i;
  std::vector<int32_t> tokens = {3, 0, 6};
  auto p = lrt::viewOf(params.data(), {14});
  auto tk = lrt::viewOf(tokens.data(), {1, 3});
  auto lg = lrt::viewOf(out.data(), {1, 3, 2});
  compiled->fns.logitsStep(&p, &tk, &lg);
  EXPECT_EQ(out, (std::vector<float>{6, 7, 0, 1, 12, 13}));
}

//===----------------------------------------------------------------------===//
// Packed sequences: a row that holds several documents (`segments`, block-diagonal causal
// attention, per-document RoPE positions) must give each document the logits it gets when
// run alone, and `llmp.positions` must restart at 0 at each document start (issue #5:
// documents of lengths 3 and 2 get positions [0, 1, 2, 0, 1]). The reference is
// independent of the packing code: the same model compiled without segments for each
// document's own length (plain causal attention, positions 0..T-1).
//===----------------------------------------------------------------------===//

/// logits_step of a packing module: one more i32 (B, T) argument, the segments.
using PackedLogitsFn = void (*)(lrt::MemRef<float, 1> *params, lrt::MemRef<int32_t, 2> *tokens,
                                lrt::MemRef<int32_t, 2> *segments, lrt::MemRef<float, 3> *logits);

// A one-block Llama-style model with grouped-query attention: vocab 11, width 16, 4 query
// heads of 4 sharing 2 key/value heads; logits tied to the embedding.
constexpr int64_t kV = 11, kD = 16, kKV = 8;
constexpr int64_t kEmbed = 0, kWq = kEmbed + kV * kD, kWk = kWq + kD * kD, kWv = kWk + kD * kKV,
                  kWo = kWv + kD * kKV, kNumParams = kWo + kD * kD;

/// The module's text for rows of shape (b, t); with `packed`, @logits takes segments and
/// feeds them to attention and (through llmp.positions) to both ropes. With `loss`, the
/// function is instead @loss(params, tokens, targets[, segments]) = next_token's loss,
/// target_mean(cross_entropy(logits, targets), targets).
std::string modelModule(int64_t b, int64_t t, bool packed, bool loss = false) {
  auto ty = [](std::initializer_list<int64_t> shape, const char *elt = "f32") {
    std::string s = "tensor<";
    for (int64_t d : shape)
      s += std::to_string(d) + "x";
    return s + elt + ">";
  };
  std::string x3 = ty({b, t, kD}), x2 = ty({b * t, kD}), k3 = ty({b, t, kKV}),
              k2 = ty({b * t, kKV}), ids = ty({b, t}, "i32"), lg3 = ty({b, t, kV}),
              lg2 = ty({b * t, kV});
  std::string pos = packed ? " positions %pos" : "", seg = packed ? " segments %seg" : "";
  std::string posTy = packed ? ", " + ids : "";
  std::ostringstream os;
  os << "module attributes {llmp.num_params = " << kNumParams << " : i64} {\n"
     << "func.func " << (loss ? "@loss(" : "@logits(")
     << "%embed: tensor<11x16xf32> {llmp.param = \"embed\", llmp.offset = " << kEmbed << " : i64}, "
     << "%wq: tensor<16x16xf32> {llmp.param = \"wq\", llmp.offset = " << kWq << " : i64}, "
     << "%wk: tensor<16x8xf32> {llmp.param = \"wk\", llmp.offset = " << kWk << " : i64}, "
     << "%wv: tensor<16x8xf32> {llmp.param = \"wv\", llmp.offset = " << kWv << " : i64}, "
     << "%wo: tensor<16x16xf32> {llmp.param = \"wo\", llmp.offset = " << kWo << " : i64}, "
     << "%tokens: " << ids << (loss ? ", %targets: " + ids : "")
     << (packed ? ", %seg: " + ids : "") << ") -> " << (loss ? "tensor<f32>" : lg3)
     << (loss ? " attributes {llmp.differentiate}" : "") << " {\n";
  if (packed)
    os << "%pos = llmp.positions %seg : (" << ids << ") -> " << ids << "\n";
  os << "%x = llmp.embedding %embed, %tokens : (tensor<11x16xf32>, " << ids << ") -> " << x3 << "\n"
     << "%x2 = llmp.reshape %x : (" << x3 << ") -> " << x2 << "\n"
     << "%q2 = llmp.matmul %x2, %wq : (" << x2 << ", tensor<16x16xf32>) -> " << x2 << "\n"
     << "%k2 = llmp.matmul %x2, %wk : (" << x2 << ", tensor<16x8xf32>) -> " << k2 << "\n"
     << "%v2 = llmp.matmul %x2, %wv : (" << x2 << ", tensor<16x8xf32>) -> " << k2 << "\n"
     << "%q = llmp.reshape %q2 : (" << x2 << ") -> " << x3 << "\n"
     << "%k = llmp.reshape %k2 : (" << k2 << ") -> " << k3 << "\n"
     << "%v = llmp.reshape %v2 : (" << k2 << ") -> " << k3 << "\n"
     << "%qr = llmp.rope %q" << pos << " {heads = 4 : i64, theta = 1.0e+01 : f32} : (" << x3
     << posTy << ") -> " << x3 << "\n"
     << "%kr = llmp.rope %k" << pos << " {heads = 2 : i64, theta = 1.0e+01 : f32} : (" << k3
     << posTy << ") -> " << k3 << "\n"
     << "%a = llmp.attention %qr, %kr, %v" << seg
     << " {heads = 4 : i64, kv_heads = 2 : i64, causal} : (" << x3 << ", " << k3 << ", " << k3
     << (packed ? ", " + ids : "") << ") -> " << x3 << "\n"
     << "%a2 = llmp.reshape %a : (" << x3 << ") -> " << x2 << "\n"
     << "%o2 = llmp.matmul %a2, %wo : (" << x2 << ", tensor<16x16xf32>) -> " << x2 << "\n"
     << "%y2 = llmp.add %x2, %o2 : (" << x2 << ", " << x2 << ") -> " << x2 << "\n"
     << "%lg2 = llmp.matmul %y2, %embed {transpose_b} : (" << x2 << ", tensor<11x16xf32>) -> "
     << lg2 << "\n"
     << "%lg = llmp.reshape %lg2 : (" << lg2 << ") -> " << lg3 << "\n";
  if (loss)
    os << "%ce = llmp.cross_entropy %lg, %targets : (" << lg3 << ", " << ids << ") -> "
       << ty({b, t}) << "\n"
       << "%l = llmp.target_mean %ce, %targets : (" << ty({b, t}) << ", " << ids
       << ") -> tensor<f32>\n"
       << "return %l : tensor<f32>\n}\n}\n";
  else
    os << "return %lg : " << lg3 << "\n}\n}\n";
  return os.str();
}

/// Logits (t, kV) of one document run alone through the unpacked model.
std::vector<float> aloneLogits(std::vector<float> &params, std::vector<int32_t> tokens) {
  int64_t t = tokens.size();
  auto c = compile(modelModule(1, t, /*packed=*/false));
  EXPECT_TRUE(c && c->fns.logitsStep);
  std::vector<float> out(t * kV, NAN);
  if (!c || !c->fns.logitsStep)
    return out;
  auto p = lrt::viewOf(params.data(), {kNumParams});
  auto tk = lrt::viewOf(tokens.data(), {1, t});
  auto lg = lrt::viewOf(out.data(), {1, t, kV});
  c->fns.logitsStep(&p, &tk, &lg);
  return out;
}

TEST(Packing, PackedRowsGiveEachDocumentItsOwnLogits) {
  std::mt19937 rng(99);
  std::normal_distribution<float> normal(0.0f, 0.5f);
  std::vector<float> params(kNumParams);
  for (float &x : params)
    x = normal(rng);
  // Row 0: documents A (3 tokens) and B (2); row 1: C (1), D (2), E (2).
  const int64_t B = 2, T = 5;
  std::vector<int32_t> tokens = {3, 7, 1, 9, 4, /**/ 5, 2, 8, 10, 0};
  std::vector<int32_t> segments = {0, 0, 0, 1, 1, /**/ 0, 1, 1, 2, 2};
  auto packed = compile(modelModule(B, T, /*packed=*/true));
  ASSERT_TRUE(packed);
  ASSERT_TRUE(packed->fns.logitsStep);
  auto logitsStep = reinterpret_cast<PackedLogitsFn>(packed->fns.logitsStep);
  std::vector<float> out(B * T * kV, NAN);
  auto p = lrt::viewOf(params.data(), {kNumParams});
  auto tk = lrt::viewOf(tokens.data(), {B, T});
  auto sg = lrt::viewOf(segments.data(), {B, T});
  auto lg = lrt::viewOf(out.data(), {B, T, kV});
  logitsStep(&p, &tk, &sg, &lg);

  struct Doc {
    int64_t row, start, len;
  };
  for (Doc d : {Doc{0, 0, 3}, Doc{0, 3, 2}, Doc{1, 0, 1}, Doc{1, 1, 2}, Doc{1, 3, 2}}) {
    SCOPED_TRACE("row " + std::to_string(d.row) + " document at " + std::to_string(d.start));
    std::vector<int32_t> docTokens(tokens.begin() + d.row * T + d.start,
                                   tokens.begin() + d.row * T + d.start + d.len);
    std::vector<float> ref = aloneLogits(params, docTokens);
    for (int64_t t = 0; t < d.len; ++t)
      for (int64_t v = 0; v < kV; ++v) {
        float got = out[(d.row * T + d.start + t) * kV + v], want = ref[t * kV + v];
        // Same fp32 operations on the same values but for masked (exactly zero)
        // probabilities and summation order: agreement to rounding.
        EXPECT_NEAR(got, want, 1e-5f + 1e-5f * std::fabs(want)) << "t " << t << " v " << v;
      }
  }
  // The documents interact without the segments: the same packed row through the unpacked
  // model gives document B different logits (so the comparison above can fail).
  auto plain = compile(modelModule(B, T, /*packed=*/false));
  ASSERT_TRUE(plain);
  std::vector<float> mixed(B * T * kV, NAN);
  auto lm = lrt::viewOf(mixed.data(), {B, T, kV});
  plain->fns.logitsStep(&p, &tk, &lm);
  std::vector<float> refB = aloneLogits(params, {9, 4});
  EXPECT_GT(std::fabs(mixed[3 * kV] - refB[0]), 1e-3f);
}

/// Issue #5: a packed row's loss is the token-weighted loss of its documents run
/// separately, and so is its gradient. Documents A = [3, 7, 1] and B = [9, 4] are packed by
/// lrt::packDocuments (targets [7, 1, -100, 4, -100]: nothing across the boundary); the
/// reference runs each document alone through the unpacked model (plain causal attention,
/// positions from 0) with targets [7, 1, -100] and [4, -100], and accumulates their
/// gradients with scales n_i / N = 2/3 and 1/3 (the host's rule for micro-batches).
TEST(Packing, PackedLossIsTokenWeightedLossOfDocuments) {
  auto packed = lrt::packDocuments({{3, 7, 1}, {9, 4}}, 5, /*padId=*/0);
  ASSERT_TRUE(packed) << packed.status().message();
  ASSERT_EQ(packed->targets, (std::vector<int32_t>{7, 1, -100, 4, -100}));
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> uni(-0.5f, 0.5f);
  std::vector<float> params(kNumParams);
  for (float &x : params)
    x = uni(rng);
  auto p = lrt::viewOf(params.data(), {kNumParams});
  std::vector<float> hyper(8, 0.0f), metrics(4, NAN);
  auto h = lrt::viewOf(hyper.data(), {8});
  auto mt = lrt::viewOf(metrics.data(), {4});

  auto c = compile(modelModule(1, 5, /*packed=*/true, /*loss=*/true));
  ASSERT_TRUE(c && c->fns.gradStep);
  std::vector<float> packedGrads(kNumParams, 0.0f);
  auto g = lrt::viewOf(packedGrads.data(), {kNumParams});
  auto tk = lrt::viewOf(packed->tokens.data(), {1, 5});
  auto tg = lrt::viewOf(packed->targets.data(), {1, 5});
  auto sg = lrt::viewOf(packed->segments.data(), {1, 5});
  hyper[lrt::kHyperGradScale] = 1.0f;
  reinterpret_cast<lrt::PackedGradStepFn>(c->fns.gradStep)(&p, &g, &tk, &tg, &sg, &h, &mt);
  const double packedLoss = metrics[lrt::kMetricLoss];
  EXPECT_EQ(metrics[lrt::kMetricTokens], 3.0f);

  std::vector<float> aloneGrads(kNumParams, 0.0f);
  std::vector<double> losses;
  std::vector<int64_t> counts;
  const std::vector<std::vector<int32_t>> docs = {{3, 7, 1}, {9, 4}};
  for (const std::vector<int32_t> &doc : docs) {
    int64_t t = doc.size();
    auto alone = compile(modelModule(1, t, /*packed=*/false, /*loss=*/true));
    ASSERT_TRUE(alone && alone->fns.gradStep);
    std::vector<int32_t> tokens = doc, targets = lrt::shiftLabels(doc);
    auto ga = lrt::viewOf(aloneGrads.data(), {kNumParams});
    auto tka = lrt::viewOf(tokens.data(), {1, t});
    auto tga = lrt::viewOf(targets.data(), {1, t});
    counts.push_back(lrt::countTargets(targets.data(), t));
    hyper[lrt::kHyperGradScale] = float(lrt::gradScale(counts.back(), 3));
    alone->fns.gradStep(&p, &ga, &tka, &tga, &h, &mt);
    losses.push_back(metrics[lrt::kMetricLoss]);
  }
  ASSERT_EQ(counts, (std::vector<int64_t>{2, 1}));
  EXPECT_NEAR(packedLoss, lrt::weightedMeanLoss(losses, counts), 1e-5 * std::fabs(packedLoss));
  for (int64_t i = 0; i < kNumParams; ++i)
    EXPECT_NEAR(packedGrads[i], aloneGrads[i], 1e-6 + 1e-4 * std::fabs(aloneGrads[i])) << i;
}

/// rope at llmp.positions of segments [0, 0, 0, 1, 1] rotates token t by the angle of
/// position [0, 1, 2, 0, 1][t], computed here in double from the formula of
/// docs/internals.md (Hugging Face rotate_half).
TEST(Packing, RopeAtDocumentPositions) {
  const char *src = R"(
  module attributes {llmp.num_params = 20 : i64} {
    func.func @logits(%x: tensor<1x5x4xf32> {llmp.param = "x", llmp.offset = 0 : i64},
                      %tokens: tensor<1x5xi32>, %seg: tensor<1x5xi32>) -> tensor<1x5x4xf32> {
      %pos = llmp.positions %seg : (tensor<1x5xi32>) -> tensor<1x5xi32>
      %y = llmp.rope %x positions %pos {heads = 1 : i64, theta = 1.0e+01 : f32} : (tensor<1x5x4xf32>, tensor<1x5xi32>) -> tensor<1x5x4xf32>
      return %y : tensor<1x5x4xf32>
    }
  })";
  auto c = compile(src);
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->fns.logitsStep);
  std::vector<float> x(20);
  for (int i = 0; i < 20; ++i)
    x[i] = 0.1f * static_cast<float>(i + 1);
  std::vector<int32_t> tokens(5, 0), segments = {0, 0, 0, 1, 1};
  std::vector<float> out(20, NAN);
  auto p = lrt::viewOf(x.data(), {20});
  auto tk = lrt::viewOf(tokens.data(), {1, 5});
  auto sg = lrt::viewOf(segments.data(), {1, 5});
  auto lg = lrt::viewOf(out.data(), {1, 5, 4});
  reinterpret_cast<PackedLogitsFn>(c->fns.logitsStep)(&p, &tk, &sg, &lg);
  const int positions[5] = {0, 1, 2, 0, 1};
  for (int t = 0; t < 5; ++t)
    for (int i = 0; i < 2; ++i) {
      // Head dim 4: pairs (i, i + 2) rotate by positions[t] * 10^(-2i/4).
      double a = positions[t] * std::pow(10.0, -2.0 * i / 4.0);
      double x0 = x[t * 4 + i], x1 = x[t * 4 + i + 2];
      EXPECT_NEAR(out[t * 4 + i], x0 * std::cos(a) - x1 * std::sin(a), 1e-5) << t << "," << i;
      EXPECT_NEAR(out[t * 4 + i + 2], x1 * std::cos(a) + x0 * std::sin(a), 1e-5) << t << "," << i;
    }
}

/// Attention over more keys than the lowering's block (512) runs blockwise with an online
/// softmax. Here T = 640 (two blocks of 320), grouped-query (4 heads, 2 key/value heads,
/// head dim 4), causal, with documents [0, 400) and [400, 640): rows of the second document
/// see only masked keys in the first block, the case an online softmax must not turn into
/// NaN. Reference: the softmax of docs/internals.md evaluated directly in double.
TEST(Attention, BlockwiseForwardMatchesDirectSoftmax) {
  constexpr int64_t T = 640, H = 4, KV = 2, HD = 4, D = H * HD, DKV = KV * HD;
  constexpr int64_t kQ = 0, kK = T * D, kVv = kK + T * DKV, n = kVv + T * DKV;
  std::string src = R"(
  module attributes {llmp.num_params = )" + std::to_string(n) + R"( : i64} {
    func.func @logits(%q: tensor<1x640x16xf32> {llmp.param = "q", llmp.offset = 0 : i64},
                      %k: tensor<1x640x8xf32> {llmp.param = "k", llmp.offset = )" +
                    std::to_string(kK) + R"( : i64},
                      %v: tensor<1x640x8xf32> {llmp.param = "v", llmp.offset = )" +
                    std::to_string(kVv) + R"( : i64},
                      %tokens: tensor<1x640xi32>, %seg: tensor<1x640xi32>) -> tensor<1x640x16xf32> {
      %y = llmp.attention %q, %k, %v segments %seg {heads = 4 : i64, kv_heads = 2 : i64, causal} : (tensor<1x640x16xf32>, tensor<1x640x8xf32>, tensor<1x640x8xf32>, tensor<1x640xi32>) -> tensor<1x640x16xf32>
      return %y : tensor<1x640x16xf32>
    }
  })";
  auto c = compile(src);
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->fns.logitsStep);
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> params(n);
  for (float &x : params)
    x = normal(rng);
  std::vector<int32_t> tokens(T, 0), segments(T);
  for (int64_t t = 0; t < T; ++t)
    segments[t] = t < 400 ? 0 : 1;
  std::vector<float> out(T * D, NAN);
  auto p = lrt::viewOf(params.data(), {n});
  auto tk = lrt::viewOf(tokens.data(), {1, T});
  auto sg = lrt::viewOf(segments.data(), {1, T});
  auto lg = lrt::viewOf(out.data(), {1, T, D});
  reinterpret_cast<PackedLogitsFn>(c->fns.logitsStep)(&p, &tk, &sg, &lg);
  double worst = 0;
  for (int64_t h = 0; h < H; ++h) {
    int64_t g = h / (H / KV); // the key/value head of query head h
    for (int64_t i = 0; i < T; ++i) {
      std::vector<double> w(T, 0.0);
      double mx = -INFINITY, sum = 0;
      for (int64_t j = 0; j <= i; ++j) {
        if (segments[j] != segments[i])
          continue;
        double dot = 0;
        for (int64_t e = 0; e < HD; ++e)
          dot += (double)params[kQ + i * D + h * HD + e] * params[kK + j * DKV + g * HD + e];
        w[j] = dot / std::sqrt((double)HD);
        mx = std::max(mx, w[j]);
      }
      for (int64_t j = 0; j <= i; ++j)
        if (segments[j] == segments[i])
          sum += (w[j] = std::exp(w[j] - mx));
        else
          w[j] = 0;
      for (int64_t e = 0; e < HD; ++e) {
        double ref = 0;
        for (int64_t j = 0; j <= i; ++j)
          ref += w[j] / sum * params[kVv + j * DKV + g * HD + e];
        double got = out[i * D + h * HD + e];
        ASSERT_TRUE(std::isfinite(got)) << "row " << i << " head " << h;
        worst = std::max(worst, std::fabs(got - ref));
        EXPECT_NEAR(got, ref, 1e-5 + 1e-5 * std::fabs(ref)) << "row " << i << " head " << h;
      }
    }
  }
  RecordProperty("worst_abs_error", std::to_string(worst));
}

} // namespace

/// A random (rows, cols) weight quantized to NF4 (kernels/cpu/Quant) as the blob constant
/// `%w` of a module, with its dequantized values (dequantizeNf4).
struct Nf4Const {
  std::string def;
  std::vector<float> deq;
};

Nf4Const nf4Const(int64_t rows, int64_t cols, int64_t block, bool dq, std::mt19937 &rng) {
  std::normal_distribution<float> d(0.0f, 0.5f);
  std::vector<float> w(rows * cols);
  for (float &x : w)
    x = d(rng);
  auto t = lrt::quant::quantizeNf4(w.data(), rows * cols, {block, dq, 256});
  EXPECT_TRUE(t.isOk());
  lrt::quant::Nf4Layout l = lrt::quant::nf4Layout(rows * cols, block, dq);
  std::vector<uint8_t> blob(l.byteSize);
  EXPECT_TRUE(lrt::quant::writeNf4Blob(*t, blob.data()).isOk());
  Nf4Const c;
  c.deq.resize(rows * cols);
  EXPECT_TRUE(lrt::quant::dequantizeNf4(*t, c.deq.data()).isOk());
  c.def = "%w = arith.constant " + denseHexBytes(blob.data(), blob.size()) + " : " +
          tensorType({l.byteSize}, "i8") + "\n";
  return c;
}

/// `%y = llmp.matmul_nf4 %p0, %w` for x (m, k) and W (rows, cols).
std::string nf4Product(int64_t m, int64_t rows, int64_t cols, int64_t block, bool dq, bool tb) {
  int64_t bytes = lrt::quant::nf4Layout(rows * cols, block, dq).byteSize;
  std::string attrs = "{rows = " + std::to_string(rows) + " : i64, cols = " + std::to_string(cols) +
                      " : i64, block = " + std::to_string(block) + " : i64" +
                      (dq ? ", double_quant" : "") + (tb ? ", transpose_b" : "") + "}";
  return "%y = llmp.matmul_nf4 %p0, %w " + attrs + " : (" + tensorType({m, tb ? cols : rows}) +
         ", " + tensorType({bytes}, "i8") + ") -> " + tensorType({m, tb ? rows : cols});
}

/// The gradient of a frozen NF4 product reaches its input: dx = dy dequant(W)^T (and
/// dy dequant(W) with transpose_b), against finite differences. Blocks of 4 cross rows of W.
TEST(GradCheck, MatmulNf4) {
  std::mt19937 rng(5);
  for (bool tb : {false, true})
    for (bool dq : {true, false}) {
      Nf4Const w = nf4Const(5, 7, 4, dq, rng);
      int64_t k = tb ? 7 : 5, n = tb ? 5 : 7;
      checkGradients({std::string("matmul_nf4") + (tb ? " tb" : "") + (dq ? " dq" : ""), {{3, k}},
                      w.def + nf4Product(3, 5, 7, 4, dq, tb), {3, n}});
    }
}

/// The compiled NF4 product's values: loss = mean(x dequant(W) * R) through the fused
/// kernel (llmp-linalg-to-lrt's call) and through the tagged generic's own dequantizing
/// loops (the tag removed at the linalg phase), against the same sum in double over
/// dequantizeNf4's weights. Bound: fp32 sums of 3 x 33 x 40 products of size ~1, rel 1e-5.
TEST(Nf4Compiled, KernelAndLoopsMatchDequantizedProduct) {
  const int64_t m = 3, rows = 40, cols = 33, block = 64;
  std::mt19937 rng(9);
  Nf4Const w = nf4Const(rows, cols, block, true, rng);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  std::vector<float> r(m * cols), x(m * rows);
  for (float &v : r)
    v = uni(rng);
  for (float &v : x)
    v = uni(rng);
  std::string yTy = tensorType({m, cols});
  std::ostringstream src;
  src << "module attributes {llmp.num_params = " << m * rows << " : i64} {\n"
      << "func.func @loss(%p0: " << tensorType({m, rows}) << " {llmp.param = \"x\", llmp.offset = 0 : i64}, "
      << "%tokens: tensor<2x3xi32>, %targets: tensor<2x3xi32>) -> tensor<f32> attributes {llmp.differentiate} {\n"
      << w.def << nf4Product(m, rows, cols, block, true, false) << "\n"
      << "%r = arith.constant " << denseHex(r) << " : " << yTy << "\n"
      << "%yr = llmp.mul %y, %r : (" << yTy << ", " << yTy << ") -> " << yTy << "\n"
      << "%l = llmp.mean %yr : (" << yTy << ") -> tensor<f32>\n"
      << "return %l : tensor<f32>\n}\n}\n";
  double ref = 0;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      double y = 0;
      for (int64_t k = 0; k < rows; ++k)
        y += static_cast<double>(x[i * rows + k]) * w.deq[k * cols + j];
      ref += y * r[i * cols + j];
    }
  ref /= static_cast<double>(m * cols);
  bool sawTag = false;
  auto stripTag = [&](ModuleOp module) {
    module.walk([&](Operation *op) {
      if (op->removeAttr("llmp.matmul_nf4"))
        sawTag = true;
    });
  };
  auto kernel = compile(src.str());
  auto loops = compile(src.str(), stripTag);
  ASSERT_TRUE(kernel && loops) << src.str();
  ASSERT_TRUE(sawTag);
  // `kernel` calls _mlir_ciface_lrt_matmul_nf4_f32 (the JIT resolves it from this process:
  // test/compiler/Conversion/LinalgToLRT/matmul-nf4-to-lrt.mlir shows the call); `loops`
  // runs the generic's body.
  for (Compiled *c : {kernel.get(), loops.get()}) {
    Buffers buf(m * rows);
    buf.params = x;
    EXPECT_NEAR(buf.eval(c->fns), ref, 1e-5 * std::fabs(ref) + 1e-7);
  }
}
