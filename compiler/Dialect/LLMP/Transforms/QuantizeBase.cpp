// SPDX-License-Identifier: Apache-2.0
/// `llmp-quantize-base`: QLoRA's frozen base (Dettmers et al. 2023, section 3) as a rewrite
/// of the llmp dialect, after `llmp-apply-lora`. Algorithm:
///   1. The frozen parameter arguments (`llmp.frozen`) that are linear weights, i.e. 2-D and
///      used in every function only as the weight of `llmp.matmul` (its rhs, lhs not
///      transposed), are quantized; other frozen parameters (embeddings, norms, a tied
///      output head read by `llmp.embedding`) stay fp32.
///   2. Each quantized argument W [rows, cols] becomes the i8 blob of its NF4 tensor
///      (kernels/cpu/Quant.h Nf4Layout: nf4Layout(rows * cols, block, double_quant)
///      .byteSize bytes) with `llmp.nf4 = {block, double_quant}`; every frozen argument gets a
///      new `llmp.byte_offset` (64-byte aligned, argument order) and the module a new
///      `llmp.frozen_bytes`.
///   3. Each `llmp.matmul %x, %W {transpose_b?}` becomes `llmp.matmul_nf4 %x, %blob {rows,
///      cols, block, double_quant, transpose_b?}` at the matmul's own location; its gradient
///      reaches x only (the blob is frozen).
/// The runtime quantizes the fp32 weights into the blobs when it fills the frozen buffer.
#include "compiler/Dialect/LLMP/Transforms/FrozenArgs.h"
#include "compiler/Dialect/LLMP/Transforms/Passes.h"
#include "kernels/cpu/Quant.h"

namespace mlir::llmp {
#define GEN_PASS_DEF_LLMPQUANTIZEBASE
#include "compiler/Dialect/LLMP/Transforms/Passes.h.inc"
} // namespace mlir::llmp

using namespace mlir;
using namespace mlir::llmp;

LogicalResult mlir::llmp::quantizeBase(ModuleOp module, const LLMPQuantizeBaseOptions &o) {
  MLIRContext *ctx = module.getContext();
  if (o.block < 1)
    return module.emitError() << "llmp-quantize-base: expected a block size >= 1 but found "
                              << o.block;
  if (!module->hasAttr("llmp.frozen_bytes"))
    return module.emitError() << "llmp-quantize-base: expected frozen parameters (run "
                                 "llmp-apply-lora first)";
  // 1. Frozen arguments by index, and which of them are linear weights in every function.
  SmallVector<func::FuncOp> fns;
  FrozenArgs frozen = frozenLinearWeights(module, fns);
  auto linear = [&](unsigned i) { return frozen.converts.lookup(i); };
  if (!llvm::any_of(frozen.indices, linear))
    return module.emitError() << "llmp-quantize-base: no frozen linear weight (a 2-D frozen "
                                 "parameter used only as the weight of llmp.matmul) to quantize";
  // 2. The new layout of the frozen buffer.
  relayoutFrozen(module, fns, frozen, [&](unsigned i, RankedTensorType ty) -> int64_t {
    return linear(i) ? lrt::quant::nf4Layout(ty.getNumElements(), o.block, o.doubleQuant).byteSize
                     : 4 * ty.getNumElements();
  });
  OpBuilder b(ctx);
  NamedAttrList tag;
  tag.append("block", b.getI64IntegerAttr(o.block));
  tag.append("double_quant", b.getBoolAttr(o.doubleQuant));
  DictionaryAttr nf4 = tag.getDictionary(ctx);
  // 3. Rewrite every function.
  for (func::FuncOp f : fns)
    for (unsigned i : frozen.indices) {
      if (!linear(i) || i >= f.getNumArguments() || !f.getArgAttr(i, "llmp.frozen"))
        continue;
      BlockArgument arg = f.getArgument(i);
      auto ty = cast<RankedTensorType>(arg.getType());
      int64_t rows = ty.getDimSize(0), cols = ty.getDimSize(1);
      int64_t bytes = lrt::quant::nf4Layout(rows * cols, o.block, o.doubleQuant).byteSize;
      SmallVector<MatmulOp> uses;
      for (Operation *user : arg.getUsers())
        uses.push_back(cast<MatmulOp>(user));
      arg.setType(RankedTensorType::get({bytes}, b.getI8Type()));
      f.setArgAttr(i, "llmp.nf4", nf4);
      for (MatmulOp mm : uses) {
        b.setInsertionPoint(mm);
        auto q = MatmulNf4Op::create(b, mm.getLoc(), mm.getType(), mm.getLhs(), arg,
                                     b.getI64IntegerAttr(rows), b.getI64IntegerAttr(cols),
                                     b.getI64IntegerAttr(o.block),
                                     o.doubleQuant ? b.getUnitAttr() : UnitAttr(),
                                     mm.getTransposeB() ? b.getUnitAttr() : UnitAttr());
        mm.replaceAllUsesWith(q.getResult());
        mm.erase();
      }
    }
  syncFunctionTypes(fns);
  return success();
}

namespace {

struct LLMPQuantizeBasePass : mlir::llmp::impl::LLMPQuantizeBaseBase<LLMPQuantizeBasePass> {
  using LLMPQuantizeBaseBase::LLMPQuantizeBaseBase;
  void runOnOperation() override {
    LLMPQuantizeBaseOptions o;
    o.block = block;
    o.doubleQuant = doubleQuant;
    if (failed(quantizeBase(getOperation(), o)))
      signalPassFailure();
  }
};

} // namespace
