// SPDX-License-Identifier: Apache-2.0
/// `llmp-parallelize-loops`: decide which `scf.parallel` loops run on several threads.
/// Algorithm:
///   1. Walk the module in pre-order. An `scf.parallel` stays parallel when no loop
///      (scf.for / scf.parallel / scf.while) encloses it, it has no reductions, and its
///      nest runs at least `min-iterations` innermost iterations: its own static trip
///      count times the largest such count among the loop nests in its body.
///   2. Every other `scf.parallel` becomes a nest of `scf.for` with the same bounds, in
///      dimension order, innermost first so that cloned bodies are already rewritten.
/// `convert-scf-to-openmp` later turns each kept loop into one OpenMP region.
#include "compiler/Conversion/LinalgToLRT/Passes.h"

#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/IRMapping.h"

namespace mlir::llmp {
#define GEN_PASS_DEF_LLMPPARALLELIZELOOPS
#include "compiler/Conversion/LinalgToLRT/Passes.h.inc"
} // namespace mlir::llmp

using namespace mlir;

namespace {

constexpr int64_t kSaturated = int64_t(1) << 60;

int64_t saturatingMul(int64_t a, int64_t b) {
  return (b != 0 && a > kSaturated / b) ? kSaturated : a * b;
}

bool isLoop(Operation *op) { return isa<scf::ForOp, scf::ParallelOp, scf::WhileOp>(op); }

/// Static trip count of one loop (product over dimensions); 1 where a bound is dynamic
/// (all shapes are static in llmp modules, so this does not happen there).
int64_t tripCount(Operation *loop) {
  auto count = [](Value lb, Value ub, Value step) -> int64_t {
    auto l = getConstantIntValue(lb), u = getConstantIntValue(ub), s = getConstantIntValue(step);
    if (!l || !u || !s || *s <= 0)
      return 1;
    return std::max<int64_t>(0, (*u - *l + *s - 1) / *s);
  };
  if (auto f = dyn_cast<scf::ForOp>(loop))
    return count(f.getLowerBound(), f.getUpperBound(), f.getStep());
  if (auto p = dyn_cast<scf::ParallelOp>(loop)) {
    int64_t n = 1;
    for (auto [l, u, s] : llvm::zip(p.getLowerBound(), p.getUpperBound(), p.getStep()))
      n = saturatingMul(n, count(l, u, s));
    return n;
  }
  return 1;
}

/// Innermost iterations of the loop nest rooted at `loop`.
int64_t nestIterations(Operation *loop) {
  int64_t inner = 1;
  for (Region &region : loop->getRegions())
    region.walk<WalkOrder::PreOrder>([&](Operation *op) {
      if (op == loop || !isLoop(op))
        return WalkResult::advance();
      inner = std::max(inner, nestIterations(op));
      return WalkResult::skip();
    });
  return saturatingMul(tripCount(loop), inner);
}

/// Replaces `par` (no reductions) by nested scf.for loops running its body.
void serialize(scf::ParallelOp par) {
  OpBuilder b(par);
  IRMapping map;
  for (auto [iv, lb, ub, step] : llvm::zip(par.getInductionVars(), par.getLowerBound(),
                                           par.getUpperBound(), par.getStep())) {
    auto loop = scf::ForOp::create(b, par.getLoc(), lb, ub, step);
    map.map(iv, loop.getInductionVar());
    b.setInsertionPoint(loop.getBody()->getTerminator());
  }
  for (Operation &op : par.getBody()->without_terminator())
    b.clone(op, map);
  par.erase();
}

struct ParallelizeLoops : llmp::impl::LLMPParallelizeLoopsBase<ParallelizeLoops> {
  using LLMPParallelizeLoopsBase::LLMPParallelizeLoopsBase;

  void runOnOperation() override {
    SmallVector<scf::ParallelOp> serial;
    getOperation().walk<WalkOrder::PreOrder>([&](scf::ParallelOp par) {
      bool nested = false;
      for (Operation *p = par->getParentOp(); p && !nested; p = p->getParentOp())
        nested = isLoop(p);
      if (par.getNumResults() != 0)
        return; // reductions: left to the SCF -> CF lowering (linalg emits none here)
      if (nested || nestIterations(par) < minIterations)
        serial.push_back(par);
    });
    for (scf::ParallelOp par : llvm::reverse(serial))
      serialize(par);
  }
};

} // namespace
