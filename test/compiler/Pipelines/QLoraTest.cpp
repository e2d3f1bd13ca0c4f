// SPDX-License-Identifier: Apache-2.0
/// QLoRA through the whole compiler on the CPU (llmp-apply-lora, then llmp-quantize-base):
/// a tiny model whose frozen linear weights are NF4 blobs in the frozen buffer, written by
/// lrt::storeFrozenParam, gives the loss and adapter gradients of the same LoRA model whose
/// frozen fp32 weights are the dequantized values (lrt::loadFrozenParam, i.e.
/// dequantizeNf4), and it trains with the blobs left bitwise unchanged.
///
/// Tolerances: the two modules compute the same fp32 products of the same weights, only
/// summed in another order (the fused kernel's panels vs one sgemm), so the loss agrees to
/// a few fp32 ulps (bound 1e-5 relative) and the gradients to 1e-4 of their largest.
#include "compiler/Dialect/LLMP/Transforms/Passes.h"
#include "compiler/Pipelines/Pipelines.h"
#include "compiler/Target/CPU/JIT.h"
#include "test/compiler/CompiledTestUtil.h"
#include "runtime/Frozen.h"
#include "runtime/StepABI.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <random>

using namespace mlir;

namespace {

/// embed [11, 16] (fp32: read by llmp.embedding), w1 [16, 40], w2 [40, 16] (LoRA targets)
/// and the head wout [16, 11]: loss = next-token cross-entropy of
/// ((x + silu(x w1) w2) wout), x = embed[tokens], over B = 2 rows of T = 5 tokens.
const char *kTinyModel = R"(
module attributes {llmp.num_params = 1632 : i64} {
  func.func @loss(%embed: tensor<11x16xf32> {llmp.param = "embed", llmp.offset = 0 : i64},
                  %w1: tensor<16x40xf32> {llmp.param = "l.w1", llmp.offset = 176 : i64, llmp.decay},
                  %w2: tensor<40x16xf32> {llmp.param = "l.w2", llmp.offset = 816 : i64, llmp.decay},
                  %wout: tensor<16x11xf32> {llmp.param = "wout", llmp.offset = 1456 : i64, llmp.decay},
                  %tokens: tensor<2x5xi32>, %targets: tensor<2x5xi32>) -> tensor<f32>
      attributes {llmp.differentiate} {
    %e = llmp.embedding %embed, %tokens : (tensor<11x16xf32>, tensor<2x5xi32>) -> tensor<2x5x16xf32>
    %x = llmp.reshape %e : (tensor<2x5x16xf32>) -> tensor<10x16xf32>
    %h = llmp.matmul %x, %w1 : (tensor<10x16xf32>, tensor<16x40xf32>) -> tensor<10x40xf32>
    %s = llmp.silu %h : (tensor<10x40xf32>) -> tensor<10x40xf32>
    %d = llmp.matmul %s, %w2 : (tensor<10x40xf32>, tensor<40x16xf32>) -> tensor<10x16xf32>
    %r = llmp.add %x, %d : (tensor<10x16xf32>, tensor<10x16xf32>) -> tensor<10x16xf32>
    %lg = llmp.matmul %r, %wout : (tensor<10x16xf32>, tensor<16x11xf32>) -> tensor<10x11xf32>
    %l3 = llmp.reshape %lg : (tensor<10x11xf32>) -> tensor<2x5x11xf32>
    %ce = llmp.cross_entropy %l3, %targets : (tensor<2x5x11xf32>, tensor<2x5xi32>) -> tensor<2x5xf32>
    %m = llmp.target_mean %ce, %targets : (tensor<2x5xf32>, tensor<2x5xi32>) -> tensor<f32>
    return %m : tensor<f32>
  }
})";

const std::map<std::string, std::vector<int64_t>> kShapes = {
    {"embed", {11, 16}}, {"l.w1", {16, 40}}, {"l.w2", {40, 16}}, {"wout", {16, 11}}};

/// A compiled LoRA (nf4 = false) or QLoRA module and the layout of its parameters, read
/// from the rewritten @loss as LLMPGen reads a stage's (llmp.offset / llmp.byte_offset /
/// llmp.nf4).
struct Stage : llmp_test::Compiled {
  std::vector<lrt::ParamInfo> params;
  int64_t numParams = 0, frozenBytes = 0;
  lrt::Nf4Spec nf4;
};

std::unique_ptr<Stage> build(bool nf4, int64_t block, bool doubleQuant) {
  auto s = std::make_unique<Stage>();
  OwningOpRef<ModuleOp> module = llmp_test::parseModule(*s, kTinyModel);
  llmp::LLMPApplyLoraOptions lora;
  lora.rank = 4;
  lora.alpha = 8;
  lora.targets = {"w1", "w2"};
  if (!module || failed(llmp::applyLora(*module, lora)))
    return nullptr;
  s->nf4 = {nf4, block, doubleQuant};
  if (nf4) {
    llmp::LLMPQuantizeBaseOptions q;
    q.block = block;
    q.doubleQuant = doubleQuant;
    if (failed(llmp::quantizeBase(*module, q)))
      return nullptr;
  }
  auto f = module->lookupSymbol<func::FuncOp>("loss");
  for (unsigned i = 0; i < f.getNumArguments(); ++i) {
    auto name = f.getArgAttrOfType<StringAttr>(i, "llmp.param");
    if (!name)
      continue;
    lrt::ParamInfo p;
    p.name = name.str();
    auto it = kShapes.find(p.name);
    auto ty = cast<RankedTensorType>(f.getArgument(i).getType());
    p.shape = it != kShapes.end() ? it->second : std::vector<int64_t>(ty.getShape());
    p.numel = p.shape[0] * p.shape[1];
    if (auto off = f.getArgAttrOfType<IntegerAttr>(i, "llmp.byte_offset")) {
      p.frozen = true;
      p.byteOffset = off.getInt();
      p.storage = f.getArgAttr(i, "llmp.nf4") ? lrt::Storage::NF4 : lrt::Storage::F32;
      p.byteSize = ty.getNumElements() * ty.getElementTypeBitWidth() / 8;
    } else {
      p.offset = f.getArgAttrOfType<IntegerAttr>(i, "llmp.offset").getInt();
    }
    s->params.push_back(p);
  }
  s->numParams = (*module)->getAttrOfType<IntegerAttr>("llmp.num_params").getInt();
  s->frozenBytes = (*module)->getAttrOfType<IntegerAttr>("llmp.frozen_bytes").getInt();
  if (failed(llmp::lowerToPhase(*module, llmp::Phase::LLVM)))
    return nullptr;
  if (!llmp_test::jitCompile(*s, *module))
    return nullptr;
  return s;
}

/// The buffers of one stage and its grad/eval/apply calls (frozen ABI of StepABI.h).
struct StageRun {
  const Stage &st;
  std::vector<float> params, grads, m, v, hyper = std::vector<float>(lrt::kNumHyper, 0.0f),
                                          metrics = std::vector<float>(lrt::kNumMetrics, 0.0f);
  std::vector<uint8_t> frozen;
  std::vector<int32_t> tokens = {1, 4, 1, 6, 0, 9, 3, 3, 10, 2};
  std::vector<int32_t> targets = {4, 1, 6, 0, 9, 3, 3, 10, 2, 7};

  explicit StageRun(const Stage &s)
      : st(s), params(s.numParams), grads(s.numParams), m(s.numParams), v(s.numParams),
        frozen(s.frozenBytes) {
    hyper[lrt::kHyperLr] = 3e-2f;
    hyper[lrt::kHyperBeta1] = 0.9f;
    hyper[lrt::kHyperBeta2] = 0.999f;
    hyper[lrt::kHyperEps] = 1e-8f;
    hyper[lrt::kHyperGradScale] = 1.0f;
  }
  float eval() {
    auto p = lrt::viewOf(params.data(), {(int64_t)params.size()});
    auto fz = lrt::viewOf(frozen.data(), {(int64_t)frozen.size()});
    auto tk = lrt::viewOf(tokens.data(), {2, 5});
    auto tg = lrt::viewOf(targets.data(), {2, 5});
    auto mt = lrt::viewOf(metrics.data(), {lrt::kNumMetrics});
    reinterpret_cast<lrt::FrozenEvalStepFn>(reinterpret_cast<void *>(st.fns.evalStep))(&p, &fz, &tk, &tg, &mt);
    return metrics[lrt::kMetricLoss];
  }
  void grad() {
    std::fill(grads.begin(), grads.end(), 0.0f);
    int64_t n = params.size();
    auto p = lrt::viewOf(params.data(), {n});
    auto g = lrt::viewOf(grads.data(), {n});
    auto fz = lrt::viewOf(frozen.data(), {(int64_t)frozen.size()});
    auto tk = lrt::viewOf(tokens.data(), {2, 5});
    auto tg = lrt::viewOf(targets.data(), {2, 5});
    auto h = lrt::viewOf(hyper.data(), {lrt::kNumHyper});
    auto mt = lrt::viewOf(metrics.data(), {lrt::kNumMetrics});
    reinterpret_cast<lrt::FrozenGradStepFn>(reinterpret_cast<void *>(st.fns.gradStep))(&p, &g, &fz, &tk, &tg, &h, &mt);
  }
  void apply() {
    int64_t n = params.size();
    auto p = lrt::viewOf(params.data(), {n});
    auto g = lrt::viewOf(grads.data(), {n});
    auto mm = lrt::viewOf(m.data(), {n});
    auto vv = lrt::viewOf(v.data(), {n});
    auto h = lrt::viewOf(hyper.data(), {lrt::kNumHyper});
    auto mt = lrt::viewOf(metrics.data(), {lrt::kNumMetrics});
    st.fns.applyStep(&p, &g, &mm, &vv, &h, &mt);
  }
};

/// Random fp32 values of every parameter of kTinyModel and the adapters (B nonzero, so
/// that the adapters change the loss).
std::map<std::string, std::vector<float>> randomValues(const Stage &s) {
  std::mt19937 rng(17);
  std::normal_distribution<float> normal(0.0f, 0.4f);
  std::uniform_real_distribution<float> uni(-0.3f, 0.3f);
  std::map<std::string, std::vector<float>> values;
  for (const lrt::ParamInfo &p : s.params) {
    std::vector<float> v(p.numel);
    for (float &x : v)
      x = p.frozen ? normal(rng) : uni(rng);
    values[p.name] = v;
  }
  return values;
}

/// Fills `run`'s buffers: trainable values at their offsets, frozen ones through
/// storeFrozenParam (quantized when NF4).
void fill(StageRun &run, const std::map<std::string, std::vector<float>> &values) {
  for (const lrt::ParamInfo &p : run.st.params) {
    const std::vector<float> &v = values.at(p.name);
    if (p.frozen)
      ASSERT_TRUE(lrt::storeFrozenParam(p, run.st.nf4, v.data(), run.frozen.data(), run.st.frozenBytes).isOk()) << p.name;
    else
      std::copy(v.begin(), v.end(), run.params.begin() + p.offset);
  }
}

void checkQloraEqualsLoraOnDequantizedBase(int64_t block, bool doubleQuant) {
  SCOPED_TRACE(testing::Message() << "block " << block << " double_quant " << doubleQuant);
  auto q = build(true, block, doubleQuant), l = build(false, block, doubleQuant);
  ASSERT_TRUE(q && l);
  int nf4 = 0;
  for (const lrt::ParamInfo &p : q->params)
    nf4 += p.storage == lrt::Storage::NF4;
  ASSERT_EQ(nf4, 3); // w1, w2 and wout; embed stays fp32
  ASSERT_EQ(q->numParams, l->numParams);
  auto values = randomValues(*q);
  StageRun rq(*q), rl(*l), rf(*l);
  fill(rq, values);
  fill(rf, values); // the LoRA model on the fp32 base
  // The LoRA model on the dequantized base: what QLoRA's blobs hold, read back.
  auto deq = values;
  for (const lrt::ParamInfo &p : q->params)
    if (p.frozen)
      ASSERT_TRUE(lrt::loadFrozenParam(p, q->nf4, rq.frozen.data(), q->frozenBytes, deq[p.name].data()).isOk());
  fill(rl, deq);
  float lossQ = rq.eval(), lossL = rl.eval(), lossF = rf.eval();
  std::printf("block %lld: loss QLoRA %.7f, LoRA on the dequantized base %.7f, on the fp32 base %.7f\n",
              (long long)block, lossQ, lossL, lossF);
  EXPECT_NEAR(lossQ, lossL, 1e-5 * std::fabs(lossL));
  // NF4 really changed the base: the fp32 base gives another loss.
  EXPECT_GT(std::fabs(lossF - lossL), 1e-3) << lossF << " " << lossL;
  rq.grad();
  rl.grad();
  float gmax = 0;
  for (float g : rl.grads)
    gmax = std::max(gmax, std::fabs(g));
  ASSERT_GT(gmax, 0.0f);
  for (size_t i = 0; i < rl.grads.size(); ++i)
    ASSERT_NEAR(rq.grads[i], rl.grads[i], 1e-4f * gmax) << "adapter element " << i;
}

} // namespace

TEST(QLora, LossAndGradientsEqualLoraOnDequantizedBase) {
  checkQloraEqualsLoraOnDequantizedBase(64, true);
  checkQloraEqualsLoraOnDequantizedBase(7, false);
}

// 60 AdamW steps (lr 3e-2) on the adapters only: the loss falls below half its initial
// value on these 10 tokens, and the NF4 blobs stay bitwise unchanged.
TEST(QLora, TrainsWithFrozenBlobsUnchanged) {
  auto q = build(true, 64, true);
  ASSERT_TRUE(q);
  StageRun r(*q);
  fill(r, randomValues(*q));
  std::vector<uint8_t> frozen0 = r.frozen;
  float first = r.eval();
  for (int step = 1; step <= 60; ++step) {
    r.hyper[lrt::kHyperStep] = float(step);
    r.grad();
    r.apply();
  }
  float last = r.eval();
  std::printf("QLoRA training: loss %.5f -> %.5f after 60 steps\n", first, last);
  EXPECT_LT(last, 0.5f * first) << "first " << first << " last " << last;
  EXPECT_TRUE(r.frozen == frozen0);
}
