// SPDX-License-Identifier: Apache-2.0
/// `llmp-fuse-elementwise`: MLIR's elementwise fusion patterns, without the reshape
/// propagation of `linalg-fuse-elementwise-ops` (which rewrites batch_matmul on collapsed
/// operands into a generic contraction that no longer maps to BLAS). A producer is fused
/// only into its single user, so no work is duplicated.
#include "compiler/Conversion/LLMPToLinalg/Passes.h"

#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::llmp {
#define GEN_PASS_DEF_LLMPFUSEELEMENTWISE
#include "compiler/Conversion/LLMPToLinalg/Passes.h.inc"
} // namespace mlir::llmp

using namespace mlir;

namespace {

struct LLMPFuseElementwisePass
    : mlir::llmp::impl::LLMPFuseElementwiseBase<LLMPFuseElementwisePass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    linalg::populateElementwiseOpsFusionPatterns(patterns, [](OpOperand *fused) {
      Operation *producer = fused->get().getDefiningOp();
      // A tagged NF4 product must stay one op: llmp-linalg-to-lrt replaces it by a kernel.
      if (fused->getOwner()->hasAttr("llmp.matmul_nf4"))
        return false;
      return producer && producer->hasOneUse();
    });
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
