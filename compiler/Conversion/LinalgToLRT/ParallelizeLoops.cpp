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
///      last (contiguous) dimension is a plain loop that vectorises. Only when that
///      dimension has at least `min-inner-iterations` iterations; shorter ones stay
///      collapsed. When the outer dimensions run fewer than `min-parallel-iterations`
///      iterations (a (1, 1, V) decode loop would run on one thread), the last dimension
///      is also cut into chunks (at least 256 iterations, a multiple of 16) and the chunk
///      index becomes one more parallel dimension.
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

/// Smallest chunk of a last dimension cut for the threads: long enough that the vector
/// loop, not its set-up and remainder, runs most of it.
constexpr int64_t minChunkIterations = 256;

int64_t saturatingMul(int64_t a, int64_t b) {
  return (b != 0 && a > kSaturated / b) ? kSaturated : a * b;
}

bool isLoop(Operation *op) { return isa<scf::ForOp, scf::ParallelOp, scf::WhileOp>(op); }

/// Static trip count of one loop (product over dimensions); 1 where a bound is dynamic
/// (in llmp modules only attention over a KV cache has one, its number of cached keys:
/// its small softmax loops then stay serial).
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

/// Static trip count of dimension `dim` of `par` (1 where a bound is dynamic).
int64_t tripCountOfDimension(scf::ParallelOp par, unsigned dim) {
  auto l = getConstantIntValue(par.getLowerBound()[dim]),
       u = getConstantIntValue(par.getUpperBound()[dim]), s = getConstantIntValue(par.getStep()[dim]);
  if (!l || !u || !s || *s <= 0)
    return 1;
  return std::max<int64_t>(0, (*u - *l + *s - 1) / *s);
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
/// With `chunks` > 1 the last dimension is also cut into that many chunks of consecutive
/// iterations, and the chunk index becomes one more parallel dimension (the inner
/// `scf.for` runs one chunk: [lb + c * size, min(lb + (c + 1) * size, ub))).
void peelLastDimension(scf::ParallelOp par, int64_t chunks, int64_t chunkIterations) {
  OpBuilder b(par);
  Location loc = par.getLoc();
  unsigned n = par.getNumLoops();
  SmallVector<Value> lbs(par.getLowerBound().drop_back()), ubs(par.getUpperBound().drop_back()),
      steps(par.getStep().drop_back());
  Value lb = par.getLowerBound()[n - 1], ub = par.getUpperBound()[n - 1],
        step = par.getStep()[n - 1];
  if (chunks > 1) {
    lbs.push_back(arith::ConstantIndexOp::create(b, loc, 0));
    ubs.push_back(arith::ConstantIndexOp::create(b, loc, chunks));
    steps.push_back(arith::ConstantIndexOp::create(b, loc, 1));
  }
  auto outer = scf::ParallelOp::create(b, loc, lbs, ubs, steps);
  IRMapping map;
  for (unsigned i = 0; i + 1 < n; ++i)
    map.map(par.getInductionVars()[i], outer.getInductionVars()[i]);
  b.setInsertionPoint(outer.getBody()->getTerminator());
  Value from = lb, to = ub;
  if (chunks > 1) {
    // The chunk's first iteration and the end of its range, cut at `ub`.
    Value span = arith::MulIOp::create(
        b, loc, step, arith::ConstantIndexOp::create(b, loc, chunkIterations));
    Value c = outer.getInductionVars().back();
    from = arith::AddIOp::create(b, loc, lb, arith::MulIOp::create(b, loc, c, span));
    to = arith::MinSIOp::create(b, loc, arith::AddIOp::create(b, loc, from, span), ub);
  }
  auto inner = scf::ForOp::create(b, loc, from, to, step);
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
    for (scf::ParallelOp par : kept) {
      unsigned n = par.getNumLoops();
      if (n < 2 || !hasNoInnerLoop(par))
        continue;
      int64_t last = tripCountOfDimension(par, n - 1);
      if (last < minInnerIterations)
        continue;
      int64_t outerIterations = 1;
      for (unsigned i = 0; i + 1 < n; ++i)
        outerIterations = saturatingMul(outerIterations, tripCountOfDimension(par, i));
      // Too few outer iterations to share among the threads (a (1, 1, V) decode loop):
      // the last dimension's chunks share them, each still a vectorisable run.
      int64_t chunks = 1, chunkIterations = last;
      if (outerIterations > 0 && outerIterations < minParallelIterations) {
        chunks = std::min<int64_t>(llvm::divideCeil(minParallelIterations, outerIterations),
                                   last / std::max<int64_t>(minChunkIterations, 1));
        chunkIterations = llvm::alignTo(llvm::divideCeil(last, std::max<int64_t>(chunks, 1)), 16);
        chunks = llvm::divideCeil(last, chunkIterations);
      }
      peelLastDimension(par, chunks, chunkIterations);
    }
  }
};

} // namespace
