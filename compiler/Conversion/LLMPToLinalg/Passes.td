// SPDX-License-Identifier: Apache-2.0
/// Conversion of the llmp dialect to linalg on tensors.
#ifndef LLMP_CONVERSION_LLMPTOLINALG_PASSES_TD
#define LLMP_CONVERSION_LLMPTOLINALG_PASSES_TD

include "mlir/Pass/PassBase.td"

def LLMPLowerToLinalg : Pass<"llmp-lower-to-linalg", "ModuleOp"> {
  let summary = "Lower every llmp op to linalg, tensor, arith, math and scf on tensors";
  let description = [{
    Matrix products become `linalg.matmul` / `linalg.batch_matmul` with explicit
    `indexing_maps` for transposed operands; elementwise ops, reductions, softmax, RoPE and
    losses become `linalg.generic`; `llmp.embedding_grad` becomes an `scf.for` scatter-add.

    Before:
    ```mlir
    %y = llmp.matmul %x, %w {transpose_b} : (tensor<8x16xf32>, tensor<32x16xf32>) -> tensor<8x32xf32>
    ```
    After:
    ```mlir
    %z = linalg.fill ins(%cst : f32) outs(%e : tensor<8x32xf32>) -> tensor<8x32xf32>
    %y = linalg.matmul indexing_maps = [...] ins(%x, %w : ...) outs(%z : ...) -> tensor<8x32xf32>
    ```
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect", "::mlir::scf::SCFDialect", "::mlir::tensor::TensorDialect"
  ];
  // The forward of attention over more keys than `attention-block` runs blockwise with an
  // online softmax (flash attention, Dao et al. 2022, Algorithm 1): an `scf.for` over key
  // blocks carries the running row max, row sum and output, so only (rows, block) scores
  // exist at a time instead of the (rows, T) matrix.
  let options = [
    Option<"attentionBlock", "attention-block", "int64_t", /*default=*/"512",
           "keys per block of the blockwise attention forward (the largest divisor of T "
           "not above it); attention over at most this many keys, or whose T has no "
           "divisor from min(8, attention-block) up to it, is not blocked">,
    // Causal attention on the direct path (not blockwise) runs per block of query rows
    // against only the keys up to the block's last query: the masked upper triangle of
    // the scores is neither computed nor stored (about 3/8 of it at 4 blocks).
    Option<"causalRowBlock", "causal-row-block", "int64_t", /*default=*/"128",
           "query rows per block of causal attention's direct path (the largest divisor "
           "of T not above it); 0, T at most this, or no divisor from min(8, "
           "causal-row-block) up to it: all rows at once">
  ];
}

def LLMPAccumulateIntoMatmul : Pass<"llmp-accumulate-into-matmul", "ModuleOp"> {
  let summary = "Accumulate a matrix product onto the tensor it is added to";
  let description = [{
    A `linalg.matmul`, `linalg.batch_matmul` or `llmp.matmul_nf4` generic whose init is
    a fill of 0 and whose only use is an elementwise f32 sum with another tensor of the
    same type takes that tensor as its init instead (the GEMM kernels compute
    C += op(A) op(B)); the sum goes away. The other side may be the sum's own init
    (grad_step's accumulation into `grads`).

    Before:
    ```mlir
    %z = linalg.fill ins(%zero : f32) outs(%e : tensor<4x8xf32>) -> tensor<4x8xf32>
    %p = linalg.matmul ins(%x, %w : tensor<4x2xf32>, tensor<2x8xf32>) outs(%z : tensor<4x8xf32>) -> tensor<4x8xf32>
    %s = linalg.generic {...} ins(%y, %p : ...) outs(%e : tensor<4x8xf32>) { addf }
    ```
    After:
    ```mlir
    %s = linalg.matmul ins(%x, %w : tensor<4x2xf32>, tensor<2x8xf32>) outs(%y : tensor<4x8xf32>) -> tensor<4x8xf32>
    ```
  }];
  let dependentDialects = ["::mlir::linalg::LinalgDialect"];
}

def LLMPFuseElementwise : Pass<"llmp-fuse-elementwise", "ModuleOp"> {
  let summary = "Fuse producer/consumer chains of elementwise linalg.generic ops";
  let description = [{
    Runs MLIR's linalg elementwise-fusion patterns alone. Unlike
    `linalg-fuse-elementwise-ops`, it does not propagate reshapes through named ops, so
    `linalg.matmul` / `linalg.batch_matmul` stay named and later become BLAS calls.
    A producer is fused only into its single user, and not at all when the user
    broadcasts it (a non-permutation indexing map) and its body calls libm (math ops
    other than exp, sqrt, rsqrt, fma, abs and rounding): fused, that call would run once
    per element of the larger loop (the cross-entropy gradient's per-row log, V times
    per row) and keep the loop scalar.

    Before:
    ```mlir
    %a = linalg.generic {...} ins(%x : tensor<8xf32>) outs(%e : tensor<8xf32>) { mulf }
    %b = linalg.generic {...} ins(%a : tensor<8xf32>) outs(%e : tensor<8xf32>) { exp }
    ```
    After:
    ```mlir
    %b = linalg.generic {...} ins(%x : tensor<8xf32>) outs(%e : tensor<8xf32>) { mulf; exp }
    ```
  }];
  let dependentDialects = ["::mlir::linalg::LinalgDialect"];
}

#endif
