// RUN: llmp-opt %s --llmp-autodiff | FileCheck %s

// Tests that the gradient of an NF4 product reaches only its input: dx is the same
// product with transpose_b flipped, and the frozen blob gets no gradient.
// CHECK-LABEL: func.func @nf4_grad
// CHECK-SAME: (%[[X:.+]]: tensor<3x4xf32> {llmp.param = "x"}, %[[W:.+]]: tensor<16xi8>)
// CHECK-SAME: -> (tensor<f32>, tensor<3x4xf32>)
// CHECK: %[[Y:.+]] = llmp.matmul_nf4 %[[X]], %[[W]] {block = 64 : i64, cols = 6 : i64, rows = 4 : i64}
// CHECK: %[[DY:.+]] = llmp.splat
// CHECK: %[[DX:.+]] = llmp.matmul_nf4 %[[DY]], %[[W]] {block = 64 : i64, cols = 6 : i64, rows = 4 : i64, transpose_b} : (tensor<3x6xf32>, tensor<16xi8>) -> tensor<3x4xf32>
// CHECK: return %{{.+}}, %[[DX]]
func.func @nf4(%x: tensor<3x4xf32> {llmp.param = "x"}, %w: tensor<16xi8>) -> tensor<f32> attributes {llmp.differentiate} {
  %y = llmp.matmul_nf4 %x, %w {rows = 4 : i64, cols = 6 : i64, block = 64 : i64} : (tensor<3x4xf32>, tensor<16xi8>) -> tensor<3x6xf32>
  %m = llmp.mean %y : (tensor<3x6xf32>) -> tensor<f32>
  return %m : tensor<f32>
}
