// SPDX-License-Identifier: Apache-2.0
/// `llmp-parallelize-loops`: decide which `scf.parallel` loops run on several threads.
/// Algorithm:
///   1. Walk the module in pre-order. An `scf.parallel` stays parallel when no loop
///      (scf.for / scf.parallel / scf.while) encloses it, it has no reductions, and its
///      nest runs at least `min-iterations` innermost iterations: its own static trip
///      count times the largest such count among the loop nests in its body.
///   2. Every other `scf.parallel` becomes a nest of `scf.for` with the same bounds, in
///      dimension order, innermost first so that cloned bodies are already rewritten.
///   3. A kept loop of several dimensions with no loop in its body (an elementwise op)
///      keeps all but its last dimension parallel; the last becomes an `scf.for` inside.
///      `convert-scf-to-openmp` makes a multi-dimensional loop one `omp.loop_nest
///      collapse(n)`, and OpenMPIRBuilder's collapsed loop recovers each index from one
///      linear counter: LLVM's loop vectoriser then cannot bound the accesses ("cannot
///      identify array bounds") and the loop ran scalar. An inner `scf.for` over the
///      last (contiguous) dimension is a plain loop that vectorises.
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

/// Replaces `par` (several dimensions, no reductions) by an `scf.parallel` over all but
/// its last dimension whose body is an `scf.for` over the last one, running the body.
void peelLastDimension(scf::ParallelOp par) {
  OpBuilder b(par);
  unsigned n = par.getNumLoops();
  auto outer = scf::ParallelOp::create(b, par.getLoc(), par.getLowerBound().drop_back(),
                                       par.getUpperBound().drop_back(),
                                       par.getStep().drop_back());
  IRMapping map;
  for (unsigned i = 0; i + 1 < n; ++i)
    map.map(par.getInductionVars()[i], outer.getInductionVars()[i]);
  b.setInsertionPoint(outer.getBody()->getTerminator());
  auto inner = scf::ForOp::create(b, par.getLoc(), par.getLowerBound()[n - 1],
                                  par.getUpperBound()[n - 1], par.getStep()[n - 1]);
  map.map(par.getInductionVars()[n - 1], inner.getInductionVar());
  b.setInsertionPoint(inner.getBody()->getTerminator());
  for (Operation &op : par.getBody()->without_terminator())
    b.clone(op, map);
  par.erase();
}

/// True when no loop is nested in `op`'s regions.
bool hasNoInnerLoop(Operation *op) {
  bool inner = false;
  for (Region &region : op->getRegions())
    region.walk([&](Operation *nested) {
      if (isLoop(nested))
        inner = true;
    });
  return !inner;
}

struct ParallelizeLoops : llmp::impl::LLMPParallelizeLoopsBase<ParallelizeLoops> {
  using LLMPParallelizeLoopsBase::LLMPParallelizeLoopsBase;

  void runOnOperation() override {
    SmallVector<scf::ParallelOp> serial, kept;
    getOperation().walk<WalkOrder::PreOrder>([&](scf::ParallelOp par) {
      bool nested = false;
      for (Operation *p = par->getParentOp(); p && !nested; p = p->getParentOp())
        nested = isLoop(p);
      if (par.getNumResults() != 0)
        return; // reductions: left to the SCF -> CF lowering (linalg emits none here)
      if (nested || nestIterations(par) < minIterations)
        serial.push_back(par);
      else
        kept.push_back(par);
    });
    for (scf::ParallelOp par : llvm::reverse(serial))
      serialize(par);
    // After serialising: a kept loop's inner parallel loops are scf.for by now.
    for (scf::ParallelOp par : kept)
      if (par.getNumLoops() >= 2 && hasNoInnerLoop(par))
        peelLastDimension(par);
  }
};

} // namespace
