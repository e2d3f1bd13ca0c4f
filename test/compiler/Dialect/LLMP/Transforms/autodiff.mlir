// RUN: llmp-opt %s --split-input-file --verify-diagnostics --llmp-autodiff | FileCheck %s

// Tests that the gradient of a mean is a splat of the seed scaled by 1/N.
// CHECK-LABEL: func.func @mean_grad
// CHECK-SAME: -> (tensor<f32>, tensor<4xf32>)
// CHECK: %[[L:.+]] = llmp.mean
// CHECK: %[[ONE:.+]] = arith.constant {llmp.seed} dense<1.000000e+00> : tensor<f32>
// CHECK: %[[G:.+]] = llmp.splat %[[ONE]] {scale = 2.500000e-01 : f32}
// CHECK: return %[[L]], %[[G]]
func.func @mean(%w: tensor<4xf32> {llmp.param = "w"}) -> tensor<f32> attributes {llmp.differentiate} {
  %m = llmp.mean %w : (tensor<4xf32>) -> tensor<f32>
  return %m : tensor<f32>
}

// -----

// Tests that matmul gradients are matmuls with flipped transposes, that a value used
// twice gets its gradients summed, and that data arguments get no gradient.
// CHECK-LABEL: func.func @mm_grad
// CHECK-SAME: (%[[X:.+]]: tensor<3x4xf32>, %[[W:.+]]: tensor<4x4xf32> {llmp.param = "w"})
// CHECK-SAME: -> (tensor<f32>, tensor<4x4xf32>)
// CHECK: %[[Y:.+]] = llmp.matmul %[[X]], %[[W]]
// CHECK: %[[Z:.+]] = llmp.matmul %[[Y]], %[[W]]
// CHECK: %[[DZ:.+]] = llmp.splat
// CHECK: llmp.matmul %[[DZ]], %[[W]] {transpose_b}
// CHECK: %[[DW2:.+]] = llmp.matmul %[[Y]], %[[DZ]] {transpose_a}
// CHECK: %[[DW1:.+]] = llmp.matmul %[[X]], %{{.+}} {transpose_a}
// CHECK: %[[DW:.+]] = llmp.add %[[DW2]], %[[DW1]]
// CHECK: return %{{.+}}, %[[DW]]
func.func @mm(%x: tensor<3x4xf32>, %w: tensor<4x4xf32> {llmp.param = "w"}) -> tensor<f32> attributes {llmp.differentiate} {
  %y = llmp.matmul %x, %w : (tensor<3x4xf32>, tensor<4x4xf32>) -> tensor<3x4xf32>
  %z = llmp.matmul %y, %w : (tensor<3x4xf32>, tensor<4x4xf32>) -> tensor<3x4xf32>
  %m = llmp.mean %z : (tensor<3x4xf32>) -> tensor<f32>
  return %m : tensor<f32>
}

// -----

// Tests that a parameter without a gradient path gets zeros.
// CHECK-LABEL: func.func @unused_grad
// CHECK: %[[Z:.+]] = arith.constant dense<0.000000e+00> : tensor<2xf32>
// CHECK: return %{{.+}}, %{{.+}}, %[[Z]]
func.func @unused(%a: tensor<3xf32> {llmp.param = "a"}, %b: tensor<2xf32> {llmp.param = "b"}) -> tensor<f32> attributes {llmp.differentiate} {
  %m = llmp.mean %a : (tensor<3xf32>) -> tensor<f32>
  return %m : tensor<f32>
}

// -----

// Tests that only a single tensor<f32> result can be differentiated.
// expected-error@+1 {{'func.func' op expected one tensor<f32> result to differentiate but found 2 results}}
func.func @two(%a: tensor<3xf32> {llmp.param = "a"}) -> (tensor<f32>, tensor<f32>) attributes {llmp.differentiate} {
  %m = llmp.mean %a : (tensor<3xf32>) -> tensor<f32>
  return %m, %m : tensor<f32>, tensor<f32>
}

// -----

// Tests that grouped-query attention with segments differentiates into attention_grad with
// the same heads, kv_heads and segments, dk and dv of the keys' shape, and no gradient
// for the segments, and that rope with positions reverses with the same positions.
// CHECK-LABEL: func.func @gqa_grad
// CHECK-SAME: -> (tensor<f32>, tensor<2x3x8xf32>, tensor<2x3x4xf32>)
// CHECK: %[[P:.+]] = llmp.positions %[[S:[^ ]+]]
// CHECK: llmp.attention_grad %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}} segments %[[S]] {causal, heads = 4 : i64, kv_heads = 2 : i64} {{.*}} -> (tensor<2x3x8xf32>, tensor<2x3x4xf32>, tensor<2x3x4xf32>)
// CHECK: llmp.rope %{{.+}} positions %[[P]] {heads = 2 : i64, inverse,
func.func @gqa(%q: tensor<2x3x8xf32> {llmp.param = "q"}, %k: tensor<2x3x4xf32> {llmp.param = "k"},
               %s: tensor<2x3xi32>) -> tensor<f32> attributes {llmp.differentiate} {
  %p = llmp.positions %s : (tensor<2x3xi32>) -> tensor<2x3xi32>
  %kr = llmp.rope %k positions %p {heads = 2 : i64, theta = 1.0e4 : f32} : (tensor<2x3x4xf32>, tensor<2x3xi32>) -> tensor<2x3x4xf32>
  %o = llmp.attention %q, %kr, %k segments %s {heads = 4 : i64, kv_heads = 2 : i64, causal} : (tensor<2x3x8xf32>, tensor<2x3x4xf32>, tensor<2x3x4xf32>, tensor<2x3xi32>) -> tensor<2x3x8xf32>
  %m = llmp.mean %o : (tensor<2x3x8xf32>) -> tensor<f32>
  return %m : tensor<f32>
}
