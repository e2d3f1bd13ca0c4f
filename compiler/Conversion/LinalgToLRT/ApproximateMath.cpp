// SPDX-License-Identifier: Apache-2.0
/// `llmp-approximate-math`: f32 math.exp -> an inline polynomial (vectorisable). Algorithm:
///   1. Collect MLIR's polynomial-approximation patterns for `exp` only (sin/cos are left
///      to libm: RoPE angles reach |x| ~ 100 rad, beyond the approximation's accuracy).
///   2. Apply them greedily over the module.
#include "compiler/Conversion/LinalgToLRT/Passes.h"

#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::llmp {
#define GEN_PASS_DEF_LLMPAPPROXIMATEMATH
#include "compiler/Conversion/LinalgToLRT/Passes.h.inc"
} // namespace mlir::llmp

using namespace mlir;

namespace {

struct ApproximateMath : llmp::impl::LLMPApproximateMathBase<ApproximateMath> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateMathPolynomialApproximationPatterns(
        patterns, [](StringRef name) {
          name.consume_front("math."); // the predicate sees "exp" or "math.exp"
          return name == "exp";
        });
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
