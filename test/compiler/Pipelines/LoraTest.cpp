// SPDX-License-Identifier: Apache-2.0
/// LoRA (llmp-apply-lora) and llmp.dropout through the whole compiler on the CPU: the
/// dropout mask against its documented formula and binomial bounds, the backward pass
/// against finite differences of the same masked forward, and a LoRA model's loss against
/// a double reference and its adapter gradients against finite differences, with the
/// frozen base read from the frozen byte buffer and left bitwise unchanged by training.
///
/// Finite differences as GradCheckTest.cpp: central, h = 1e-2, |analytic - fd| <= 2e-3 +
/// 2e-2 |fd| (O(h^2) truncation plus ~1e-5 fp32 rounding of the quotient).
#include "compiler/Dialect/LLMP/Transforms/Passes.h"
#include "compiler/Pipelines/Pipelines.h"
#include "compiler/Target/CPU/JIT.h"
#include "test/compiler/CompiledTestUtil.h"
#include "runtime/StepABI.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <sstream>

using namespace mlir;

namespace {

/// A JIT-compiled module.
using Jit = llmp_test::Compiled;

/// Parses `src`, applies LoRA with `lora` when given, lowers to LLVM and JIT-compiles.
std::unique_ptr<Jit> build(const std::string &src, const llmp::LLMPApplyLoraOptions *lora) {
  auto c = std::make_unique<Jit>();
  OwningOpRef<ModuleOp> module = llmp_test::parseModule(*c, src);
  if (!module || (lora && failed(llmp::applyLora(*module, *lora))) ||
      failed(llmp::lowerToPhase(*module, llmp::Phase::LLVM)))
    return nullptr;
  if (!llmp_test::jitCompile(*c, *module))
    return nullptr;
  return c;
}

/// llmp.dropout's keep decision, written from the formula in LLMPOps.td (SplitMix64).
uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
bool keepRef(uint64_t seed, int32_t step, int32_t micro, uint64_t i, double p) {
  uint64_t base = mix64(seed ^ mix64(uint64_t(uint32_t(step)) << 32 | uint32_t(micro)));
  uint64_t r = mix64(base + (i + 1) * 0x9E3779B97F4A7C15ull);
  return (r >> 40) >= uint64_t(std::llround(p * 16777216.0));
}

/// `dense<[[...], ...]>` of `v` as a (rows, v.size() / rows) tensor; 9 significant digits
/// give back the same floats.
std::string dense(const std::vector<float> &v, size_t rows) {
  std::ostringstream os;
  os.precision(9);
  size_t cols = v.size() / rows;
  os << "dense<[";
  for (size_t i = 0; i < rows; ++i) {
    os << (i ? ", [" : "[");
    for (size_t j = 0; j < cols; ++j)
      os << (j ? ", " : "") << v[i * cols + j];
    os << "]";
  }
  os << "]>";
  return os.str();
}

/// Buffers and calls of one compiled module; `frozen` is empty without a frozen buffer.
struct Steps {
  const lrt::StepFunctions &fns;
  std::vector<float> params, grads, m, v, hyper = std::vector<float>(lrt::kNumHyper, 0.0f),
                                          metrics = std::vector<float>(lrt::kNumMetrics, 0.0f);
  std::vector<uint8_t> frozen;
  std::vector<int32_t> tokens, targets;
  int64_t rows, cols;

  Steps(const lrt::StepFunctions &f, int64_t n, int64_t frozenBytes, std::vector<int32_t> tk,
        int64_t r, int64_t c)
      : fns(f), params(n), grads(n), m(n), v(n), frozen(frozenBytes), tokens(tk), targets(tk),
        rows(r), cols(c) {
    hyper[lrt::kHyperBeta1] = 0.9f;
    hyper[lrt::kHyperBeta2] = 0.999f;
    hyper[lrt::kHyperEps] = 1e-8f;
    hyper[lrt::kHyperStep] = 1.0f;
    hyper[lrt::kHyperGradScale] = 1.0f;
  }

  /// grad_step into zeroed grads; returns the loss it reports.
  float grad() {
    std::fill(grads.begin(), grads.end(), 0.0f);
    int64_t n = params.size();
    auto p = lrt::viewOf(params.data(), {n});
    auto g = lrt::viewOf(grads.data(), {n});
    auto fz = lrt::viewOf(frozen.data(), {(int64_t)frozen.size()});
    auto tk = lrt::viewOf(tokens.data(), {rows, cols});
    auto tg = lrt::viewOf(targets.data(), {rows, cols});
    auto h = lrt::viewOf(hyper.data(), {lrt::kNumHyper});
    auto mt = lrt::viewOf(metrics.data(), {lrt::kNumMetrics});
    if (frozen.empty())
      fns.gradStep(&p, &g, &tk, &tg, &h, &mt);
    else
      reinterpret_cast<lrt::FrozenGradStepFn>(fns.gradStep)(&p, &g, &fz, &tk, &tg, &h, &mt);
    return metrics[lrt::kMetricLoss];
  }

  float eval() {
    int64_t n = params.size();
    auto p = lrt::viewOf(params.data(), {n});
    auto fz = lrt::viewOf(frozen.data(), {(int64_t)frozen.size()});
    auto tk = lrt::viewOf(tokens.data(), {rows, cols});
    auto tg = lrt::viewOf(targets.data(), {rows, cols});
    auto mt = lrt::viewOf(metrics.data(), {lrt::kNumMetrics});
    if (frozen.empty())
      fns.evalStep(&p, &tk, &tg, &mt);
    else
      reinterpret_cast<lrt::FrozenEvalStepFn>(fns.evalStep)(&p, &fz, &tk, &tg, &mt);
    return metrics[lrt::kMetricLoss];
  }

  /// One AdamW step on the current grads.
  void apply() {
    int64_t n = params.size();
    auto p = lrt::viewOf(params.data(), {n});
    auto g = lrt::viewOf(grads.data(), {n});
    auto mm = lrt::viewOf(m.data(), {n});
    auto vv = lrt::viewOf(v.data(), {n});
    auto h = lrt::viewOf(hyper.data(), {lrt::kNumHyper});
    auto mt = lrt::viewOf(metrics.data(), {lrt::kNumMetrics});
    fns.applyStep(&p, &g, &mm, &vv, &h, &mt);
  }

  /// Central finite differences of `loss` against grad()'s gradient, element by element.
  void checkFiniteDifferences(const std::function<float()> &loss) {
    grad();
    std::vector<float> analytic = grads;
    const float h = 1e-2f;
    for (size_t i = 0; i < params.size(); ++i) {
      float x = params[i];
      params[i] = x + h;
      float fp = loss();
      params[i] = x - h;
      float fm = loss();
      params[i] = x;
      float fd = (fp - fm) / (2 * h);
      EXPECT_NEAR(analytic[i], fd, 2e-3f + 2e-2f * std::fabs(fd)) << "element " << i;
    }
  }
};

constexpr uint64_t kSeed = 12345;

/// @loss = mean(dropout(x)) over x (64, 64), p = 0.25.
const char *kDropoutMean = R"(
module attributes {llmp.num_params = 4096 : i64} {
  func.func @loss(%x: tensor<64x64xf32> {llmp.param = "x", llmp.offset = 0 : i64},
                  %tokens: tensor<1x1xi32>, %targets: tensor<1x1xi32>,
                  %key: tensor<2xi32> {llmp.rng}) -> tensor<f32> attributes {llmp.differentiate} {
    %d = llmp.dropout %x, %key {p = 2.5e-01 : f32, seed = 12345 : i64} : (tensor<64x64xf32>, tensor<2xi32>) -> tensor<64x64xf32>
    %m = llmp.mean %d : (tensor<64x64xf32>) -> tensor<f32>
    return %m : tensor<f32>
  }
})";

// The gradient of mean(dropout(x)) is keep(i) / (1 - p) / N: its nonzeros are the kept
// elements, which must be those of the formula in LLMPOps.td, and their number must lie
// within 5 standard deviations of the binomial mean N (1 - p) = 3072 (sd sqrt(N p (1 - p))
// = 27.7). The key comes from hyper[kHyperStep] and hyper[kHyperMicroBatch].
TEST(Dropout, MaskMatchesFormulaAndBinomialBounds) {
  auto c = build(kDropoutMean, nullptr);
  ASSERT_TRUE(c);
  const int64_t n = 4096;
  const double p = 0.25;
  Steps s(c->fns, n, 0, {0}, 1, 1);
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  for (float &x : s.params)
    x = uni(rng);
  s.hyper[lrt::kHyperStep] = 3.0f;
  s.hyper[lrt::kHyperMicroBatch] = 1.0f;
  float loss = s.grad();
  const float kept = (1.0f / 4096.0f) * float(1.0 / (1.0 - p));
  int64_t count = 0;
  double ref = 0;
  for (int64_t i = 0; i < n; ++i) {
    bool keep = keepRef(kSeed, 3, 1, uint64_t(i), p);
    ASSERT_EQ(s.grads[i] != 0.0f, keep) << "element " << i;
    if (keep) {
      EXPECT_FLOAT_EQ(s.grads[i], kept);
      ++count;
      ref += s.params[i] / (1.0 - p);
    }
  }
  EXPECT_NEAR(double(count), n * (1 - p), 5 * std::sqrt(n * p * (1 - p)));
  EXPECT_NEAR(loss, ref / n, 1e-5);

  // The same key gives the same mask; another micro-batch or step another one (two
  // independent masks differ in 2 p (1 - p) N = 1536 elements on average).
  std::vector<float> first = s.grads;
  s.grad();
  EXPECT_EQ(s.grads, first);
  for (auto [step, micro] : {std::pair{3.0f, 0.0f}, std::pair{4.0f, 1.0f}}) {
    s.hyper[lrt::kHyperStep] = step;
    s.hyper[lrt::kHyperMicroBatch] = micro;
    s.grad();
    int64_t differ = 0;
    for (int64_t i = 0; i < n; ++i)
      differ += (s.grads[i] != 0.0f) != (first[i] != 0.0f);
    EXPECT_GT(differ, 1000) << "step " << step << " micro " << micro;
  }

  // eval_step runs without dropout: the plain mean, twice the same.
  double mean = 0;
  for (float x : s.params)
    mean += x;
  float e1 = s.eval(), e2 = s.eval();
  EXPECT_EQ(e1, e2);
  EXPECT_NEAR(e1, mean / n, 1e-6);
}

// d/dx of mean(silu(dropout(x)) * r) by grad_step against finite differences of grad_step's
// own loss with the same key: they agree only if the backward pass applies the forward's
// mask (a dropped element has gradient 0 and no effect on the loss).
TEST(Dropout, BackwardUsesTheForwardMask) {
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  std::vector<float> r(24);
  for (float &x : r)
    x = uni(rng);
  std::string src = R"(
module attributes {llmp.num_params = 24 : i64} {
  func.func @loss(%x: tensor<4x6xf32> {llmp.param = "x", llmp.offset = 0 : i64},
                  %tokens: tensor<1x1xi32>, %targets: tensor<1x1xi32>,
                  %key: tensor<2xi32> {llmp.rng}) -> tensor<f32> attributes {llmp.differentiate} {
    %d = llmp.dropout %x, %key {p = 5.0e-01 : f32, seed = 77 : i64} : (tensor<4x6xf32>, tensor<2xi32>) -> tensor<4x6xf32>
    %s = llmp.silu %d : (tensor<4x6xf32>) -> tensor<4x6xf32>
    %r = arith.constant )" + dense(r, 4) + R"( : tensor<4x6xf32>
    %y = llmp.mul %s, %r : (tensor<4x6xf32>, tensor<4x6xf32>) -> tensor<4x6xf32>
    %m = llmp.mean %y : (tensor<4x6xf32>) -> tensor<f32>
    return %m : tensor<f32>
  }
})";
  auto c = build(src, nullptr);
  ASSERT_TRUE(c);
  Steps s(c->fns, 24, 0, {0}, 1, 1);
  for (float &x : s.params)
    x = uni(rng);
  s.hyper[lrt::kHyperStep] = 2.0f;
  s.checkFiniteDifferences([&] {
    std::vector<float> keep = s.grads;
    float l = s.grad();
    s.grads = keep;
    return l;
  });
  int64_t dropped = 0;
  s.grad();
  for (int64_t i = 0; i < 24; ++i)
    dropped += !keepRef(77, 2, 0, uint64_t(i), 0.5) && s.grads[i] == 0.0f;
  EXPECT_GT(dropped, 0);
}

/// A tiny model for LoRA: h = embed[tokens] (6 x 8), y = h @ wq (8 x 5), loss =
/// mean(silu(y) * r); the adapted wq gets lora_A (2 x 8) and lora_B (5 x 2).
struct TinyLora {
  static constexpr int64_t V = 7, D = 8, O = 5, R = 2, N = 6;
  std::vector<float> embed, wq, r;
  std::vector<int32_t> tokens = {1, 4, 1, 6, 0, 4};
  std::string src;

  TinyLora() {
    std::mt19937 rng(21);
    std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
    auto fill = [&](std::vector<float> &v, int64_t n) {
      v.resize(n);
      for (float &x : v)
        x = uni(rng);
    };
    fill(embed, V * D);
    fill(wq, D * O);
    fill(r, N * O);
    src = R"(
module attributes {llmp.num_params = 96 : i64} {
  func.func @loss(%embed: tensor<7x8xf32> {llmp.param = "embed", llmp.offset = 0 : i64},
                  %wq: tensor<8x5xf32> {llmp.param = "layers.0.wq", llmp.offset = 56 : i64, llmp.decay},
                  %tokens: tensor<2x3xi32>, %targets: tensor<2x3xi32>) -> tensor<f32>
      attributes {llmp.differentiate} {
    %e = llmp.embedding %embed, %tokens : (tensor<7x8xf32>, tensor<2x3xi32>) -> tensor<2x3x8xf32>
    %h = llmp.reshape %e : (tensor<2x3x8xf32>) -> tensor<6x8xf32>
    %y = llmp.matmul %h, %wq : (tensor<6x8xf32>, tensor<8x5xf32>) -> tensor<6x5xf32>
    %s = llmp.silu %y : (tensor<6x5xf32>) -> tensor<6x5xf32>
    %r = arith.constant )" + dense(r, 6) + R"( : tensor<6x5xf32>
    %z = llmp.mul %s, %r : (tensor<6x5xf32>, tensor<6x5xf32>) -> tensor<6x5xf32>
    %m = llmp.mean %z : (tensor<6x5xf32>) -> tensor<f32>
    return %m : tensor<f32>
  }
})";
  }

  /// The buffers of the LoRA-compiled model (rank 2): the base in the frozen buffer at the
  /// byte offsets the pass assigns (embed at 0, wq at 256, 448 bytes), lora_A then lora_B
  /// uniform in [-0.5, 0.5) from `seed` (B nonzero too, so that A has a gradient).
  Steps steps(const lrt::StepFunctions &fns, unsigned seed) const {
    Steps s(fns, 26, 448, tokens, 2, 3);
    std::memcpy(s.frozen.data(), embed.data(), 4 * embed.size());
    std::memcpy(s.frozen.data() + 256, wq.data(), 4 * wq.size());
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> uni(-0.5f, 0.5f);
    for (float &x : s.params)
      x = uni(rng);
    return s;
  }

  /// The loss in double: y = h W + scale (h A^T) B^T, without dropout.
  double reference(const std::vector<float> &a, const std::vector<float> &b, double scale) const {
    double loss = 0;
    for (int64_t t = 0; t < N; ++t) {
      const float *h = &embed[tokens[t] * D];
      double u[R] = {0, 0};
      for (int64_t k = 0; k < R; ++k)
        for (int64_t i = 0; i < D; ++i)
          u[k] += double(h[i]) * a[k * D + i];
      for (int64_t o = 0; o < O; ++o) {
        double y = 0;
        for (int64_t i = 0; i < D; ++i)
          y += double(h[i]) * wq[i * O + o];
        for (int64_t k = 0; k < R; ++k)
          y += scale * u[k] * b[o * R + k];
        loss += y / (1 + std::exp(-y)) * r[t * O + o];
      }
    }
    return loss / (N * O);
  }
};

// LoRA on wq with rank 2, alpha 4 (scale 2): the frozen buffer holds embed at byte 0 (224
// bytes) and wq at byte 256 (the next multiple of 64; 160 bytes), 448 bytes in all; the
// trainable buffer holds lora_A (16) then lora_B (10). The loss equals the double
// reference, the gradients of A and B equal finite differences, and AdamW steps change the
// adapters, lower the loss and leave the frozen base bitwise unchanged.
TEST(Lora, LossAndAdapterGradients) {
  TinyLora m;
  llmp::LLMPApplyLoraOptions o;
  o.rank = 2;
  o.alpha = 4;
  o.targets = {"wq"};
  auto c = build(m.src, &o);
  ASSERT_TRUE(c);
  Steps s = m.steps(c->fns, 4);
  std::vector<float> a(s.params.begin(), s.params.begin() + 16), b(s.params.begin() + 16, s.params.end());
  double ref = m.reference(a, b, 2.0);
  EXPECT_NEAR(s.eval(), ref, 1e-5 * std::fabs(ref) + 1e-7);
  EXPECT_NEAR(s.grad(), ref, 1e-5 * std::fabs(ref) + 1e-7);
  s.checkFiniteDifferences([&] { return s.eval(); });

  // With B = 0 (PEFT's init) the adapter adds nothing: the base model's loss.
  std::vector<float> zeros(10, 0.0f);
  std::vector<float> saved = s.params;
  std::fill(s.params.begin() + 16, s.params.end(), 0.0f);
  double base = m.reference(a, zeros, 2.0);
  EXPECT_NEAR(s.eval(), base, 1e-5 * std::fabs(base) + 1e-7);
  s.params = saved;

  std::vector<uint8_t> frozenBefore = s.frozen;
  float first = s.eval();
  s.hyper[lrt::kHyperLr] = 0.05f;
  for (int step = 1; step <= 5; ++step) {
    s.hyper[lrt::kHyperStep] = float(step);
    s.grad();
    s.apply();
  }
  EXPECT_LT(s.eval(), first);
  EXPECT_NE(s.params, saved);
  EXPECT_EQ(s.frozen, frozenBefore);
}

/// LoRA rank 2, alpha 4 (scale 2) with adapter dropout 0.3 (mask seed 99) on `target`.
llmp::LLMPApplyLoraOptions dropoutLora(const std::string &target) {
  llmp::LLMPApplyLoraOptions o;
  o.rank = 2;
  o.alpha = 4;
  o.dropout = 0.3;
  o.seed = 99;
  o.targets = {target};
  return o;
}

// With adapter dropout 0.3 the adapter input is masked in grad_step only: A and B's
// gradients equal finite differences of grad_step's loss under the same key, and eval_step
// equals the reference without dropout.
TEST(Lora, DropoutOnTheAdapterInput) {
  TinyLora m;
  llmp::LLMPApplyLoraOptions o = dropoutLora("layers.*.wq");
  auto c = build(m.src, &o);
  ASSERT_TRUE(c);
  Steps s = m.steps(c->fns, 8);
  std::vector<float> a(s.params.begin(), s.params.begin() + 16), b(s.params.begin() + 16, s.params.end());
  double ref = m.reference(a, b, 2.0);
  EXPECT_NEAR(s.eval(), ref, 1e-5 * std::fabs(ref) + 1e-7);
  s.hyper[lrt::kHyperStep] = 7.0f;
  s.hyper[lrt::kHyperMicroBatch] = 2.0f;
  float dropped = s.grad();
  EXPECT_GT(std::fabs(dropped - ref), 1e-6) << "dropout changed nothing";
  s.checkFiniteDifferences([&] {
    std::vector<float> keep = s.grads;
    float l = s.grad();
    s.grads = keep;
    return l;
  });
}

// rsLoRA: rank 16, alpha 16 gives scale alpha / sqrt(rank) = 4 (issue #6), alpha / rank = 1
// without it; the module records the scale it multiplies by.
TEST(Lora, RsLoraScale) {
  TinyLora m;
  for (bool rs : {true, false}) {
    MLIRContext ctx;
    DialectRegistry registry;
    llmp::registerLLMPDialects(registry);
    ctx.appendDialectRegistry(registry);
    OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(m.src, &ctx);
    ASSERT_TRUE(module);
    llmp::LLMPApplyLoraOptions o;
    o.rank = 16;
    o.alpha = 16;
    o.rslora = rs;
    o.targets = {"all_linear"};
    ASSERT_TRUE(succeeded(llmp::applyLora(*module, o)));
    auto lora = (*module)->getAttrOfType<DictionaryAttr>("llmp.lora");
    ASSERT_TRUE(lora);
    EXPECT_EQ(cast<FloatAttr>(lora.get("scale")).getValueAsDouble(), rs ? 4.0 : 1.0);
    // all_linear adapts wq (2-D, decayed), not the embedding.
    EXPECT_EQ(cast<IntegerAttr>((*module)->getAttr("llmp.num_params")).getInt(),
              16 * 8 + 5 * 16);
  }
}

/// `src` with its ops from the adapted matmul to the product with r tagged as layer 0 (as
/// LLMPGen tags a `for b in layers` iteration) and, with `recompute`, the module attribute
/// that stage field `recompute: layers` sets.
std::string asLayer(std::string src, bool recompute) {
  auto tag = [&](const std::string &from, const std::string &to) {
    size_t at = src.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos)
      src.replace(at, from.size(), to);
  };
  tag("llmp.matmul %h, %wq :", "llmp.matmul %h, %wq {llmp.layer = 0 : i64} :");
  tag("llmp.silu %y :", "llmp.silu %y {llmp.layer = 0 : i64} :");
  tag("llmp.mul %s, %r :", "llmp.mul %s, %r {llmp.layer = 0 : i64} :");
  if (recompute)
    tag("{llmp.num_params = 96 : i64}", "{llmp.num_params = 96 : i64, llmp.recompute = \"layers\"}");
  return src;
}

/// Ops of the grad phase that llmp-recompute cloned (marked `llmp.recompute`).
int64_t recomputedOps(const std::string &src, const llmp::LLMPApplyLoraOptions &o) {
  Jit c;
  OwningOpRef<ModuleOp> module = llmp_test::parseModule(c, src);
  if (!module || failed(llmp::applyLora(*module, o)) ||
      failed(llmp::lowerToPhase(*module, llmp::Phase::Grad)))
    return -1;
  int64_t n = 0;
  module->walk([&](Operation *op) { n += op->hasAttr("llmp.recompute"); });
  return n;
}

// `recompute: layers` with adapter dropout 0.3: llmp-recompute clones layer 0's forward,
// the adapter and its dropout mask included, before its backward; the mask is a pure
// function of (seed, key, index), so the clone drops the same elements and grad_step's
// loss and gradients equal those without recompute bit for bit (the reference is the same
// model compiled without the attribute). The clones exist (ops marked llmp.recompute), and
// dropout was active (the loss differs from eval_step's).
TEST(Lora, DropoutUnderRecomputeGivesTheSameGradients) {
  TinyLora m;
  llmp::LLMPApplyLoraOptions o = dropoutLora("wq");
  std::string plain = asLayer(m.src, false), recompute = asLayer(m.src, true);
  EXPECT_EQ(recomputedOps(plain, o), 0);
  EXPECT_GT(recomputedOps(recompute, o), 3); // the matmul, the adapter and dropout at least
  auto c0 = build(plain, &o), c1 = build(recompute, &o);
  ASSERT_TRUE(c0 && c1);
  Steps s0 = m.steps(c0->fns, 8), s1 = m.steps(c1->fns, 8);
  for (Steps *s : {&s0, &s1}) {
    s->hyper[lrt::kHyperStep] = 3.0f;
    s->hyper[lrt::kHyperMicroBatch] = 1.0f;
  }
  float l0 = s0.grad(), l1 = s1.grad();
  EXPECT_EQ(l0, l1);
  EXPECT_EQ(s0.grads, s1.grads);
  EXPECT_GT(std::fabs(l0 - s0.eval()), 1e-6) << "dropout changed nothing";
}

} // namespace
