// SPDX-License-Identifier: Apache-2.0
/// The `llmp` dialect: tensor-level ops of LLM training graphs (embedding, matmul, norms,
/// attention, losses) and their gradient ops, all on statically shaped tensors.
#ifndef LLMP_DIALECT_TD
#define LLMP_DIALECT_TD

include "mlir/IR/OpBase.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def LLMP_Dialect : Dialect {
  let name = "llmp";
  let summary = "Tensor-level ops of LLM training pipelines";
  let description = [{
    Ops the frontend emits for a model's forward pass, plus the gradient ops that
    `llmp-autodiff` emits for the backward pass. All operands and results are ranked,
    statically shaped tensors (f32 activations, i32 token ids).
  }];
  let cppNamespace = "::mlir::llmp";
  let hasCanonicalizer = 0;
}

/// Base class of every llmp op.
class LLMP_Op<string mnemonic, list<Trait> traits = []>
    : Op<LLMP_Dialect, mnemonic, !listconcat(traits, [Pure])>;

def LLMP_F32Tensor : RankedTensorOf<[F32]>;
def LLMP_I32Tensor : RankedTensorOf<[I32]>;

#endif // LLMP_DIALECT_TD
