// SPDX-License-Identifier: Apache-2.0
/// `llmp-bf16-base`: a LoRA stage's frozen linear weights stored in bf16 under
/// `precision: bf16`, converted once at load instead of on every product. A rewrite of the
/// llmp dialect after `llmp-apply-lora` (as `llmp-quantize-base` for NF4). Algorithm:
///   1. The frozen parameter arguments (`llmp.frozen`) that are 2-D fp32 and used in every
///      function only as the rhs of `llmp.matmul` with the lhs not transposed are the
///      linear weights; other frozen parameters (embeddings, norms, a tied output head read
///      by `llmp.embedding`) stay fp32.
///   2. Each linear weight's argument type becomes the same shape in bf16; its matmuls read
///      it unchanged (`llmp.matmul` takes a bf16 rhs: the forward x op(W) and, from
///      llmp-autodiff, dx = dy op(W)^T keep W as the rhs; W gets no gradient).
///   3. Every frozen argument gets a new `llmp.byte_offset` (64-byte aligned, argument
///      order: 2 bytes per element for bf16, 4 for fp32) and the module a new
///      `llmp.frozen_bytes`.
/// The runtime rounds the fp32 weights to bf16 (nearest even) when it fills the frozen
/// buffer (runtime/Frozen.h, Storage::BF16); llmp-linalg-to-lrt calls lrt_matmul_bf16_b.
#include "compiler/Dialect/LLMP/Transforms/FrozenArgs.h"
#include "compiler/Dialect/LLMP/Transforms/Passes.h"

namespace mlir::llmp {
#define GEN_PASS_DEF_LLMPBF16BASE
#include "compiler/Dialect/LLMP/Transforms/Passes.h.inc"
} // namespace mlir::llmp

using namespace mlir;
using namespace mlir::llmp;

LogicalResult mlir::llmp::bf16Base(ModuleOp module) {
  if (!module->hasAttr("llmp.frozen_bytes"))
    return module.emitError() << "llmp-bf16-base: expected frozen parameters (run "
                                 "llmp-apply-lora first)";
  // 1. Frozen arguments by index, and which are linear weights in every function.
  SmallVector<func::FuncOp> fns;
  FrozenArgs frozen = frozenLinearWeights(module, fns);
  // 3. The new layout of the frozen buffer.
  relayoutFrozen(module, fns, frozen, [&](unsigned i, RankedTensorType ty) {
    return (frozen.converts.lookup(i) ? 2 : 4) * ty.getNumElements();
  });
  // 2. Retype the linear weights in every function.
  for (func::FuncOp f : fns)
    for (unsigned i : frozen.indices)
      if (frozen.converts.lookup(i) && i < f.getNumArguments() && f.getArgAttr(i, "llmp.frozen")) {
        BlockArgument arg = f.getArgument(i);
        auto ty = cast<RankedTensorType>(arg.getType());
        arg.setType(RankedTensorType::get(ty.getShape(), BFloat16Type::get(module.getContext())));
      }
  syncFunctionTypes(fns);
  return success();
}

namespace {

struct LLMPBf16BasePass : mlir::llmp::impl::LLMPBf16BaseBase<LLMPBf16BasePass> {
  void runOnOperation() override {
    if (failed(bf16Base(getOperation())))
      signalPassFailure();
  }
};

} // namespace
