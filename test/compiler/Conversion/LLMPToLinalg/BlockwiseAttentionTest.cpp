// SPDX-License-Identifier: Apache-2.0
/// The blockwise (flash-attention) backward of `llmp-lower-to-linalg` through the JIT:
/// gradients of attention lowered with `attention-block=N` (key blocks, per-row
/// log-sum-exp, no (rows, T) probabilities) against the same module lowered with
/// `attention-block=0` (the direct softmax and its gradient, which the finite-difference
/// tests of GradCheckTest.cpp cover), and against central finite differences. The same
/// for the direct path's causal row blocks (`causal-row-block=N`) against all rows at once.
#include "compiler/Pipelines/Pipelines.h"
#include "compiler/Target/CPU/JIT.h"
#include "test/compiler/CompiledTestUtil.h"
#include "runtime/Data.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "llvm/Support/FormatVariadic.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <random>
#include <sstream>

using namespace mlir;

namespace {

using llmp_test::Compiled;

/// Compiles `src` through the grad phase, `llmp-lower-to-linalg{options}` alone (the
/// linalg phase's fusion and cleanups only speed code up, and all variants skip them
/// alike) and the LLVM phase, then JIT-compiles it.
std::unique_ptr<Compiled> compileWith(const std::string &src, const std::string &options) {
  auto c = std::make_unique<Compiled>();
  OwningOpRef<ModuleOp> module = llmp_test::parseModule(*c, src);
  if (!module || failed(llmp::lowerToPhase(*module, llmp::Phase::Grad)))
    return nullptr;
  PassManager pm(&c->ctx);
  // No builtin.module(...) wrapper: `pm` is anchored on the module already.
  std::string pipeline = "symbol-dce,llmp-lower-to-linalg{" + options + "}";
  if (failed(parsePassPipeline(pipeline, pm, llvm::errs())) || failed(pm.run(*module)))
    return nullptr;
  if (failed(llmp::lowerToPhase(*module, llmp::Phase::LLVM, llmp::Phase::Linalg)))
    return nullptr;
  if (!llmp_test::jitCompile(*c, *module))
    return nullptr;
  return c;
}

/// @loss(q (1,T,H*d), k, v (1,T,KV*d), w (1,T,H*d)) = mean(attention(q, k, v) * w), causal,
/// grouped-query (H = 4, KV = 2, d = 4); with `split` > 0, two documents [0, split) and
/// [split, T) (a constant segments operand: the block-diagonal mask of packed rows).
std::string attentionLoss(int64_t t, int64_t split) {
  bool segments = split > 0;
  int64_t d = 16, dkv = 8;
  auto ty = [&](int64_t w, const char *elt = "f32") {
    return "tensor<1x" + std::to_string(t) + (w ? "x" + std::to_string(w) : "") + "x" + elt + ">";
  };
  std::ostringstream os;
  int64_t offsets[4] = {0, t * d, t * d + t * dkv, t * d + 2 * t * dkv};
  os << "module attributes {llmp.num_params = " << 2 * t * d + 2 * t * dkv << " : i64} {\n"
     << "func.func @loss(%q: " << ty(d) << " {llmp.param = \"q\", llmp.offset = " << offsets[0]
     << " : i64}, %k: " << ty(dkv) << " {llmp.param = \"k\", llmp.offset = " << offsets[1]
     << " : i64}, %v: " << ty(dkv) << " {llmp.param = \"v\", llmp.offset = " << offsets[2]
     << " : i64}, %w: " << ty(d) << " {llmp.param = \"w\", llmp.offset = " << offsets[3]
     << " : i64}, %tokens: " << ty(0, "i32") << ", %targets: " << ty(0, "i32")
     << ") -> tensor<f32> attributes {llmp.differentiate} {\n";
  std::string seg;
  if (segments) {
    os << "%seg = arith.constant dense<[[";
    for (int64_t i = 0; i < t; ++i)
      os << (i ? ", " : "") << (i < split ? 0 : 1);
    os << "]]> : " << ty(0, "i32") << "\n";
    seg = " segments %seg";
  }
  os << "%y = llmp.attention %q, %k, %v" << seg
     << " {heads = 4 : i64, kv_heads = 2 : i64, causal} : (" << ty(d) << ", " << ty(dkv) << ", "
     << ty(dkv) << (segments ? ", " + ty(0, "i32") : "") << ") -> " << ty(d) << "\n"
     << "%yw = llmp.mul %y, %w : (" << ty(d) << ", " << ty(d) << ") -> " << ty(d) << "\n"
     << "%l = llmp.mean %yw : (" << ty(d) << ") -> tensor<f32>\n"
     << "return %l : tensor<f32>\n}\n}\n";
  return os.str();
}

/// One grad_step at gradient scale `scale`: the gradient of scale * loss, and the loss.
std::vector<float> gradient(const lrt::StepFunctions &f, std::vector<float> params, int64_t t,
                            float scale, float *loss = nullptr) {
  int64_t n = params.size();
  std::vector<float> grads(n, 0.0f), hyper(lrt::kNumHyper, 0.0f), metrics(4, 0.0f);
  std::vector<int32_t> tokens(t, 0), targets(t, 0);
  hyper[lrt::kHyperGradScale] = scale;
  auto p = lrt::viewOf(params.data(), {n});
  auto g = lrt::viewOf(grads.data(), {n});
  auto tk = lrt::viewOf(tokens.data(), {1, t});
  auto tg = lrt::viewOf(targets.data(), {1, t});
  auto h = lrt::viewOf(hyper.data(), {lrt::kNumHyper});
  auto mt = lrt::viewOf(metrics.data(), {4});
  f.gradStep(&p, &g, &tk, &tg, &h, &mt);
  if (loss)
    *loss = metrics[lrt::kMetricLoss];
  return grads;
}

float evalLoss(const lrt::StepFunctions &f, std::vector<float> &params, int64_t t) {
  std::vector<float> metrics(4, 0.0f);
  std::vector<int32_t> tokens(t, 0), targets(t, 0);
  auto p = lrt::viewOf(params.data(), {(int64_t)params.size()});
  auto tk = lrt::viewOf(tokens.data(), {1, t});
  auto tg = lrt::viewOf(targets.data(), {1, t});
  auto mt = lrt::viewOf(metrics.data(), {4});
  f.evalStep(&p, &tk, &tg, &mt);
  return metrics[lrt::kMetricLoss];
}

std::vector<float> randomParams(int64_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> params(n);
  for (float &x : params)
    x = normal(rng);
  return params;
}

/// The loss and gradients of attentionLoss(t, split) lowered with each of `variants`
/// against those lowered with `reference`: loss within 1e-5 relative, every gradient
/// element finite and within 1e-5. The gradient scale T * H*d makes them those of
/// sum(attention * w), of order 1. Records the worst difference per variant.
void expectSameGradients(int64_t t, int64_t split, const std::string &reference,
                         std::initializer_list<std::string> variants, unsigned seed) {
  const int64_t n = 2 * t * 16 + 2 * t * 8;
  const float scale = t * 16;
  std::string src = attentionLoss(t, split);
  auto ref = compileWith(src, reference);
  ASSERT_TRUE(ref && ref->fns.gradStep) << src;
  std::vector<float> params = randomParams(n, seed);
  float refLoss = 0;
  std::vector<float> refGrad = gradient(ref->fns, params, t, scale, &refLoss);
  for (const std::string &options : variants) {
    SCOPED_TRACE(options);
    auto c = compileWith(src, options);
    ASSERT_TRUE(c && c->fns.gradStep);
    float loss = 0;
    std::vector<float> got = gradient(c->fns, params, t, scale, &loss);
    EXPECT_NEAR(loss, refLoss, 1e-5f * std::fabs(refLoss) + 1e-7f);
    double worst = 0;
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_TRUE(std::isfinite(got[i])) << "element " << i;
      worst = std::max(worst, (double)std::fabs(got[i] - refGrad[i]));
      EXPECT_NEAR(got[i], refGrad[i], 1e-5f) << "element " << i;
    }
    std::string key = "worst_abs_difference_" + options + (split ? "_segments" : "");
    std::replace_if(key.begin(), key.end(), [](char ch) { return !std::isalnum(ch); }, '_');
    ::testing::Test::RecordProperty(key, llvm::formatv("{0:e}", worst).str());
  }
}

/// T = 640: blocks of 320 (the default attention-block, 512) and of 128 (5 blocks) give
/// the gradients of the direct path within 1e-5, for causal and for causal + segments
/// (rows of the second document see only masked keys in the first blocks).
TEST(BlockwiseAttention, GradientsEqualDirectPathAtT640) {
  for (int64_t split : {0, 336}) {
    SCOPED_TRACE(split ? "causal + segments" : "causal");
    expectSameGradients(640, split, "attention-block=0", {"attention-block=512", "attention-block=128"},
                        11);
  }
}

/// The backward lowered with `options` against central finite differences of eval_step,
/// both for sum(attention * w) = T * H*d * loss (gradient scale T * H*d), so the gradients
/// are of order 1. Tolerance as GradCheckTest.cpp: h = 1e-2,
/// |analytic - fd| <= 2e-3 + 2e-2 |fd|.
void checkFiniteDifferences(int64_t t, const std::string &options, int64_t split) {
  std::string src = attentionLoss(t, split);
  auto c = compileWith(src, options);
  ASSERT_TRUE(c && c->fns.gradStep && c->fns.evalStep) << src;
  int64_t n = 2 * t * 16 + 2 * t * 8;
  std::vector<float> params = randomParams(n, 3);
  const float scale = t * 16;
  std::vector<float> grads = gradient(c->fns, params, t, scale);
  const float h = 1e-2f;
  for (int64_t i = 0; i < n; ++i) {
    float x = params[i];
    params[i] = x + h;
    float fp = evalLoss(c->fns, params, t);
    params[i] = x - h;
    float fm = evalLoss(c->fns, params, t);
    params[i] = x;
    float fd = scale * (fp - fm) / (2 * h);
    EXPECT_NEAR(grads[i], fd, 2e-3f + 2e-2f * std::fabs(fd)) << "element " << i;
  }
}

TEST(BlockwiseAttention, GradientMatchesFiniteDifferences) {
  {
    SCOPED_TRACE("T = 6, blocks of 2, causal");
    checkFiniteDifferences(6, "attention-block=2", 0);
  }
  {
    SCOPED_TRACE("T = 12, blocks of 4, causal + documents [0, 7), [7, 12)");
    checkFiniteDifferences(12, "attention-block=4", 7);
  }
}

/// Causal row blocks of the direct path (`causal-row-block`): T = 96 in blocks of 32, 24
/// and 12 queries (3, 4 and 8 blocks, each with those queries of both query heads that
/// share a key head: the copied grouped rows), each against only the keys up to its last
/// query, give the loss and gradients of all
/// rows at once (causal-row-block=0) within 1e-5, for causal and for causal + segments
/// (documents [0, 40) and [40, 96): the boundary falls inside a block). Keys after a
/// block's last query have probability exactly 0, so only fp32 summation order differs.
TEST(CausalRowBlocks, GradientsEqualAllRowsAtT96) {
  for (int64_t split : {0, 40}) {
    SCOPED_TRACE(split ? "causal + segments" : "causal");
    expectSameGradients(96, split, "causal-row-block=0",
                        {"causal-row-block=32", "causal-row-block=24", "causal-row-block=12"}, 5);
  }
}

TEST(CausalRowBlocks, GradientMatchesFiniteDifferences) {
  {
    SCOPED_TRACE("T = 6, rows of 2, causal");
    checkFiniteDifferences(6, "causal-row-block=2", 0);
  }
  {
    SCOPED_TRACE("T = 12, rows of 4, causal + documents [0, 7), [7, 12)");
    checkFiniteDifferences(12, "causal-row-block=4", 7);
  }
}

} // namespace
