// SPDX-License-Identifier: Apache-2.0
/// `llmp-reassociate-reductions`: fastmath<reassoc, contract> on reduction bodies. Algorithm:
///   1. Walk every linalg op that has at least one reduction iterator.
///   2. Add `reassoc` and `contract` to the fastmath flags of each arith op in its body
///      that carries them (addf, mulf, subf, maximumf, ...), keeping the flags it has.
#include "compiler/Conversion/LinalgToLRT/Passes.h"

namespace mlir::llmp {
#define GEN_PASS_DEF_LLMPREASSOCIATEREDUCTIONS
#include "compiler/Conversion/LinalgToLRT/Passes.h.inc"
} // namespace mlir::llmp

using namespace mlir;

namespace {

struct ReassociateReductions
    : llmp::impl::LLMPReassociateReductionsBase<ReassociateReductions> {
  void runOnOperation() override {
    getOperation().walk([](linalg::LinalgOp op) {
      if (op.getNumReductionLoops() == 0 || op->getNumRegions() == 0)
        return;
      op->getRegion(0).walk([](arith::ArithFastMathInterface fm) {
        auto flags = fm.getFastMathFlagsAttr().getValue() | arith::FastMathFlags::reassoc |
                     arith::FastMathFlags::contract;
        fm->setAttr(fm.getFastMathAttrName(),
                    arith::FastMathFlagsAttr::get(fm->getContext(), flags));
      });
    });
  }
};

} // namespace
