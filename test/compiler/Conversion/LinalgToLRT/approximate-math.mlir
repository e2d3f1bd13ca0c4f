// RUN: llmp-opt %s --split-input-file --llmp-approximate-math | FileCheck %s

// Tests that f32 math.exp inside a linalg.generic becomes an inline polynomial.
// CHECK-LABEL: func.func @softmax_exp
// CHECK: linalg.generic
// CHECK-NOT: math.exp
// CHECK: math.fma
// CHECK: linalg.yield
func.func @softmax_exp(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %e = tensor.empty() : tensor<4x8xf32>
  %r = linalg.generic {indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i, j)>],
                       iterator_types = ["parallel", "parallel"]}
      ins(%x : tensor<4x8xf32>) outs(%e : tensor<4x8xf32>) {
  ^bb0(%a: f32, %o: f32):
    %y = math.exp %a : f32
    linalg.yield %y : f32
  } -> tensor<4x8xf32>
  return %r : tensor<4x8xf32>
}

// -----

// Tests that other math ops are left to libm: sin/cos (RoPE angles exceed the polynomial's
// accurate range) and log.
// CHECK-LABEL: func.func @others
// CHECK: math.sin
// CHECK: math.cos
// CHECK: math.log
func.func @others(%x: f32) -> (f32, f32, f32) {
  %s = math.sin %x : f32
  %c = math.cos %x : f32
  %l = math.log %x : f32
  return %s, %c, %l : f32, f32, f32
}
