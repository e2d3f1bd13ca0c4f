// RUN: llmp-opt %s --llmp-grad-phase | FileCheck %s --check-prefix=GRAD
// RUN: llmp-opt %s --llmp-grad-phase --llmp-linalg-phase | FileCheck %s --check-prefix=LINALG
// RUN: llmp-opt %s --llmp-grad-phase --llmp-linalg-phase --llmp-llvm-phase | FileCheck %s --check-prefix=LLVM

// Tests that a tiny model goes through every phase.
// GRAD-LABEL: func.func @grad_step
// GRAD: llmp.cross_entropy_grad
// GRAD: llmp.embedding_grad
// GRAD-LABEL: func.func @apply_step
// GRAD-LABEL: func.func @eval_step
// GRAD-LABEL: func.func @logits_step

// LINALG-NOT: {{= llmp\.}}
// LINALG-NOT: func.func private @loss
// LINALG-LABEL: func.func @grad_step
// LINALG: linalg.matmul
// LINALG-LABEL: func.func @apply_step
// LINALG-LABEL: func.func @eval_step
// LINALG-LABEL: func.func @logits_step

// LLVM-NOT: linalg.
// LLVM-DAG: llvm.func @_mlir_ciface_grad_step
// LLVM-DAG: llvm.func @_mlir_ciface_apply_step
// LLVM-DAG: llvm.func @_mlir_ciface_eval_step
// LLVM-DAG: llvm.func @_mlir_ciface_logits_step
// LLVM-DAG: llvm.func @_mlir_ciface_lrt_matmul_f32
// Allocations go to the JIT's caching step heap (kernels/cpu/Alloc.h), not to malloc.
// LLVM-DAG: llvm.func @_mlir_memref_to_llvm_alloc
// LLVM-DAG: llvm.func @_mlir_memref_to_llvm_free
// LLVM-NOT: llvm.func @malloc
// exp (cross-entropy) is an inline polynomial: no libm call, no exp intrinsic.
// LLVM-NOT: llvm.intr.exp
module attributes {llmp.num_params = 40 : i64} {
  func.func @loss(%embed: tensor<5x4xf32> {llmp.param = "embed", llmp.offset = 0 : i64},
                  %w: tensor<4x5xf32> {llmp.param = "w", llmp.offset = 20 : i64, llmp.decay},
                  %tokens: tensor<2x3xi32>, %targets: tensor<2x3xi32>) -> tensor<f32> attributes {llmp.differentiate} {
    %x = llmp.embedding %embed, %tokens : (tensor<5x4xf32>, tensor<2x3xi32>) -> tensor<2x3x4xf32>
    %x2 = llmp.reshape %x : (tensor<2x3x4xf32>) -> tensor<6x4xf32>
    %l = llmp.matmul %x2, %w : (tensor<6x4xf32>, tensor<4x5xf32>) -> tensor<6x5xf32>
    %l3 = llmp.reshape %l : (tensor<6x5xf32>) -> tensor<2x3x5xf32>
    %ce = llmp.cross_entropy %l3, %targets : (tensor<2x3x5xf32>, tensor<2x3xi32>) -> tensor<2x3xf32>
    %m = llmp.mean %ce : (tensor<2x3xf32>) -> tensor<f32>
    return %m : tensor<f32>
  }
  func.func @logits(%embed: tensor<5x4xf32> {llmp.param = "embed", llmp.offset = 0 : i64},
                    %w: tensor<4x5xf32> {llmp.param = "w", llmp.offset = 20 : i64, llmp.decay},
                    %tokens: tensor<1x3xi32>) -> tensor<1x3x5xf32> {
    %x = llmp.embedding %embed, %tokens : (tensor<5x4xf32>, tensor<1x3xi32>) -> tensor<1x3x4xf32>
    %x2 = llmp.reshape %x : (tensor<1x3x4xf32>) -> tensor<3x4xf32>
    %l = llmp.matmul %x2, %w : (tensor<3x4xf32>, tensor<4x5xf32>) -> tensor<3x5xf32>
    %l3 = llmp.reshape %l : (tensor<3x5xf32>) -> tensor<1x3x5xf32>
    return %l3 : tensor<1x3x5xf32>
  }
}
