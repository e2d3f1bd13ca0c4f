// SPDX-License-Identifier: Apache-2.0
/// `llmp-fills-to-memset`: a `linalg.fill` of zero into a contiguous buffer becomes one
/// `llvm.intr.memset` of the buffer's bytes. Algorithm:
///   1. Collect every `linalg.fill` on a memref whose value is a constant with all bits
///      zero (0.0, 0) and whose memref type has a static shape, the identity layout and
///      whole-byte elements (so it covers numel x element-bytes contiguous bytes from its
///      aligned pointer).
///   2. Replace each by: aligned pointer (`memref.extract_aligned_pointer_as_index`) ->
///      i64 -> `!llvm.ptr`, then `llvm.intr.memset(ptr, 0 : i8, bytes)`.
/// Other fills (non-zero values, strided views) stay linalg ops and become loops.
#include "compiler/Conversion/LinalgToLRT/Passes.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"

namespace mlir::llmp {
#define GEN_PASS_DEF_LLMPFILLSTOMEMSET
#include "compiler/Conversion/LinalgToLRT/Passes.h.inc"
} // namespace mlir::llmp

using namespace mlir;

namespace {

/// True when `value` is a constant whose bits are all zero.
bool isZeroBits(Value value) {
  Attribute attr;
  if (auto cst = value.getDefiningOp<arith::ConstantOp>())
    attr = cst.getValue();
  if (auto f = dyn_cast_or_null<FloatAttr>(attr))
    return f.getValue().bitcastToAPInt().isZero();
  if (auto i = dyn_cast_or_null<IntegerAttr>(attr))
    return i.getValue().isZero();
  return false;
}

/// Bytes a fill of `type` covers contiguously from the aligned pointer, or 0 when it is
/// not one contiguous run (a layout, a dynamic shape) or its elements are not whole bytes.
int64_t contiguousBytes(MemRefType type) {
  if (!type.hasStaticShape() || !type.getLayout().isIdentity() ||
      !type.getElementType().isIntOrFloat())
    return 0;
  unsigned bits = type.getElementType().getIntOrFloatBitWidth();
  if (bits % 8 != 0)
    return 0;
  return type.getNumElements() * (bits / 8);
}

struct FillsToMemset : llmp::impl::LLMPFillsToMemsetBase<FillsToMemset> {
  void runOnOperation() override {
    llvm::SmallVector<linalg::FillOp> fills;
    getOperation().walk([&](linalg::FillOp fill) {
      if (fill.hasPureBufferSemantics() && isZeroBits(fill.getInputs()[0]) &&
          contiguousBytes(cast<MemRefType>(fill.getOutputs()[0].getType())) > 0)
        fills.push_back(fill);
    });
    for (linalg::FillOp fill : fills) {
      OpBuilder b(fill);
      Location loc = fill.getLoc();
      Value buffer = fill.getOutputs()[0];
      int64_t bytes = contiguousBytes(cast<MemRefType>(buffer.getType()));
      // Through an integer on purpose: taking the pointer from the memref's LLVM
      // descriptor instead (unrealized_conversion_cast + llvm.extractvalue [1]) measured
      // as slow to JIT as the fill loops (SmolLM2-shaped proxy: codegen 6.4 s against
      // 4.4 s, machine scheduling; docs/compiler.md).
      Value address = memref::ExtractAlignedPointerAsIndexOp::create(b, loc, buffer);
      Value address64 = arith::IndexCastOp::create(b, loc, b.getI64Type(), address);
      Value ptr = LLVM::IntToPtrOp::create(b, loc, LLVM::LLVMPointerType::get(b.getContext()),
                                           address64);
      Value zero = arith::ConstantOp::create(b, loc, b.getI8IntegerAttr(0));
      Value length = arith::ConstantOp::create(b, loc, b.getI64IntegerAttr(bytes));
      LLVM::MemsetOp::create(b, loc, ptr, zero, length, /*isVolatile=*/false);
      fill.erase();
    }
  }
};

} // namespace
