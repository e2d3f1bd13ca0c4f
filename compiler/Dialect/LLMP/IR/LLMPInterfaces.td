// SPDX-License-Identifier: Apache-2.0
/// Op interfaces of the llmp dialect.
#ifndef LLMP_INTERFACES_TD
#define LLMP_INTERFACES_TD

include "mlir/IR/OpBase.td"

def LLMP_DifferentiableOpInterface : OpInterface<"DifferentiableOpInterface"> {
  let description = [{
    An op whose vector-Jacobian product can be expressed with llmp ops. `llmp-autodiff`
    calls `buildGradients` while walking the forward ops backwards.
  }];
  let cppNamespace = "::mlir::llmp";
  let methods = [
    InterfaceMethod<[{
        Builds, at the insertion point of `b`, the gradients of the op's operands given the
        gradients `resultGrads` of its results (one per result; a null Value means zero).
        Appends one Value per operand to `operandGrads`; a null Value means the operand gets
        no gradient (e.g. i32 token ids). Fails (with a diagnostic) if the op cannot be
        differentiated in its current form.
      }],
      "::mlir::LogicalResult", "buildGradients",
      (ins "::mlir::OpBuilder &":$b, "::llvm::ArrayRef<::mlir::Value>":$resultGrads,
           "::llvm::SmallVectorImpl<::mlir::Value> &":$operandGrads)>
  ];
}

#endif // LLMP_INTERFACES_TD
