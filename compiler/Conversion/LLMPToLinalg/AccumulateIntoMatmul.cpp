// SPDX-License-Identifier: Apache-2.0
/// `llmp-accumulate-into-matmul`: a matrix product whose result is only added to another
/// tensor accumulates onto that tensor instead of onto zeros. Algorithm:
///   1. Find each elementwise `linalg.generic` that is an f32 sum of two operands (all
///      loops parallel, identity maps, body `yield addf(a, b)`), either two inputs or an
///      input and its own init (grad_step's `grads[slice] += g`).
///   2. If one side is the only use of a product that accumulates into its init
///      (`linalg.matmul`, `linalg.batch_matmul`, or the `llmp.matmul_nf4` generic: all
///      compute C += op(A) op(B)), directly or through a `tensor.expand_shape` (the
///      other side is then collapsed the same way), and that init is a `linalg.fill` of
///      0 (or the result of another such product, down a chain of them to one whose
///      init is the fill), let the sum's other side be that init instead and the
///      product's result replace the sum. The products stay where they are, so their
///      inputs die as early as before; only when the other side is computed after the
///      (single) product does the product move, right after it.
/// The sum's loop, its output buffer and, after bufferization, the copy of the zero
/// buffer into the product's output all go away; the GEMM kernels add into C anyway
/// (kernels/cpu/Matmul.h, Nf4Matmul.h). A LoRA stage has three such sums per adapted
/// weight (the adapter's output added to the base's, the input gradients of both paths,
/// and each adapter gradient added into `grads`), a full fine-tuning stage one per
/// weight gradient and residual branch. Floating-point: sgemm adds C once per block of
/// the inner dimension instead of after the whole product (differences of a few ulp).
#include "compiler/Conversion/LLMPToLinalg/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Matchers.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::llmp {
#define GEN_PASS_DEF_LLMPACCUMULATEINTOMATMUL
#include "compiler/Conversion/LLMPToLinalg/Passes.h.inc"
} // namespace mlir::llmp

using namespace mlir;

namespace {

/// A product that adds op(A) op(B) into its single init.
bool accumulatesIntoInit(Operation *op) {
  if (isa<linalg::MatmulOp, linalg::BatchMatmulOp>(op))
    return true;
  return isa<linalg::GenericOp>(op) && op->hasAttr("llmp.matmul_nf4");
}

bool isZeroFill(Value v) {
  auto fill = v.getDefiningOp<linalg::FillOp>();
  return fill && matchPattern(fill.value(), m_AnyZeroFloat());
}

struct AccumulateIntoMatmul : OpRewritePattern<linalg::GenericOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(linalg::GenericOp sum, PatternRewriter &rewriter) const override {
    if (sum.getNumDpsInits() != 1 || sum->getNumResults() != 1 || sum.hasIndexSemantics() ||
        sum.getNumLoops() != sum.getNumParallelLoops() ||
        !llvm::all_of(sum.getIndexingMapsArray(), [](AffineMap m) { return m.isIdentity(); }))
      return failure();
    Block &body = sum.getRegion().front();
    auto add = dyn_cast<arith::AddFOp>(&body.front());
    if (!add || body.getOperations().size() != 2 ||
        body.getTerminator()->getOperand(0) != add.getResult())
      return failure();
    auto lhs = dyn_cast<BlockArgument>(add.getLhs()), rhs = dyn_cast<BlockArgument>(add.getRhs());
    if (!lhs || !rhs || lhs == rhs || lhs.getOwner() != &body || rhs.getOwner() != &body)
      return failure();
    Type type = sum.getResult(0).getType();
    OpOperand &a = sum->getOpOperand(lhs.getArgNumber());
    OpOperand &b = sum->getOpOperand(rhs.getArgNumber());
    for (auto [product, other] : {std::pair{&a, &b}, std::pair{&b, &a}}) {
      if (product->get().getType() != type || other->get().getType() != type ||
          !product->get().hasOneUse())
        continue;
      // The product may come through a tensor.expand_shape (a (B*T, N) GEMM seen as
      // (B, T, N)): then it accumulates onto the other side collapsed the same way.
      Value p = product->get();
      auto expand = p.getDefiningOp<tensor::ExpandShapeOp>();
      if (expand)
        p = expand.getSrc();
      Operation *op = p.getDefiningOp();
      if (!op || !p.hasOneUse() || !accumulatesIntoInit(op) || op->getBlock() != sum->getBlock())
        continue;
      // Down the chain of products accumulating into each other (an adapter's output
      // into the base's, ...) to the first one, whose init is the fill of 0.
      Operation *root = op;
      while (root) {
        auto dps = cast<DestinationStyleOpInterface>(root);
        if (dps.getNumDpsInits() != 1)
          root = nullptr;
        else if (isZeroFill(dps.getDpsInitOperand(0)->get()))
          break;
        else {
          Value init = dps.getDpsInitOperand(0)->get();
          Operation *next = init.getDefiningOp();
          root = next && init.hasOneUse() && accumulatesIntoInit(next) &&
                         next->getBlock() == op->getBlock()
                     ? next
                     : nullptr;
        }
      }
      if (!root)
        continue;
      unsigned init = cast<DestinationStyleOpInterface>(root).getDpsInitOperand(0)->getOperandNumber();
      Operation *otherDef = other->get().getDefiningOp();
      bool otherFirst = !otherDef || otherDef->getBlock() != root->getBlock() ||
                        otherDef->isBeforeInBlock(root);
      auto accumulator = [&]() -> Value {
        if (!expand)
          return other->get();
        return tensor::CollapseShapeOp::create(rewriter, sum.getLoc(), other->get(),
                                               expand.getReassociationIndices());
      };
      if (otherFirst) {
        // The chain stays where it is; its first product starts from the other side.
        rewriter.setInsertionPoint(root);
        Value acc = accumulator();
        rewriter.modifyOpInPlace(root, [&] { root->setOperand(init, acc); });
        rewriter.replaceOp(sum, product->get());
        return success();
      }
      if (root != op)
        continue;
      // The other side comes after the product: the product moves right after it (not
      // to the sum, which would keep the product's inputs alive for longer).
      rewriter.setInsertionPointAfter(otherDef);
      Value acc = accumulator();
      Operation *clone = rewriter.clone(*op);
      clone->setOperand(init, acc);
      Value result = clone->getResult(0);
      if (expand)
        result = tensor::ExpandShapeOp::create(rewriter, sum.getLoc(), type, result,
                                               expand.getReassociationIndices());
      rewriter.replaceOp(sum, result);
      if (expand)
        rewriter.eraseOp(expand);
      rewriter.eraseOp(op);
      return success();
    }
    return failure();
  }
};

struct LLMPAccumulateIntoMatmulPass
    : mlir::llmp::impl::LLMPAccumulateIntoMatmulBase<LLMPAccumulateIntoMatmulPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<AccumulateIntoMatmul>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
