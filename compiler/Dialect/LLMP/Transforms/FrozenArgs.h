// SPDX-License-Identifier: Apache-2.0
/// The frozen parameter arguments of a LoRA module (`llmp.frozen`, `llmp.byte_offset`) as
/// the passes that change how the frozen base is stored see them: llmp-quantize-base (NF4)
/// and llmp-bf16-base (bf16).
#pragma once

#include "compiler/Dialect/LLMP/IR/LLMPOps.h"
#include "runtime/StepABI.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"

namespace mlir::llmp {

/// The frozen arguments by index, in argument order (the same list in every function:
/// llmp-apply-lora checks it), with whether `converts` holds for the argument in every
/// function that has it.
struct FrozenArgs {
  SmallVector<unsigned> indices;
  DenseMap<unsigned, bool> converts;
};

inline FrozenArgs frozenArgs(ArrayRef<func::FuncOp> fns,
                             function_ref<bool(BlockArgument)> converts) {
  FrozenArgs out;
  for (func::FuncOp f : fns)
    for (unsigned i = 0, e = f.getNumArguments(); i < e; ++i) {
      if (!f.getArgAttr(i, "llmp.frozen"))
        continue;
      bool c = converts(f.getArgument(i));
      auto [it, fresh] = out.converts.try_emplace(i, c);
      if (fresh)
        out.indices.push_back(i);
      else
        it->second = it->second && c;
    }
  llvm::sort(out.indices);
  return out;
}

/// Whether `arg` is used, and every use is the weight (rhs) of an `llmp.matmul` without
/// transpose_a (and not also its lhs): the frozen weights whose storage the passes change.
inline bool onlyMatmulWeight(BlockArgument arg) {
  if (arg.use_empty())
    return false;
  return llvm::all_of(arg.getUses(), [&](OpOperand &use) {
    auto mm = dyn_cast<MatmulOp>(use.getOwner());
    return mm && use.getOperandNumber() == 1 && !mm.getTransposeA() && mm.getLhs() != arg;
  });
}

/// The module's defined functions (into `fns`) and their frozen arguments, marking those
/// that are 2-D fp32 linear weights (`onlyMatmulWeight`) in every function: the weights
/// llmp-quantize-base and llmp-bf16-base store anew.
inline FrozenArgs frozenLinearWeights(ModuleOp module, SmallVectorImpl<func::FuncOp> &fns) {
  for (auto f : module.getOps<func::FuncOp>())
    if (!f.isExternal())
      fns.push_back(f);
  return frozenArgs(fns, [](BlockArgument arg) {
    auto ty = cast<RankedTensorType>(arg.getType());
    return ty.getRank() == 2 && ty.getElementType().isF32() && onlyMatmulWeight(arg);
  });
}

/// Lays the frozen arguments out again, each taking `bytes(index, type)` bytes (the type as
/// in the first function) at a 64-byte aligned offset in argument order: sets
/// `llmp.byte_offset` on them in every function and the module's `llmp.frozen_bytes`.
inline void relayoutFrozen(ModuleOp module, ArrayRef<func::FuncOp> fns, const FrozenArgs &frozen,
                           function_ref<int64_t(unsigned, RankedTensorType)> bytes) {
  OpBuilder b(module.getContext());
  func::FuncOp first = fns.front();
  int64_t cursor = 0;
  for (unsigned i : frozen.indices) {
    auto ty = cast<RankedTensorType>(first.getArgument(i).getType());
    int64_t offset = lrt::alignFrozen(cursor);
    cursor = offset + bytes(i, ty);
    for (func::FuncOp f : fns)
      if (i < f.getNumArguments() && f.getArgAttr(i, "llmp.frozen"))
        f.setArgAttr(i, "llmp.byte_offset", b.getI64IntegerAttr(offset));
  }
  module->setAttr("llmp.frozen_bytes", b.getI64IntegerAttr(cursor));
}

/// Sets each function's type to the types of its entry block's arguments (after a pass
/// retyped some of them).
inline void syncFunctionTypes(ArrayRef<func::FuncOp> fns) {
  for (func::FuncOp f : fns) {
    SmallVector<Type> inputs(f.getBody().front().getArgumentTypes());
    f.setType(FunctionType::get(f.getContext(), inputs, f.getFunctionType().getResults()));
  }
}

} // namespace mlir::llmp
