// SPDX-License-Identifier: Apache-2.0
/// `llmp-linalg-to-lrt`: f32 matmuls on memrefs -> calls into kernels/cpu. Algorithm:
///   1. Collect linalg.matmul / linalg.batch_matmul ops with buffer semantics and f32 operands.
///   2. Read the transposes from their indexing maps; skip ops with other maps.
///   3. Cast the operands to fully dynamic strided memrefs and call the kernel (declared
///      once per module, with llvm.emit_c_interface), then erase the op.
#include "compiler/Conversion/LinalgToLRT/Passes.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"

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

MemRefType dynamicType(MLIRContext *ctx, unsigned rank) {
  SmallVector<int64_t> shape(rank, ShapedType::kDynamic), strides(rank, ShapedType::kDynamic);
  return MemRefType::get(shape, Float32Type::get(ctx),
                         StridedLayoutAttr::get(ctx, ShapedType::kDynamic, strides));
}

struct LLMPLinalgToLRTPass : mlir::llmp::impl::LLMPLinalgToLRTBase<LLMPLinalgToLRTPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = &getContext();
    SmallVector<linalg::LinalgOp> todo;
    module.walk([&](linalg::LinalgOp op) {
      if (!isa<linalg::MatmulOp, linalg::BatchMatmulOp>(op) || !op.hasPureBufferSemantics())
        return;
      for (Value v : op->getOperands())
        if (!cast<MemRefType>(v.getType()).getElementType().isF32())
          return;
      todo.push_back(op);
    });
    for (linalg::LinalgOp op : todo) {
      bool batched = isa<linalg::BatchMatmulOp>(op);
      auto t = transposes(op, batched);
      if (!t)
        continue;
      StringRef name = batched ? "lrt_batch_matmul_f32" : "lrt_matmul_f32";
      MemRefType dyn = dynamicType(ctx, batched ? 3 : 2);
      Type i32 = IntegerType::get(ctx, 32);
      auto fnType = FunctionType::get(ctx, {i32, i32, dyn, dyn, dyn}, {});
      if (!module.lookupSymbol(name)) {
        OpBuilder mb = OpBuilder::atBlockEnd(module.getBody());
        auto decl = func::FuncOp::create(mb, module.getLoc(), name, fnType);
        decl.setPrivate();
        decl->setAttr("llvm.emit_c_interface", mb.getUnitAttr());
      }
      OpBuilder b(op);
      Location loc = op.getLoc();
      SmallVector<Value> args = {
          arith::ConstantOp::create(b, loc, b.getI32IntegerAttr(t->first)),
          arith::ConstantOp::create(b, loc, b.getI32IntegerAttr(t->second))};
      for (Value v : op->getOperands())
        args.push_back(memref::CastOp::create(b, loc, dyn, v));
      func::CallOp::create(b, loc, name, TypeRange{}, args);
      op->erase();
    }
  }
};

} // namespace
