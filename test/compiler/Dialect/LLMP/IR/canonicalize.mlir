// RUN: llmp-opt %s --split-input-file --canonicalize | FileCheck %s

// Tests that a transposed rhs folds into matmul {transpose_b}.
// CHECK-LABEL: func.func @fold_rhs
// CHECK-SAME: (%[[A:.+]]: tensor<3x4xf32>, %[[B:.+]]: tensor<5x4xf32>)
// CHECK-NOT: llmp.transpose
// CHECK: llmp.matmul %[[A]], %[[B]] {transpose_b}
func.func @fold_rhs(%a: tensor<3x4xf32>, %b: tensor<5x4xf32>) -> tensor<3x5xf32> {
  %t = llmp.transpose %b : (tensor<5x4xf32>) -> tensor<4x5xf32>
  %y = llmp.matmul %a, %t : (tensor<3x4xf32>, tensor<4x5xf32>) -> tensor<3x5xf32>
  return %y : tensor<3x5xf32>
}

// -----

// Tests that a transposed lhs flips an existing transpose_a off.
// CHECK-LABEL: func.func @fold_lhs
// CHECK-SAME: (%[[A:.+]]: tensor<3x4xf32>, %[[B:.+]]: tensor<4x5xf32>)
// CHECK: %[[Y:.+]] = llmp.matmul %[[A]], %[[B]] :
// CHECK: return %[[Y]]
func.func @fold_lhs(%a: tensor<3x4xf32>, %b: tensor<4x5xf32>) -> tensor<3x5xf32> {
  %t = llmp.transpose %a : (tensor<3x4xf32>) -> tensor<4x3xf32>
  %y = llmp.matmul %t, %b {transpose_a} : (tensor<4x3xf32>, tensor<4x5xf32>) -> tensor<3x5xf32>
  return %y : tensor<3x5xf32>
}
