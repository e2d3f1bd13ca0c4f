// RUN: llmp-opt %s --split-input-file --llmp-lower-to-linalg --llmp-fuse-elementwise | FileCheck %s

// Tests that silu(a + b) * c becomes one linalg.generic.
// CHECK-LABEL: func.func @chain
// CHECK: linalg.generic
// CHECK: arith.addf
// CHECK: math.exp
// CHECK: arith.mulf
// CHECK-NOT: linalg.generic
// CHECK: return
func.func @chain(%a: tensor<4x8xf32>, %b: tensor<4x8xf32>, %c: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %s = llmp.add %a, %b : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  %t = llmp.silu %s : (tensor<4x8xf32>) -> tensor<4x8xf32>
  %y = llmp.mul %t, %c : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

// Tests that batch matmuls on collapsed head tensors stay named (reshapes not propagated).
// CHECK-LABEL: func.func @attention
// CHECK-COUNT-2: linalg.batch_matmul
func.func @attention(%q: tensor<2x3x8xf32>) -> tensor<2x3x8xf32> {
  %y = llmp.attention %q, %q, %q {heads = 2 : i64} : (tensor<2x3x8xf32>, tensor<2x3x8xf32>, tensor<2x3x8xf32>) -> tensor<2x3x8xf32>
  return %y : tensor<2x3x8xf32>
}
