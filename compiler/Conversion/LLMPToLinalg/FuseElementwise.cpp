// SPDX-License-Identifier: Apache-2.0
/// `llmp-fuse-elementwise`: MLIR's elementwise fusion patterns, without the reshape
/// propagation of `linalg-fuse-elementwise-ops` (which rewrites batch_matmul on collapsed
/// operands into a generic contraction that no longer maps to BLAS). Algorithm:
///   1. A producer is fused only into its single user.
///   2. A producer that the user broadcasts (reads through a non-permutation map, e.g.
///      (d0, d1) in a (d0, d1, d2) loop) and whose body calls libm (`callsLibm`: math.log,
///      tanh, ...) stays separate: fused, its body would run once per element of the larger
///      loop instead of once per element of its own, and the scalar call keeps that loop
///      from vectorising (the cross-entropy gradient's per-row log-sum-exp: one logf per
///      logit, (B,T) x V = 1024 x 49,152 in a SmolLM2 LoRA step).
#include "compiler/Conversion/LLMPToLinalg/Passes.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::llmp {
#define GEN_PASS_DEF_LLMPFUSEELEMENTWISE
#include "compiler/Conversion/LLMPToLinalg/Passes.h.inc"
} // namespace mlir::llmp

using namespace mlir;

namespace {

/// True if `op`'s body has a math op that lowers to a scalar libm call: everything but
/// the ones that become instructions (sqrt, rsqrt, fma, abs, rounding, copysign) and exp
/// (an inline polynomial after llmp-approximate-math).
bool callsLibm(Operation *op) {
  bool calls = false;
  op->walk([&](Operation *inner) {
    if (inner->getDialect() && inner->getDialect()->getNamespace() == "math" &&
        !isa<math::ExpOp, math::SqrtOp, math::RsqrtOp, math::FmaOp, math::AbsFOp,
             math::FloorOp, math::CeilOp, math::RoundOp, math::TruncOp, math::CopySignOp>(inner))
      calls = true;
  });
  return calls;
}

struct LLMPFuseElementwisePass
    : mlir::llmp::impl::LLMPFuseElementwiseBase<LLMPFuseElementwisePass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    linalg::populateElementwiseOpsFusionPatterns(patterns, [](OpOperand *fused) {
      Operation *producer = fused->get().getDefiningOp();
      // A tagged NF4 product must stay one op: llmp-linalg-to-lrt replaces it by a kernel.
      if (fused->getOwner()->hasAttr("llmp.matmul_nf4"))
        return false;
      if (!producer || !producer->hasOneUse())
        return false;
      auto consumer = dyn_cast<linalg::LinalgOp>(fused->getOwner());
      bool broadcast = consumer && !consumer.getMatchingIndexingMap(fused).isPermutation();
      return !(broadcast && callsLibm(producer));
    });
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
