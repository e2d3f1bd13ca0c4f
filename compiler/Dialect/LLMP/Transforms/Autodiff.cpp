// SPDX-License-Identifier: Apache-2.0
/// `llmp-autodiff`: reverse-mode differentiation. For each function `@f` marked
/// `llmp.differentiate`:
///   1. Clone it as `@f_grad` (same arguments) and drop the marker from the clone.
///   2. Seed the gradient of the returned loss with 1 (a constant marked `llmp.seed`).
///   3. Walk the body's ops backwards; for each op with a gradient on a result, call
///      DifferentiableOpInterface::buildGradients (new ops go before the return) and add
///      each operand gradient to that operand's running sum (llmp.add on repeat uses).
///      Only values that depend on a trainable parameter (an `llmp.param` argument
///      without `llmp.frozen`) receive gradients: ops none of whose operands do are
///      skipped, so a frozen weight (LoRA base) gets no gradient ops.
///   4. Return the loss and the gradient of each trainable `llmp.param` argument (zeros if
///      none); frozen parameters (`llmp.frozen`) get no result.
#include "compiler/Dialect/LLMP/Transforms/Passes.h"

#include "mlir/IR/Matchers.h"

namespace mlir::llmp {
#define GEN_PASS_DEF_LLMPAUTODIFF
#include "compiler/Dialect/LLMP/Transforms/Passes.h.inc"
} // namespace mlir::llmp

using namespace mlir;
using namespace mlir::llmp;

namespace {

Value zerosLike(OpBuilder &b, Location loc, Type type) {
  auto ty = cast<RankedTensorType>(type);
  return arith::ConstantOp::create(b, loc, DenseElementsAttr::get(ty, b.getF32FloatAttr(0.0f)));
}

bool isFloatTensor(Type t) {
  auto ty = dyn_cast<RankedTensorType>(t);
  return ty && ty.getElementType().isF32();
}

LogicalResult differentiate(func::FuncOp f) {
  auto fnTy = f.getFunctionType();
  if (fnTy.getNumResults() != 1 || fnTy.getResult(0) != RankedTensorType::get({}, Float32Type::get(f.getContext())))
    return f.emitOpError() << "expected one tensor<f32> result to differentiate but found "
                           << fnTy.getNumResults() << " results";
  if (!f.getBody().hasOneBlock())
    return f.emitOpError() << "expected a single-block body to differentiate";

  // 1. The clone.
  auto g = cast<func::FuncOp>(f->clone());
  g.setName((f.getName() + "_grad").str());
  g->removeAttr("llmp.differentiate");
  OpBuilder mb(f);
  mb.setInsertionPointAfter(f);
  mb.insert(g);

  Block &body = g.getBody().front();
  auto ret = cast<func::ReturnOp>(body.getTerminator());
  OpBuilder b(ret);
  Location loc = ret.getLoc();

  // 2. Seed.
  DenseMap<Value, Value> grads;
  Value loss = ret.getOperand(0);
  auto seed = arith::ConstantOp::create(
      b, loc, DenseElementsAttr::get(cast<RankedTensorType>(loss.getType()), b.getF32FloatAttr(1.0f)));
  // llmp-build-steps replaces the op marked `llmp.seed` by the gradient scale of a
  // micro-batch (runtime/StepABI.h grad_step).
  seed->setAttr("llmp.seed", b.getUnitAttr());
  grads[loss] = seed;

  auto accumulate = [&](Value v, Value gv, Location l) {
    auto it = grads.find(v);
    if (it == grads.end()) {
      grads[v] = gv;
      return;
    }
    it->second = AddOp::create(b, l, v.getType(), it->second, gv);
  };

  // Activity: the values that depend on a trainable parameter.
  auto trainable = [&](BlockArgument arg) {
    return g.getArgAttr(arg.getArgNumber(), "llmp.param") &&
           !g.getArgAttr(arg.getArgNumber(), "llmp.frozen");
  };
  DenseSet<Value> active;
  for (BlockArgument arg : body.getArguments())
    if (trainable(arg))
      active.insert(arg);

  // 3. Backwards over the forward ops (collected first: new ops are appended at the end).
  SmallVector<Operation *> forward;
  for (Operation &op : body.without_terminator()) {
    forward.push_back(&op);
    if (llvm::any_of(op.getOperands(), [&](Value v) { return active.contains(v); }))
      active.insert(op.result_begin(), op.result_end());
  }
  for (Operation *op : llvm::reverse(forward)) {
    if (!llvm::any_of(op->getOperands(), [&](Value v) { return active.contains(v); }))
      continue;
    SmallVector<Value> resultGrads;
    bool any = false;
    for (Value r : op->getResults()) {
      Value gr = grads.lookup(r);
      any |= static_cast<bool>(gr);
      resultGrads.push_back(gr);
    }
    if (!any)
      continue;
    auto diff = dyn_cast<DifferentiableOpInterface>(op);
    if (!diff) {
      if (matchPattern(op, m_Constant()))
        continue;
      return op->emitOpError() << "has no gradient rule but lies on a gradient path";
    }
    for (unsigned i = 0, e = resultGrads.size(); i < e; ++i)
      if (!resultGrads[i])
        resultGrads[i] = zerosLike(b, op->getLoc(), op->getResult(i).getType());
    SmallVector<Value> operandGrads;
    if (failed(diff.buildGradients(b, resultGrads, operandGrads)))
      return failure();
    if (operandGrads.size() != op->getNumOperands())
      return op->emitOpError() << "expected " << op->getNumOperands()
                               << " operand gradients but found " << operandGrads.size();
    for (auto [operand, og] : llvm::zip(op->getOperands(), operandGrads))
      if (og && isFloatTensor(operand.getType()) && active.contains(operand))
        accumulate(operand, og, op->getLoc());
  }

  // 4. Results: loss, then one gradient per parameter argument.
  SmallVector<Value> results = {loss};
  SmallVector<Type> resultTypes = {loss.getType()};
  for (BlockArgument arg : body.getArguments()) {
    if (!trainable(arg))
      continue;
    Value gv = grads.lookup(arg);
    if (!gv)
      gv = zerosLike(b, loc, arg.getType());
    results.push_back(gv);
    resultTypes.push_back(arg.getType());
  }
  func::ReturnOp::create(b, loc, results);
  ret.erase();
  g.setFunctionType(FunctionType::get(g.getContext(), fnTy.getInputs(), resultTypes));
  g.setAllResultAttrs(ArrayRef<DictionaryAttr>{});
  return success();
}

struct LLMPAutodiffPass : mlir::llmp::impl::LLMPAutodiffBase<LLMPAutodiffPass> {
  void runOnOperation() override {
    if (failed(differentiateModule(getOperation())))
      signalPassFailure();
  }
};

} // namespace

LogicalResult mlir::llmp::differentiateModule(ModuleOp module) {
  SmallVector<func::FuncOp> todo;
  for (auto f : module.getOps<func::FuncOp>())
    if (f->hasAttr("llmp.differentiate"))
      todo.push_back(f);
  for (func::FuncOp f : todo) {
    if (module.lookupSymbol((f.getName() + "_grad").str()))
      continue; // Already differentiated.
    if (failed(differentiate(f)))
      return failure();
  }
  return success();
}
