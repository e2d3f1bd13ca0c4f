// SPDX-License-Identifier: Apache-2.0
/// `llmp-build-steps`: the C-ABI step functions of runtime/StepABI.h. Algorithm:
///   1. Read the parameter layout (`llmp.param`, `llmp.offset`, `llmp.decay`) from the
///      arguments of `@loss` and the buffer size from the module's `llmp.num_params`.
///      Frozen parameters (`llmp.frozen`, `llmp.byte_offset`) live in the frozen byte
///      buffer of `llmp.frozen_bytes` bytes (module attribute; absent or 0: none), which
///      every step but apply_step then takes after the trainable buffers: an f32 argument
///      is a `memref.view` of its bytes, an i8 argument (an NF4 blob) a subview. They have
///      no gradient (llmp-autodiff returns none) and no optimizer state.
///      An argument marked `llmp.rng` (tensor<2xi32>, the dropout key) is no data
///      argument: grad_step fills it with [hyper[kHyperStep], hyper[kHyperMicroBatch]].
///   2. grad_step: view each parameter slice of the flat `params` memref as a tensor,
///      clone `@loss_grad`'s body with its seed (the constant marked `llmp.seed`) replaced
///      by hyper[kHyperGradScale], and add each gradient into its slice of `grads`
///      (accumulation over micro-batches); write the loss and the micro-batch's number of
///      target tokens (targets != -100) to `metrics`.
///   3. apply_step: reduce the global squared norm of `grads` (one reduction per run of
///      contiguous parameters), then run one AdamW linalg.generic on memrefs per run of
///      contiguous parameters with the same decay flag (params, m, v updated in place).
///   4. eval_step: clone `@loss`; logits_step: clone `@logits` and write the logits. Both
///      leave out `llmp.dropout` (its result is its input).
///   5. prefill_step / decode_step: clone `@prefill` / `@decode` and write their logits;
///      the KV cache arguments (`llmp.kv_cache`) are read and written in place: their
///      tensors are writable and the cache results are written back into them.
///   6. Make `@loss`, `@loss_grad`, `@logits`, `@prefill` and `@decode` private so
///      symbol-dce drops them.
#include "compiler/Dialect/LLMP/Transforms/Passes.h"

#include "runtime/StepABI.h"

#include "mlir/IR/IRMapping.h"

namespace mlir::llmp {
#define GEN_PASS_DEF_LLMPBUILDSTEPS
#include "compiler/Dialect/LLMP/Transforms/Passes.h.inc"
} // namespace mlir::llmp

using namespace mlir;
using namespace mlir::llmp;
using namespace lrt;

namespace {

/// One parameter slice of the flat buffers.
struct ParamSlice {
  int64_t offset;
  RankedTensorType type;
  bool decay;
};

/// Step functions being built in one module.
struct StepBuilder {
  ModuleOp module;
  int64_t numParams;
  int64_t frozenBytes; ///< 0: no frozen buffer argument
  OpBuilder b;
  Location loc;

  MemRefType flatType() { return MemRefType::get({numParams}, b.getF32Type()); }
  MemRefType frozenType() { return MemRefType::get({frozenBytes}, b.getI8Type()); }

  /// The tensor of frozen parameter `type` at byte `offset` of the frozen buffer.
  Value frozenTensor(Value frozen, int64_t offset, RankedTensorType type) {
    if (type.getElementType().isInteger(8)) {
      auto sub = memref::SubViewOp::create(
          b, loc, frozen, ArrayRef<OpFoldResult>{b.getIndexAttr(offset)},
          ArrayRef<OpFoldResult>{b.getIndexAttr(type.getNumElements())},
          ArrayRef<OpFoldResult>{b.getIndexAttr(1)});
      return toTensor(sub, type);
    }
    auto memTy = MemRefType::get(type.getShape(), type.getElementType());
    Value v = memref::ViewOp::create(b, loc, memTy, frozen, ci(offset), ValueRange{});
    return toTensor(v, type);
  }

  /// A memref view of the slice [offset, offset + numel) of `flat` with `type`'s shape.
  Value view(Value flat, int64_t offset, RankedTensorType type) {
    int64_t n = type.getNumElements();
    Value sub = memref::SubViewOp::create(b, loc, flat, ArrayRef<OpFoldResult>{b.getIndexAttr(offset)},
                                          ArrayRef<OpFoldResult>{b.getIndexAttr(n)},
                                          ArrayRef<OpFoldResult>{b.getIndexAttr(1)});
    if (type.getRank() == 1)
      return sub;
    if (type.getRank() == 0)
      return memref::CollapseShapeOp::create(b, loc, sub, SmallVector<ReassociationIndices>{});
    ReassociationIndices all;
    for (int64_t i = 0; i < type.getRank(); ++i)
      all.push_back(i);
    return memref::ExpandShapeOp::create(b, loc, type.getShape(), sub,
                                         SmallVector<ReassociationIndices>{all});
  }

  Value toTensor(Value memref, RankedTensorType type) {
    return bufferization::ToTensorOp::create(b, loc, type, memref, /*restrict=*/true,
                                             /*writable=*/false);
  }

  void writeInto(Value tensor, Value memref) {
    bufferization::MaterializeInDestinationOp::create(b, loc, Type(), tensor, memref,
                                                      /*restrict=*/true, /*writable=*/true);
  }

  /// Clones the single-block body of `f` with `args` for its arguments; returns what it
  /// returns. With `seed`, the op marked `llmp.seed` (llmp-autodiff's seed of the backward
  /// pass, a constant 1) is not cloned: its result becomes `seed`. Without `training`,
  /// `llmp.dropout` is not cloned: its result becomes its input.
  SmallVector<Value> inlineBody(func::FuncOp f, ValueRange args, Value seed = {},
                                bool training = false) {
    IRMapping map;
    Block &body = f.getBody().front();
    map.map(body.getArguments(), args);
    for (Operation &op : body.without_terminator()) {
      if (seed && op.hasAttr("llmp.seed") && op.getNumResults() == 1) {
        map.map(op.getResult(0), seed);
        continue;
      }
      if (auto drop = dyn_cast<DropoutOp>(op); drop && !training) {
        map.map(drop.getResult(), map.lookup(drop.getInput()));
        continue;
      }
      b.clone(op, map);
    }
    SmallVector<Value> results;
    for (Value v : body.getTerminator()->getOperands())
      results.push_back(map.lookup(v));
    return results;
  }

  /// The tensor arguments of `f`: parameter slices of `params` (frozen ones of `frozen`),
  /// the dropout key `rng` (zeros when null), then `data` memrefs.
  FailureOr<SmallVector<Value>> argsFor(func::FuncOp f, Value params, Value frozen,
                                        ValueRange data, Value rng = {}) {
    SmallVector<Value> args;
    unsigned next = 0;
    for (unsigned i = 0, e = f.getNumArguments(); i < e; ++i) {
      auto ty = cast<RankedTensorType>(f.getArgument(i).getType());
      if (f.getArgAttr(i, "llmp.rng")) {
        args.push_back(rng ? rng
                           : arith::ConstantOp::create(
                                 b, loc, DenseElementsAttr::get(ty, b.getI32IntegerAttr(0))));
        continue;
      }
      if (f.getArgAttr(i, "llmp.frozen")) {
        auto off = f.getArgAttrOfType<IntegerAttr>(i, "llmp.byte_offset");
        if (!off || !frozen)
          return f.emitOpError() << "expected an llmp.byte_offset on frozen parameter argument "
                                 << i << " and an llmp.frozen_bytes buffer";
        args.push_back(frozenTensor(frozen, off.getInt(), ty));
        continue;
      }
      if (f.getArgAttr(i, "llmp.param")) {
        auto off = f.getArgAttrOfType<IntegerAttr>(i, "llmp.offset");
        if (!off)
          return f.emitOpError() << "expected an llmp.offset on parameter argument " << i;
        args.push_back(toTensor(view(params, off.getInt(), ty), ty));
        continue;
      }
      if (next >= data.size())
        return f.emitOpError() << "expected " << data.size() << " data arguments but found more";
      args.push_back(toTensor(data[next++], ty));
    }
    return args;
  }

  func::FuncOp newStep(StringRef name, ArrayRef<Type> inputs) {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToEnd(module.getBody());
    auto fn = func::FuncOp::create(b, loc, name, b.getFunctionType(inputs, {}));
    fn->setAttr("llvm.emit_c_interface", b.getUnitAttr());
    fn.addEntryBlock();
    return fn;
  }

  Value cf(double v) { return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(v)); }
  Value ci(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }
  Value load(Value m, int64_t i) { return memref::LoadOp::create(b, loc, m, ValueRange{ci(i)}); }
  void store(Value v, Value m, int64_t i) { memref::StoreOp::create(b, loc, v, m, ValueRange{ci(i)}); }

  /// Sum of squares of a tensor, as an f32 scalar.
  Value sumSquares(Value t) {
    auto ty = cast<RankedTensorType>(t.getType());
    unsigned rank = ty.getRank();
    Value zero = cf(0.0);
    Value init = tensor::EmptyOp::create(b, loc, ArrayRef<int64_t>{}, b.getF32Type());
    init = linalg::FillOp::create(b, loc, ValueRange{zero}, ValueRange{init}).getResult(0);
    SmallVector<AffineMap> maps = {b.getMultiDimIdentityMap(rank),
                                   AffineMap::get(rank, 0, {}, b.getContext())};
    auto red = linalg::GenericOp::create(
        b, loc, TypeRange{init.getType()}, ValueRange{t}, ValueRange{init}, maps,
        SmallVector<utils::IteratorType>(rank, utils::IteratorType::reduction),
        [](OpBuilder &nb, Location nl, ValueRange a) {
          Value sq = arith::MulFOp::create(nb, nl, a[0], a[0]);
          linalg::YieldOp::create(nb, nl, ValueRange{arith::AddFOp::create(nb, nl, a[1], sq)});
        });
    return tensor::ExtractOp::create(b, loc, red.getResult(0), ValueRange{});
  }

  /// Scalars of one AdamW step, read from `hyper`.
  struct Adam {
    Value lr, b1, b2, eps, wd, bc1, bc2, factor;
  };

  /// One in-place AdamW update of the slice [offset, offset + n) of params/m/v.
  void adamw(const Adam &h, bool decay, int64_t offset, int64_t n, Value params, Value grads,
             Value m, Value v) {
    auto flat = RankedTensorType::get({n}, b.getF32Type());
    Value p = view(params, offset, flat), g = view(grads, offset, flat),
          ms = view(m, offset, flat), vs = view(v, offset, flat);
    AffineMap id = b.getMultiDimIdentityMap(1);
    linalg::GenericOp::create(
        b, loc, ValueRange{g}, ValueRange{p, ms, vs}, SmallVector<AffineMap>(4, id),
        SmallVector<utils::IteratorType>{utils::IteratorType::parallel},
        [&](OpBuilder &nb, Location nl, ValueRange a) {
          auto mul = [&](Value x, Value y) { return arith::MulFOp::create(nb, nl, x, y).getResult(); };
          auto add = [&](Value x, Value y) { return arith::AddFOp::create(nb, nl, x, y).getResult(); };
          auto sub = [&](Value x, Value y) { return arith::SubFOp::create(nb, nl, x, y).getResult(); };
          auto div = [&](Value x, Value y) { return arith::DivFOp::create(nb, nl, x, y).getResult(); };
          Value one = arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(1.0f));
          Value gr = mul(a[0], h.factor);
          Value mN = add(mul(h.b1, a[2]), mul(sub(one, h.b1), gr));
          Value vN = add(mul(h.b2, a[3]), mul(sub(one, h.b2), mul(gr, gr)));
          Value mhat = div(mN, h.bc1), vhat = div(vN, h.bc2);
          Value upd = div(mhat, add(math::SqrtOp::create(nb, nl, vhat), h.eps));
          if (decay)
            upd = add(upd, mul(h.wd, a[1]));
          Value pN = sub(a[1], mul(h.lr, upd));
          linalg::YieldOp::create(nb, nl, ValueRange{pN, mN, vN});
        });
  }

  /// The number of elements of the i32 tensor `targets` that are not kIgnoreIndex, as f32.
  Value countTargets(Value targets) {
    auto ty = cast<RankedTensorType>(targets.getType());
    unsigned rank = ty.getRank();
    Value init = tensor::EmptyOp::create(b, loc, ArrayRef<int64_t>{}, b.getF32Type());
    init = linalg::FillOp::create(b, loc, ValueRange{cf(0.0)}, ValueRange{init}).getResult(0);
    SmallVector<AffineMap> maps = {b.getMultiDimIdentityMap(rank),
                                   AffineMap::get(rank, 0, {}, b.getContext())};
    auto red = linalg::GenericOp::create(
        b, loc, TypeRange{init.getType()}, ValueRange{targets}, ValueRange{init}, maps,
        SmallVector<utils::IteratorType>(rank, utils::IteratorType::reduction),
        [](OpBuilder &nb, Location nl, ValueRange a) {
          Value ignore = arith::ConstantOp::create(nb, nl, nb.getI32IntegerAttr(kIgnoreIndex));
          Value keep = arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::ne, a[0], ignore);
          Value one = arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(1.0f));
          Value zero = arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(0.0f));
          Value inc = arith::SelectOp::create(nb, nl, keep, one, zero);
          linalg::YieldOp::create(nb, nl, ValueRange{arith::AddFOp::create(nb, nl, a[1], inc)});
        });
    return tensor::ExtractOp::create(b, loc, red.getResult(0), ValueRange{});
  }

  /// grad_step(params, grads, data..., hyper, metrics): grads += scale * dloss/dparams.
  LogicalResult buildGrad(func::FuncOp lossGrad, ArrayRef<ParamSlice> slices,
                          ArrayRef<Type> dataTypes) {
    if (dataTypes.size() < 2 ||
        !cast<MemRefType>(dataTypes[1]).getElementType().isInteger(32))
      return lossGrad.emitOpError()
             << "expected i32 tokens and targets as the first two data arguments";
    MemRefType flat = flatType();
    SmallVector<Type> inputs = {flat, flat};
    unsigned nb = 2 + (frozenBytes > 0);
    if (frozenBytes > 0)
      inputs.push_back(frozenType());
    inputs.append(dataTypes.begin(), dataTypes.end());
    inputs.append({MemRefType::get({kNumHyper}, b.getF32Type()),
                   MemRefType::get({kNumMetrics}, b.getF32Type())});
    func::FuncOp fn = newStep("grad_step", inputs);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&fn.getBody().front());
    ValueRange a = fn.getArguments();
    Value params = a[0], grads = a[1], frozen = frozenBytes > 0 ? a[2] : Value();
    ValueRange data = a.slice(nb, dataTypes.size());
    Value hyper = a[nb + dataTypes.size()], metrics = a[nb + 1 + dataTypes.size()];
    // The dropout key [step, micro-batch] (exact in f32 below 2^24).
    auto toI32 = [&](int64_t slot) -> Value {
      return arith::FPToSIOp::create(b, loc, b.getI32Type(), load(hyper, slot));
    };
    Value rng;
    for (unsigned i = 0, e = lossGrad.getNumArguments(); i < e; ++i)
      if (lossGrad.getArgAttr(i, "llmp.rng"))
        rng = tensor::FromElementsOp::create(b, loc, RankedTensorType::get({2}, b.getI32Type()),
                                             ValueRange{toI32(kHyperStep), toI32(kHyperMicroBatch)});
    auto args = argsFor(lossGrad, params, frozen, data, rng);
    if (failed(args))
      return failure();
    // The backward pass starts from d(scale * loss)/d(loss) = scale: every gradient comes
    // out scaled, with no pass over the parameters for it.
    Value scale = load(hyper, kHyperGradScale);
    Value seed = tensor::FromElementsOp::create(
        b, loc, RankedTensorType::get({}, b.getF32Type()), ValueRange{scale});
    // The slices of `grads` as writable tensors, before the body: a gradient computed by
    // a matrix product accumulates straight into its slice where the product is
    // (llmp-accumulate-into-matmul), so its inputs need not live to the end of the step.
    SmallVector<std::pair<Value, Value>> dsts; // (memref view, tensor)
    for (const ParamSlice &slice : slices) {
      Value dst = view(grads, slice.offset, slice.type);
      dsts.push_back({dst, bufferization::ToTensorOp::create(b, loc, slice.type, dst,
                                                             /*restrict=*/true,
                                                             /*writable=*/true)});
    }
    SmallVector<Value> res = inlineBody(lossGrad, *args, seed, /*training=*/true);

    // grads[slice] += g, computed in place on the slice (to_tensor writable: the sum's
    // destination is the buffer it reads).
    AffineMap id1 = b.getMultiDimIdentityMap(1);
    for (auto [slice, g, d] : llvm::zip(slices, ArrayRef<Value>(res).drop_front(), dsts)) {
      auto [dst, old] = d;
      unsigned rank = slice.type.getRank();
      AffineMap id = rank == 1 ? id1 : b.getMultiDimIdentityMap(rank);
      auto sum = linalg::GenericOp::create(
          b, loc, TypeRange{slice.type}, ValueRange{g}, ValueRange{old},
          SmallVector<AffineMap>(2, id),
          SmallVector<utils::IteratorType>(rank, utils::IteratorType::parallel),
          [](OpBuilder &nb, Location nl, ValueRange x) {
            linalg::YieldOp::create(nb, nl, ValueRange{arith::AddFOp::create(nb, nl, x[1], x[0])});
          });
      writeInto(sum.getResult(0), dst);
    }
    store(tensor::ExtractOp::create(b, loc, res[0], ValueRange{}), metrics, kMetricLoss);
    Value targets = (*args)[args->size() - dataTypes.size() + 1];
    store(countTargets(targets), metrics, kMetricTokens);
    func::ReturnOp::create(b, loc);
    return success();
  }

  /// Calls fn(start, numel, decay) for each maximal run of `sorted` (by offset) slices
  /// that follow each other without a gap, and, with `byDecay`, share the decay flag.
  static void forEachRun(ArrayRef<ParamSlice> sorted, bool byDecay,
                         llvm::function_ref<void(int64_t, int64_t, bool)> fn) {
    for (size_t i = 0; i < sorted.size();) {
      int64_t start = sorted[i].offset, end = start + sorted[i].type.getNumElements();
      bool decay = sorted[i].decay;
      size_t j = i + 1;
      while (j < sorted.size() && sorted[j].offset == end &&
             (!byDecay || sorted[j].decay == decay))
        end += sorted[j++].type.getNumElements();
      fn(start, end - start, decay);
      i = j;
    }
  }

  /// apply_step(params, grads, m, v, hyper, metrics): global norm, clip, AdamW in place.
  LogicalResult buildApply(ArrayRef<ParamSlice> slices) {
    MemRefType flat = flatType();
    func::FuncOp fn = newStep("apply_step", {flat, flat, flat, flat,
                                             MemRefType::get({kNumHyper}, b.getF32Type()),
                                             MemRefType::get({kNumMetrics}, b.getF32Type())});
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&fn.getBody().front());
    ValueRange a = fn.getArguments();
    Value params = a[0], grads = a[1], m = a[2], v = a[3], hyper = a[4], metrics = a[5];

    // The squared global norm: one reduction per run of contiguous slices (a LoRA
    // stage's adapters, or a full model's parameters, are one run), so that apply_step
    // is a few loops rather than one per slice; a gap between slices is never read.
    SmallVector<ParamSlice> sorted(slices);
    llvm::sort(sorted, [](auto &x, auto &y) { return x.offset < y.offset; });
    Value sumsq = cf(0.0);
    forEachRun(sorted, /*byDecay=*/false, [&](int64_t start, int64_t n, bool) {
      auto flat1 = RankedTensorType::get({n}, b.getF32Type());
      sumsq = arith::AddFOp::create(b, loc, sumsq,
                                    sumSquares(toTensor(view(grads, start, flat1), flat1)));
    });
    Value norm = math::SqrtOp::create(b, loc, sumsq);
    store(norm, metrics, kMetricGradNorm);

    // Clip factor min(1, clip / (norm + 1e-6)) when clip > 0, else 1.
    Adam h;
    h.lr = load(hyper, kHyperLr);
    h.b1 = load(hyper, kHyperBeta1);
    h.b2 = load(hyper, kHyperBeta2);
    h.eps = load(hyper, kHyperEps);
    h.wd = load(hyper, kHyperWeightDecay);
    Value clip = load(hyper, kHyperGradClip), t = load(hyper, kHyperStep);
    Value one = cf(1.0);
    Value ratio = arith::DivFOp::create(b, loc, clip, arith::AddFOp::create(b, loc, norm, cf(1e-6)));
    Value clipped = arith::MinimumFOp::create(b, loc, one, ratio);
    Value doClip = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OGT, clip, cf(0.0));
    h.factor = arith::SelectOp::create(b, loc, doClip, clipped, one);
    h.bc1 = arith::SubFOp::create(b, loc, one, math::PowFOp::create(b, loc, h.b1, t));
    h.bc2 = arith::SubFOp::create(b, loc, one, math::PowFOp::create(b, loc, h.b2, t));

    // One update per run of contiguous slices with the same decay flag.
    forEachRun(sorted, /*byDecay=*/true, [&](int64_t start, int64_t n, bool decay) {
      adamw(h, decay, start, n, params, grads, m, v);
    });
    func::ReturnOp::create(b, loc);
    return success();
  }

  LogicalResult buildEval(func::FuncOp loss, ArrayRef<Type> dataTypes) {
    SmallVector<Type> inputs = {flatType()};
    unsigned nb = 1 + (frozenBytes > 0);
    if (frozenBytes > 0)
      inputs.push_back(frozenType());
    inputs.append(dataTypes.begin(), dataTypes.end());
    inputs.push_back(MemRefType::get({kNumMetrics}, b.getF32Type()));
    func::FuncOp fn = newStep("eval_step", inputs);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&fn.getBody().front());
    ValueRange a = fn.getArguments();
    auto args = argsFor(loss, a[0], frozenBytes > 0 ? a[1] : Value(),
                        a.slice(nb, dataTypes.size()));
    if (failed(args))
      return failure();
    SmallVector<Value> res = inlineBody(loss, *args);
    store(tensor::ExtractOp::create(b, loc, res[0], ValueRange{}), a.back(), kMetricLoss);
    func::ReturnOp::create(b, loc);
    return success();
  }

  LogicalResult buildLogits(func::FuncOp logits) {
    SmallVector<Type> dataTypes;
    for (unsigned i = 0, e = logits.getNumArguments(); i < e; ++i)
      if (!logits.getArgAttr(i, "llmp.param") && !logits.getArgAttr(i, "llmp.rng")) {
        auto ty = cast<RankedTensorType>(logits.getArgument(i).getType());
        dataTypes.push_back(MemRefType::get(ty.getShape(), ty.getElementType()));
      }
    if (logits.getNumResults() != 1)
      return logits.emitOpError() << "expected one logits result but found "
                                  << logits.getNumResults();
    auto outTy = cast<RankedTensorType>(logits.getResultTypes()[0]);
    SmallVector<Type> inputs = {flatType()};
    unsigned nb = 1 + (frozenBytes > 0);
    if (frozenBytes > 0)
      inputs.push_back(frozenType());
    inputs.append(dataTypes);
    inputs.push_back(MemRefType::get(outTy.getShape(), outTy.getElementType()));
    func::FuncOp fn = newStep("logits_step", inputs);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&fn.getBody().front());
    ValueRange a = fn.getArguments();
    auto args = argsFor(logits, a[0], frozenBytes > 0 ? a[1] : Value(),
                        a.slice(nb, dataTypes.size()));
    if (failed(args))
      return failure();
    SmallVector<Value> res = inlineBody(logits, *args);
    writeInto(res[0], a.back());
    func::ReturnOp::create(b, loc);
    return success();
  }
};

/// The step function `step` (prefill_step, decode_step) of an inference function `f`
/// (@prefill, @decode): f(params, data..., caches...) -> (logits, caches...) becomes
/// step(params, [frozen], data..., caches..., logits), the caches updated in place.
LogicalResult buildCachedStep(StepBuilder &sb, func::FuncOp f, StringRef step) {
  OpBuilder &b = sb.b;
  SmallVector<Type> dataTypes;
  SmallVector<unsigned> cacheArgs; ///< indices into the data arguments
  for (unsigned i = 0, e = f.getNumArguments(); i < e; ++i) {
    if (f.getArgAttr(i, "llmp.param") || f.getArgAttr(i, "llmp.rng"))
      continue;
    if (f.getArgAttr(i, "llmp.kv_cache"))
      cacheArgs.push_back(dataTypes.size());
    auto ty = cast<RankedTensorType>(f.getArgument(i).getType());
    dataTypes.push_back(MemRefType::get(ty.getShape(), ty.getElementType()));
  }
  if (f.getNumResults() != 1 + cacheArgs.size())
    return f.emitOpError() << "expected the logits and " << cacheArgs.size()
                           << " caches as results but found " << f.getNumResults();
  auto outTy = cast<RankedTensorType>(f.getResultTypes()[0]);
  SmallVector<Type> inputs = {sb.flatType()};
  unsigned nb = 1 + (sb.frozenBytes > 0);
  if (sb.frozenBytes > 0)
    inputs.push_back(sb.frozenType());
  inputs.append(dataTypes);
  inputs.push_back(MemRefType::get(outTy.getShape(), outTy.getElementType()));
  func::FuncOp fn = sb.newStep(step, inputs);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(&fn.getBody().front());
  ValueRange a = fn.getArguments();
  ValueRange data = a.slice(nb, dataTypes.size());
  auto args = sb.argsFor(f, a[0], sb.frozenBytes > 0 ? a[1] : Value(), data);
  if (failed(args))
    return failure();
  // The cache tensors may be updated in place (writable views of the runtime's buffers).
  for (Value v : *args)
    if (auto t = v.getDefiningOp<bufferization::ToTensorOp>())
      for (unsigned c : cacheArgs)
        if (t.getBuffer() == data[c])
          t.setWritable(true);
  SmallVector<Value> res = sb.inlineBody(f, *args);
  for (auto [i, c] : llvm::enumerate(cacheArgs))
    sb.writeInto(res[1 + i], data[c]);
  sb.writeInto(res[0], a.back());
  func::ReturnOp::create(b, sb.loc);
  return success();
}

/// Every frozen parameter argument of every function lies inside the frozen buffer of
/// `frozenBytes` bytes at a 64-byte aligned `llmp.byte_offset`, as f32, bf16 (llmp-bf16-base)
/// or i8 (NF4 blob).
LogicalResult checkFrozen(ModuleOp module, int64_t frozenBytes) {
  for (auto f : module.getOps<func::FuncOp>())
    for (unsigned i = 0, e = f.getNumArguments(); i < e; ++i) {
      if (!f.getArgAttr(i, "llmp.frozen"))
        continue;
      auto ty = cast<RankedTensorType>(f.getArgument(i).getType());
      auto off = f.getArgAttrOfType<IntegerAttr>(i, "llmp.byte_offset");
      unsigned bits = ty.getElementTypeBitWidth();
      if (!off || (bits != 32 && bits != 16 && bits != 8))
        return f.emitOpError() << "expected frozen parameter argument " << i
                               << " to be f32, bf16 or i8 with an llmp.byte_offset";
      int64_t bytes = ty.getNumElements() * bits / 8;
      if (off.getInt() < 0 || off.getInt() % 64 != 0 || off.getInt() + bytes > frozenBytes)
        return f.emitOpError() << "expected frozen parameter argument " << i
                               << " at a 64-byte aligned offset inside llmp.frozen_bytes = "
                               << frozenBytes << " but found byte offset " << off.getInt()
                               << " with " << bytes << " bytes";
    }
  return success();
}

struct LLMPBuildStepsPass : mlir::llmp::impl::LLMPBuildStepsBase<LLMPBuildStepsPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto n = module->getAttrOfType<IntegerAttr>("llmp.num_params");
    if (!n) {
      module.emitOpError() << "expected an llmp.num_params attribute";
      return signalPassFailure();
    }
    auto loss = module.lookupSymbol<func::FuncOp>("loss");
    auto lossGrad = module.lookupSymbol<func::FuncOp>("loss_grad");
    auto logits = module.lookupSymbol<func::FuncOp>("logits");
    if (loss && !lossGrad) {
      loss.emitOpError() << "expected @loss_grad next to @loss (run llmp-autodiff first)";
      return signalPassFailure();
    }
    int64_t frozenBytes = 0;
    if (auto fb = module->getAttrOfType<IntegerAttr>("llmp.frozen_bytes"))
      frozenBytes = fb.getInt();
    if (failed(checkFrozen(module, frozenBytes)))
      return signalPassFailure();
    StepBuilder sb{module, n.getInt(), frozenBytes, OpBuilder(module.getContext()),
                   module.getLoc()};
    if (loss) {
      SmallVector<ParamSlice> slices;
      SmallVector<Type> dataTypes;
      for (unsigned i = 0, e = loss.getNumArguments(); i < e; ++i) {
        auto ty = cast<RankedTensorType>(loss.getArgument(i).getType());
        if (loss.getArgAttr(i, "llmp.frozen") || loss.getArgAttr(i, "llmp.rng"))
          continue;
        if (!loss.getArgAttr(i, "llmp.param")) {
          dataTypes.push_back(MemRefType::get(ty.getShape(), ty.getElementType()));
          continue;
        }
        auto off = loss.getArgAttrOfType<IntegerAttr>(i, "llmp.offset");
        if (!off) {
          loss.emitOpError() << "expected an llmp.offset on parameter argument " << i;
          return signalPassFailure();
        }
        if (off.getInt() < 0 || off.getInt() + ty.getNumElements() > n.getInt()) {
          loss.emitOpError() << "expected parameter argument " << i << " inside [0, "
                             << n.getInt() << ") but found offset " << off.getInt()
                             << " with " << ty.getNumElements() << " elements";
          return signalPassFailure();
        }
        slices.push_back({off.getInt(), ty, static_cast<bool>(loss.getArgAttr(i, "llmp.decay"))});
      }
      if (failed(sb.buildGrad(lossGrad, slices, dataTypes)) || failed(sb.buildApply(slices)) ||
          failed(sb.buildEval(loss, dataTypes)))
        return signalPassFailure();
      loss.setPrivate();
      lossGrad.setPrivate();
    }
    if (logits) {
      if (failed(sb.buildLogits(logits)))
        return signalPassFailure();
      logits.setPrivate();
    }
    for (auto [name, step] : {std::pair<StringRef, StringRef>{"prefill", "prefill_step"},
                              {"decode", "decode_step"}})
      if (auto f = module.lookupSymbol<func::FuncOp>(name)) {
        if (failed(buildCachedStep(sb, f, step)))
          return signalPassFailure();
        f.setPrivate();
      }
  }
};

} // namespace
