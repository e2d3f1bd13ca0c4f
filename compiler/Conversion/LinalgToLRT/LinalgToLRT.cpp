// SPDX-License-Identifier: Apache-2.0
/// `llmp-linalg-to-lrt`: f32 matmuls on memrefs -> calls into kernels/cpu. Algorithm:
///   1. Collect linalg.matmul / linalg.batch_matmul ops with buffer semantics and f32 operands,
///      and 2-D linalg.matmul ops whose B alone is bf16 (a frozen base weight stored in bf16,
///      llmp-bf16-base), which call lrt_matmul_bf16_b (kernels/cpu/MatmulBf16.h).
///   2. Read the transposes from their indexing maps; skip ops with other maps.
///   3. Look back from the op for C's last writer (overwritesZeroFill): when it is a
///      linalg.fill of +0.0 into exactly C's memref, with nothing in between that may read,
///      write or free C (or a view of it), the call overwrites C (accumulate = 0, BLAS
///      beta 0) and the fill is erased; otherwise it accumulates (accumulate = 1).
///   4. Cast the operands to fully dynamic strided memrefs and call the kernel (declared
///      once per module, with llvm.emit_c_interface), then erase the op.
/// First, linalg.generic ops tagged `llmp.matmul_nf4` (QLoRA's frozen NF4 products) become
/// calls of the fused dequantize-and-multiply kernel lrt_matmul_nf4_f32.
#include "compiler/Conversion/LinalgToLRT/Passes.h"
#include "compiler/Dialect/LLMP/Transforms/StaticArena.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/IR/Matchers.h"
#include "mlir/Interfaces/FunctionInterfaces.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Interfaces/ViewLikeInterface.h"

namespace mlir::llmp {
#define GEN_PASS_DEF_LLMPLINALGTOLRT
#include "compiler/Conversion/LinalgToLRT/Passes.h.inc"
} // namespace mlir::llmp

using namespace mlir;

namespace {

/// The transposes (ta, tb) encoded by a contraction's maps, or nothing for other maps.
std::optional<std::pair<bool, bool>> transposes(linalg::LinalgOp op, bool batched) {
  SmallVector<AffineMap> maps = op.getIndexingMapsArray();
  MLIRContext *ctx = op->getContext();
  unsigned o = batched ? 1 : 0, r = o + 3;
  auto get = [&](unsigned x, unsigned y) {
    SmallVector<AffineExpr> e;
    if (batched)
      e.push_back(getAffineDimExpr(0, ctx));
    e.append({getAffineDimExpr(x, ctx), getAffineDimExpr(y, ctx)});
    return AffineMap::get(r, 0, e, ctx);
  };
  unsigned m = o, n = o + 1, k = o + 2;
  if (maps.size() != 3 || maps[2] != get(m, n))
    return std::nullopt;
  bool ta, tb;
  if (maps[0] == get(m, k))
    ta = false;
  else if (maps[0] == get(k, m))
    ta = true;
  else
    return std::nullopt;
  if (maps[1] == get(k, n))
    tb = false;
  else if (maps[1] == get(n, k))
    tb = true;
  else
    return std::nullopt;
  return std::make_pair(ta, tb);
}

MemRefType dynamicType(MLIRContext *ctx, unsigned rank, Type elt = {}) {
  SmallVector<int64_t> shape(rank, ShapedType::kDynamic), strides(rank, ShapedType::kDynamic);
  return MemRefType::get(shape, elt ? elt : Float32Type::get(ctx),
                         StridedLayoutAttr::get(ctx, ShapedType::kDynamic, strides));
}

/// Declares the private kernel `name` of type `fnType` (C interface) once per module.
void declareKernel(ModuleOp module, StringRef name, FunctionType fnType) {
  if (module.lookupSymbol(name))
    return;
  OpBuilder mb = OpBuilder::atBlockEnd(module.getBody());
  auto decl = func::FuncOp::create(mb, module.getLoc(), name, fnType);
  decl.setPrivate();
  decl->setAttr("llvm.emit_c_interface", mb.getUnitAttr());
}

/// A linalg.generic tagged `llmp.matmul_nf4` (llmp-lower-to-linalg's form of
/// llmp.matmul_nf4: ins x (M, K) f32 and the i8 blob, outs C) on buffers -> a call of
/// lrt_matmul_nf4_f32(tb, rows, cols, block, double_quant, x, blob, C)
/// (kernels/cpu/Nf4Matmul.h), which accumulates into C as the generic does.
void nf4ToCall(ModuleOp module, linalg::GenericOp op) {
  MLIRContext *ctx = module.getContext();
  auto tag = op->getAttrOfType<DictionaryAttr>("llmp.matmul_nf4");
  Type i32 = IntegerType::get(ctx, 32), i64 = IntegerType::get(ctx, 64);
  MemRefType f2 = dynamicType(ctx, 2), b1 = dynamicType(ctx, 1, IntegerType::get(ctx, 8));
  declareKernel(module, "lrt_matmul_nf4_f32",
                FunctionType::get(ctx, {i32, i64, i64, i64, i32, f2, b1, f2}, {}));
  OpBuilder b(op);
  Location loc = op.getLoc();
  auto intArg = [&](StringRef key, Type ty) -> Value {
    Attribute a = tag.get(key);
    int64_t v = isa_and_nonnull<BoolAttr>(a) ? cast<BoolAttr>(a).getValue()
                                             : cast<IntegerAttr>(a).getInt();
    return arith::ConstantOp::create(b, loc, b.getIntegerAttr(ty, v));
  };
  SmallVector<Value> args = {intArg("transpose_b", i32), intArg("rows", i64), intArg("cols", i64),
                             intArg("block", i64), intArg("double_quant", i32),
                             memref::CastOp::create(b, loc, f2, op.getDpsInputs()[0]),
                             memref::CastOp::create(b, loc, b1, op.getDpsInputs()[1]),
                             memref::CastOp::create(b, loc, f2, op.getDpsInits()[0])};
  func::CallOp::create(b, loc, "lrt_matmul_nf4_f32", TypeRange{}, args);
  op->erase();
}

/// Whether `op` is a tagged NF4 product on buffers with the operands nf4ToCall expects.
bool isNf4Product(linalg::GenericOp op) {
  auto tag = op->getAttrOfType<DictionaryAttr>("llmp.matmul_nf4");
  if (!tag || !op.hasPureBufferSemantics() || op.getNumDpsInputs() != 2 || op.getNumDpsInits() != 1)
    return false;
  for (StringRef key : {"rows", "cols", "block", "double_quant", "transpose_b"})
    if (!tag.get(key))
      return false;
  return true;
}

/// Whether `op` is a 2-D linalg.matmul of an f32 A and a bf16 B into an f32 C.
bool storedBf16(linalg::LinalgOp op) {
  auto elt = [&](Value v) { return cast<MemRefType>(v.getType()).getElementType(); };
  return isa<linalg::MatmulOp>(op) && elt(op.getDpsInputs()[0]).isF32() &&
         elt(op.getDpsInputs()[1]).isBF16() && elt(op.getDpsInits()[0]).isF32();
}

/// The buffer `v` is a view of: view-like ops (subview, reshapes, casts) followed back to
/// their source, stopping at a buffer that llmp-static-arena placed in its arena.
Value rootBuffer(Value v) {
  while (auto view = v.getDefiningOp<ViewLikeOpInterface>()) {
    if (llmp::isArenaView(v))
      break;
    v = view.getViewSource();
  }
  return v;
}

/// Whether buffers with roots `x` and `y` are certainly disjoint: different roots, each a
/// memref.alloc / alloca result, a buffer of llmp-static-arena's arena or an argument of
/// its function's entry block, and one of them not an argument (two arguments may alias
/// each other). Any other root (a region's iteration argument, a select, a call's result)
/// may alias anything. Two arena buffers share bytes only when their lifetimes are
/// disjoint, and the ops this is asked about (a GEMM's operands, the ops between a fill
/// and its GEMM) lie where both are live.
bool disjointRoots(Value x, Value y) {
  auto fresh = [](Value v) {
    return v.getDefiningOp<memref::AllocOp>() || v.getDefiningOp<memref::AllocaOp>() ||
           llmp::isArenaView(v);
  };
  auto known = [&](Value v) {
    auto arg = dyn_cast<BlockArgument>(v);
    return fresh(v) || (arg && arg.getOwner()->isEntryBlock() &&
                        isa<FunctionOpInterface>(arg.getOwner()->getParentOp()));
  };
  return x != y && known(x) && known(y) && (fresh(x) || fresh(y));
}

/// The zero fill whose values the GEMM `op` (C += op(A) op(B)) would accumulate onto, when
/// `op` may overwrite C instead and the fill may go: walking back from `op` in its block,
/// the first op that may touch C's buffer (any memory effect on a possibly aliasing value,
/// or effects it does not declare) is a linalg.fill of +0.0 whose output is C's very
/// memref value, and neither A nor B is a view of C's buffer. Null otherwise.
linalg::FillOp overwritesZeroFill(linalg::LinalgOp op) {
  Value c = op.getDpsInits()[0], root = rootBuffer(c);
  for (Value in : op.getDpsInputs())
    if (!disjointRoots(rootBuffer(in), root))
      return {};
  for (Operation *prev = op->getPrevNode(); prev; prev = prev->getPrevNode()) {
    if (auto fill = dyn_cast<linalg::FillOp>(prev))
      if (fill.hasPureBufferSemantics() && fill.getOutputs()[0] == c)
        return matchPattern(fill.getInputs()[0], m_PosZeroFloat()) ? fill : linalg::FillOp();
    std::optional<SmallVector<MemoryEffects::EffectInstance>> effects =
        getEffectsRecursively(prev);
    if (!effects)
      return {};
    for (const MemoryEffects::EffectInstance &effect : *effects) {
      Value v = effect.getValue();
      if (!v || !isa<BaseMemRefType>(v.getType()) || !disjointRoots(rootBuffer(v), root))
        return {};
    }
  }
  return {};
}

struct LLMPLinalgToLRTPass : mlir::llmp::impl::LLMPLinalgToLRTBase<LLMPLinalgToLRTPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = &getContext();
    SmallVector<linalg::GenericOp> nf4;
    module.walk([&](linalg::GenericOp op) {
      if (isNf4Product(op))
        nf4.push_back(op);
    });
    for (linalg::GenericOp op : nf4)
      nf4ToCall(module, op);
    SmallVector<linalg::LinalgOp> todo;
    module.walk([&](linalg::LinalgOp op) {
      if (!isa<linalg::MatmulOp, linalg::BatchMatmulOp>(op) || !op.hasPureBufferSemantics())
        return;
      for (Value v : op->getOperands())
        if (!cast<MemRefType>(v.getType()).getElementType().isF32() &&
            (v != op.getDpsInputs()[1] || !storedBf16(op)))
          return;
      todo.push_back(op);
    });
    // Decide every overwrite before rewriting: a call (no declared effects) between a
    // fill and its GEMM would otherwise hide the fill.
    SmallVector<std::tuple<linalg::LinalgOp, std::pair<bool, bool>, linalg::FillOp>> calls;
    for (linalg::LinalgOp op : todo)
      if (auto t = transposes(op, isa<linalg::BatchMatmulOp>(op)))
        calls.emplace_back(op, *t, overwritesZeroFill(op));
    // `precision: bf16` stages (module attribute llmp.precision) multiply 2-D and batched
    // (attention's) products in bf16 with fp32 accumulation.
    auto precision = module->getAttrOfType<StringAttr>("llmp.precision");
    bool bf16 = precision && precision.getValue() == "bf16";
    for (auto [op, t, fill] : calls) {
      bool batched = isa<linalg::BatchMatmulOp>(op);
      bool storedB = storedBf16(op);
      StringRef name = batched   ? (bf16 ? "lrt_batch_matmul_bf16" : "lrt_batch_matmul_f32")
                       : storedB ? "lrt_matmul_bf16_b"
                       : bf16    ? "lrt_matmul_bf16"
                                 : "lrt_matmul_f32";
      MemRefType dyn = dynamicType(ctx, batched ? 3 : 2);
      MemRefType dynB = storedB ? dynamicType(ctx, 2, BFloat16Type::get(ctx)) : dyn;
      Type i32 = IntegerType::get(ctx, 32);
      declareKernel(module, name, FunctionType::get(ctx, {i32, i32, i32, dyn, dynB, dyn}, {}));
      OpBuilder b(op);
      Location loc = op.getLoc();
      SmallVector<Value> args = {
          arith::ConstantOp::create(b, loc, b.getI32IntegerAttr(t.first)),
          arith::ConstantOp::create(b, loc, b.getI32IntegerAttr(t.second)),
          arith::ConstantOp::create(b, loc, b.getI32IntegerAttr(fill ? 0 : 1))};
      for (Value v : op->getOperands())
        args.push_back(memref::CastOp::create(b, loc, v == op.getDpsInputs()[1] ? dynB : dyn, v));
      func::CallOp::create(b, loc, name, TypeRange{}, args);
      op->erase();
      if (fill)
        fill->erase();
    }
  }
};

} // namespace
