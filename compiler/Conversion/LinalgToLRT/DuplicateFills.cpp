// SPDX-License-Identifier: Apache-2.0
/// `llmp-duplicate-fills`: one `linalg.fill` per destination operand, so that one-shot
/// bufferization writes each op into a fresh, filled buffer instead of copying a shared
/// zero buffer. Algorithm:
///   1. Collect every `linalg.fill` on tensors whose init is a `tensor.empty`.
///   2. For each use of its result as the init (DPS `outs`) of another op, create a
///      `tensor.empty` and a fill of the same value right before that op and use it there.
///   3. Erase the original fill (and its `tensor.empty`) when nothing uses it any more.
#include "compiler/Conversion/LinalgToLRT/Passes.h"

#include "mlir/Interfaces/DestinationStyleOpInterface.h"

namespace mlir::llmp {
#define GEN_PASS_DEF_LLMPDUPLICATEFILLS
#include "compiler/Conversion/LinalgToLRT/Passes.h.inc"
} // namespace mlir::llmp

using namespace mlir;

namespace {

struct DuplicateFills : llmp::impl::LLMPDuplicateFillsBase<DuplicateFills> {
  void runOnOperation() override {
    llvm::SmallVector<linalg::FillOp> fills;
    getOperation().walk([&](linalg::FillOp fill) {
      if (fill.hasPureTensorSemantics() &&
          fill.getOutputs()[0].getDefiningOp<tensor::EmptyOp>())
        fills.push_back(fill);
    });
    OpBuilder b(&getContext());
    for (linalg::FillOp fill : fills) {
      auto empty = fill.getOutputs()[0].getDefiningOp<tensor::EmptyOp>();
      Value result = fill.getResult(0);
      llvm::SmallVector<OpOperand *> inits;
      for (OpOperand &use : result.getUses()) {
        auto dps = dyn_cast<DestinationStyleOpInterface>(use.getOwner());
        if (dps && dps.isDpsInit(&use))
          inits.push_back(&use);
      }
      for (OpOperand *use : inits) {
        b.setInsertionPoint(use->getOwner());
        Operation *ownEmpty = b.clone(*empty);
        IRMapping map;
        map.map(empty.getResult(), ownEmpty->getResult(0));
        Operation *ownFill = b.clone(*fill, map);
        use->set(ownFill->getResult(0));
      }
      if (result.use_empty()) {
        fill->erase();
        if (empty->use_empty())
          empty->erase();
      }
    }
  }
};

} // namespace
