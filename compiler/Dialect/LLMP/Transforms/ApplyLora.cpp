// SPDX-License-Identifier: Apache-2.0
/// `llmp-apply-lora`: LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language
/// Models", eq. 3) as a rewrite of the llmp dialect. Algorithm:
///   1. The parameter arguments (`llmp.param`) of every function (@loss, @logits, ...) must
///      be the same list; the targets are matched against their names (exact, the last
///      dotted component such as `wq`, a glob such as `layers.*.wq`, or `all_linear`:
///      every 2-D parameter with `llmp.decay`, lang/Sema.cpp's linear layers).
///   2. Every base parameter becomes frozen: `llmp.offset`/`llmp.decay` give way to
///      `llmp.frozen` and `llmp.byte_offset` (fp32 bytes, each start 64-byte aligned, in
///      argument order). The module gets `llmp.frozen_bytes`.
///   3. For each target W, two trainable arguments follow the base parameters, in target
///      order: `<W>.lora_A` [rank, in] and `<W>.lora_B` [out, rank] (PEFT's layout, so an
///      export is a copy), at consecutive `llmp.offset`s from 0 with `llmp.decay`; the
///      module's `llmp.num_params` becomes their total.
///   4. Each `y = llmp.matmul x, W` (W not transposed as lhs) becomes, at the matmul's own
///      location: y + ((dropout(x) @ A^T) * scale) @ B^T, scale = alpha / rank, or
///      alpha / sqrt(rank) with rslora (Kalajdzievski 2023). Dropout (p > 0) only in
///      functions marked `llmp.differentiate`, keyed by a new last argument
///      `tensor<2xi32> {llmp.rng}` that llmp-build-steps fills; each adapted matmul gets its
///      own mask seed, mix64(seed + 0x9E3779B97F4A7C15 * (site + 1)).
#include "compiler/Dialect/LLMP/Transforms/Passes.h"
#include "runtime/StepABI.h"

#include "llvm/Support/GlobPattern.h"

#include <cmath>

namespace mlir::llmp {
#define GEN_PASS_DEF_LLMPAPPLYLORA
#include "compiler/Dialect/LLMP/Transforms/Passes.h.inc"
} // namespace mlir::llmp

using namespace mlir;
using namespace mlir::llmp;

namespace {

/// SplitMix64's output function (as llmp.dropout's mask).
uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// One adapted weight.
struct Target {
  unsigned arg;     ///< its argument index (the same in every function)
  std::string name; ///< its `llmp.param`
  int64_t in = 0, out = 0;
};

bool matches(StringRef name, bool linear, StringRef pattern) {
  if (pattern == "all_linear")
    return linear;
  if (name == pattern || name.ends_with(("." + pattern).str()))
    return true;
  auto glob = llvm::GlobPattern::create(pattern);
  if (!glob) {
    llvm::consumeError(glob.takeError());
    return false;
  }
  return glob->match(name);
}

} // namespace

LogicalResult mlir::llmp::applyLora(ModuleOp module, const LLMPApplyLoraOptions &o) {
  MLIRContext *ctx = module.getContext();
  ctx->getOrLoadDialect<arith::ArithDialect>();
  if (o.rank <= 0)
    return module.emitError() << "llmp-apply-lora: expected a rank > 0 but found " << o.rank;
  if (!(o.dropout >= 0.0 && o.dropout < 1.0))
    return module.emitError() << "llmp-apply-lora: expected a dropout in [0, 1) but found "
                              << o.dropout;
  if (o.targets.empty())
    return module.emitError() << "llmp-apply-lora: expected at least one target";
  if (module->hasAttr("llmp.frozen_bytes"))
    return module.emitError() << "llmp-apply-lora: the module already has frozen parameters";
  double alpha = o.alpha > 0 ? double(o.alpha) : double(o.rank);
  double scale = o.rslora ? alpha / std::sqrt(double(o.rank)) : alpha / double(o.rank);

  // 1. Functions with parameters, and their common parameter list.
  SmallVector<func::FuncOp> fns;
  for (auto f : module.getOps<func::FuncOp>())
    if (f.getNumArguments() > 0 && f.getArgAttr(0, "llmp.param"))
      fns.push_back(f);
  if (fns.empty())
    return module.emitError() << "llmp-apply-lora: no function with llmp.param arguments";
  func::FuncOp ref = fns.front();
  unsigned numParams = 0;
  while (numParams < ref.getNumArguments() && ref.getArgAttr(numParams, "llmp.param"))
    ++numParams;
  for (func::FuncOp f : fns)
    for (unsigned i = 0; i <= numParams; ++i) {
      bool isParam = i < f.getNumArguments() && f.getArgAttr(i, "llmp.param");
      if (isParam != (i < numParams) ||
          (isParam && f.getArgAttr(i, "llmp.param") != ref.getArgAttr(i, "llmp.param")) ||
          (isParam && f.getArgument(i).getType() != ref.getArgument(i).getType()))
        return f.emitOpError() << "expected the same " << numParams
                               << " leading parameter arguments as @" << ref.getName();
    }

  SmallVector<Target> targets;
  for (unsigned i = 0; i < numParams; ++i) {
    std::string name = cast<StringAttr>(ref.getArgAttr(i, "llmp.param")).str();
    auto ty = cast<RankedTensorType>(ref.getArgument(i).getType());
    bool linear = ty.getRank() == 2 && ref.getArgAttr(i, "llmp.decay");
    if (llvm::any_of(o.targets, [&](const std::string &t) { return matches(name, linear, t); }))
      targets.push_back({i, name});
  }
  for (const std::string &t : o.targets)
    if (!llvm::any_of(targets, [&](const Target &x) {
          auto ty = cast<RankedTensorType>(ref.getArgument(x.arg).getType());
          return matches(x.name, ty.getRank() == 2 && ref.getArgAttr(x.arg, "llmp.decay"), t);
        }))
      return module.emitError() << "llmp-apply-lora: target '" << t
                                << "' matches no parameter";

  // The adapters' shapes from the matmuls that read each target: in = K, out = N.
  for (Target &t : targets) {
    auto ty = cast<RankedTensorType>(ref.getArgument(t.arg).getType());
    if (ty.getRank() != 2)
      return module.emitError() << "llmp-apply-lora: target '" << t.name << "' has rank "
                                << ty.getRank() << "; LoRA adapts matrices";
    for (func::FuncOp f : fns)
      for (Operation *user : f.getArgument(t.arg).getUsers()) {
        auto mm = dyn_cast<MatmulOp>(user);
        if (!mm || mm.getRhs() != f.getArgument(t.arg))
          continue;
        if (mm.getTransposeA())
          return mm.emitOpError() << "cannot adapt '" << t.name
                                  << "': its matmul transposes the input";
        auto lhs = cast<RankedTensorType>(mm.getLhs().getType());
        auto res = cast<RankedTensorType>(mm.getType());
        t.in = lhs.getDimSize(1);
        t.out = res.getDimSize(1);
      }
    if (t.in == 0)
      return module.emitError() << "llmp-apply-lora: target '" << t.name
                                << "' is not the weight of any llmp.matmul";
  }

  // 2./3. The layout: frozen bytes for the base, flat offsets for the adapters.
  Builder b(ctx);
  SmallVector<int64_t> byteOffset(numParams);
  int64_t frozenBytes = 0;
  for (unsigned i = 0; i < numParams; ++i) {
    frozenBytes = lrt::alignFrozen(frozenBytes);
    byteOffset[i] = frozenBytes;
    frozenBytes += 4 * cast<RankedTensorType>(ref.getArgument(i).getType()).getNumElements();
  }
  frozenBytes = lrt::alignFrozen(frozenBytes);
  int64_t trainable = 0;
  struct Adapter {
    std::string name;
    RankedTensorType type;
    int64_t offset;
  };
  SmallVector<Adapter> adapters;
  for (const Target &t : targets) {
    auto a = RankedTensorType::get({o.rank, t.in}, b.getF32Type());
    auto bt = RankedTensorType::get({t.out, o.rank}, b.getF32Type());
    adapters.push_back({t.name + ".lora_A", a, trainable});
    trainable += a.getNumElements();
    adapters.push_back({t.name + ".lora_B", bt, trainable});
    trainable += bt.getNumElements();
  }

  // 4. Rewrite every function.
  for (func::FuncOp f : fns) {
    for (unsigned i = 0; i < numParams; ++i) {
      NamedAttrList attrs;
      attrs.set("llmp.param", f.getArgAttr(i, "llmp.param"));
      attrs.set("llmp.frozen", b.getUnitAttr());
      attrs.set("llmp.byte_offset", b.getI64IntegerAttr(byteOffset[i]));
      f.setArgAttrs(i, attrs.getDictionary(ctx));
    }
    Location argLoc = f.getLoc();
    for (size_t k = 0; k < adapters.size(); ++k) {
      NamedAttrList attrs;
      attrs.set("llmp.param", b.getStringAttr(adapters[k].name));
      attrs.set("llmp.offset", b.getI64IntegerAttr(adapters[k].offset));
      attrs.set("llmp.decay", b.getUnitAttr());
      if (failed(f.insertArgument(numParams + k, adapters[k].type, attrs.getDictionary(ctx),
                                  argLoc)))
        return failure();
    }
    bool training = f->hasAttr("llmp.differentiate") && o.dropout > 0;
    Value key;
    if (training) {
      unsigned n = f.getNumArguments();
      if (failed(f.insertArgument(n, RankedTensorType::get({2}, b.getI32Type()),
                                  b.getDictionaryAttr(b.getNamedAttr("llmp.rng", b.getUnitAttr())),
                                  argLoc)))
        return failure();
      key = f.getArgument(n);
    }
    int64_t site = 0;
    for (size_t ti = 0; ti < targets.size(); ++ti) {
      Value w = f.getArgument(targets[ti].arg);
      Value a = f.getArgument(numParams + 2 * ti), bm = f.getArgument(numParams + 2 * ti + 1);
      SmallVector<MatmulOp> uses;
      for (Operation *user : w.getUsers())
        if (auto mm = dyn_cast<MatmulOp>(user); mm && mm.getRhs() == w)
          uses.push_back(mm);
      for (MatmulOp mm : uses) {
        OpBuilder ob(mm);
        ob.setInsertionPointAfter(mm);
        Location loc = mm.getLoc();
        Value x = mm.getLhs();
        auto xTy = cast<RankedTensorType>(x.getType());
        int64_t rows = xTy.getDimSize(0);
        if (training) {
          uint64_t seed = mix64(uint64_t(o.seed) + 0x9E3779B97F4A7C15ull * uint64_t(site + 1));
          x = DropoutOp::create(ob, loc, xTy, x, key, ob.getF32FloatAttr(float(o.dropout)),
                                ob.getI64IntegerAttr(int64_t(seed)));
        }
        ++site;
        auto uTy = RankedTensorType::get({rows, o.rank}, ob.getF32Type());
        Value u = MatmulOp::create(ob, loc, uTy, x, a, UnitAttr(), ob.getUnitAttr());
        if (scale != 1.0) {
          Value s = arith::ConstantOp::create(
              ob, loc, DenseElementsAttr::get(uTy, ob.getF32FloatAttr(float(scale))));
          u = MulOp::create(ob, loc, uTy, u, s);
        }
        Value v = MatmulOp::create(ob, loc, mm.getType(), u, bm, UnitAttr(), ob.getUnitAttr());
        auto sum = AddOp::create(ob, loc, mm.getType(), mm.getResult(), v);
        mm.getResult().replaceAllUsesExcept(sum, sum.getOperation());
      }
    }
  }
  module->setAttr("llmp.num_params", b.getI64IntegerAttr(trainable));
  module->setAttr("llmp.frozen_bytes", b.getI64IntegerAttr(frozenBytes));
  module->setAttr("llmp.lora", b.getDictionaryAttr(
                                   {b.getNamedAttr("rank", b.getI64IntegerAttr(o.rank)),
                                    b.getNamedAttr("alpha", b.getF64FloatAttr(alpha)),
                                    b.getNamedAttr("scale", b.getF64FloatAttr(scale)),
                                    b.getNamedAttr("dropout", b.getF64FloatAttr(o.dropout))}));
  return success();
}

namespace {
struct LLMPApplyLoraPass : mlir::llmp::impl::LLMPApplyLoraBase<LLMPApplyLoraPass> {
  using LLMPApplyLoraBase::LLMPApplyLoraBase;
  void runOnOperation() override {
    LLMPApplyLoraOptions o;
    o.rank = rank;
    o.alpha = alpha;
    o.rslora = rslora;
    o.dropout = dropout;
    o.targets.assign(targets.begin(), targets.end());
    o.seed = seed;
    if (failed(applyLora(getOperation(), o)))
      signalPassFailure();
  }
};
} // namespace
