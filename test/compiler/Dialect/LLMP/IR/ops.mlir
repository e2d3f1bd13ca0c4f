// RUN: llmp-opt %s --split-input-file | llmp-opt --split-input-file | FileCheck %s

// Tests that the forward ops round-trip.
// CHECK-LABEL: func.func @forward
func.func @forward(%table: tensor<16x8xf32>, %ids: tensor<2x4xi32>, %w: tensor<8x8xf32>,
                   %n: tensor<8xf32>) -> tensor<f32> {
  // CHECK: llmp.embedding %{{.*}}, %{{.*}} : (tensor<16x8xf32>, tensor<2x4xi32>) -> tensor<2x4x8xf32>
  %x = llmp.embedding %table, %ids : (tensor<16x8xf32>, tensor<2x4xi32>) -> tensor<2x4x8xf32>
  // CHECK: llmp.rmsnorm %{{.*}}, %{{.*}} {eps = 9.99999974E-6 : f32}
  %h = llmp.rmsnorm %x, %n {eps = 1.0e-5 : f32} : (tensor<2x4x8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
  // CHECK: llmp.reshape %{{.*}} : (tensor<2x4x8xf32>) -> tensor<8x8xf32>
  %h2 = llmp.reshape %h : (tensor<2x4x8xf32>) -> tensor<8x8xf32>
  // CHECK: llmp.matmul %{{.*}}, %{{.*}} {transpose_a, transpose_b}
  %m = llmp.matmul %h2, %w {transpose_a, transpose_b} : (tensor<8x8xf32>, tensor<8x8xf32>) -> tensor<8x8xf32>
  // CHECK: llmp.transpose %{{.*}} : (tensor<8x8xf32>) -> tensor<8x8xf32>
  %t = llmp.transpose %m : (tensor<8x8xf32>) -> tensor<8x8xf32>
  // CHECK: llmp.add
  %a = llmp.add %t, %m : (tensor<8x8xf32>, tensor<8x8xf32>) -> tensor<8x8xf32>
  // CHECK: llmp.mul
  %b = llmp.mul %a, %m : (tensor<8x8xf32>, tensor<8x8xf32>) -> tensor<8x8xf32>
  // CHECK: llmp.silu
  %s = llmp.silu %b : (tensor<8x8xf32>) -> tensor<8x8xf32>
  %s3 = llmp.reshape %s : (tensor<8x8xf32>) -> tensor<2x4x8xf32>
  // CHECK: llmp.rope %{{.*}} {heads = 2 : i64, inverse, theta = 1.000000e+04 : f32}
  %r = llmp.rope %s3 {heads = 2 : i64, theta = 1.0e4 : f32, inverse} : (tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
  // CHECK: llmp.attention %{{.*}}, %{{.*}}, %{{.*}} {causal, heads = 2 : i64}
  %o = llmp.attention %r, %r, %s3 {heads = 2 : i64, causal} : (tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
  %lg = llmp.reshape %o : (tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
  // CHECK: llmp.cross_entropy %{{.*}}, %{{.*}} : (tensor<2x4x8xf32>, tensor<2x4xi32>) -> tensor<2x4xf32>
  %ce = llmp.cross_entropy %lg, %ids : (tensor<2x4x8xf32>, tensor<2x4xi32>) -> tensor<2x4xf32>
  // CHECK: llmp.mean %{{.*}} : (tensor<2x4xf32>) -> tensor<f32>
  %l = llmp.mean %ce : (tensor<2x4xf32>) -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// Tests that the gradient ops round-trip.
// CHECK-LABEL: func.func @gradients
func.func @gradients(%ids: tensor<2x4xi32>, %x: tensor<2x4x8xf32>, %n: tensor<8xf32>,
                     %dl: tensor<f32>) -> (tensor<16x8xf32>, tensor<2x4x8xf32>, tensor<8xf32>,
                                           tensor<2x4x8xf32>, tensor<2x4x8xf32>) {
  // CHECK: llmp.splat %{{.*}} {scale = 1.250000e-01 : f32} : (tensor<f32>) -> tensor<2x4x8xf32>
  %dy = llmp.splat %dl {scale = 0.125 : f32} : (tensor<f32>) -> tensor<2x4x8xf32>
  // CHECK: llmp.embedding_grad %{{.*}}, %{{.*}} {vocab = 16 : i64}
  %de = llmp.embedding_grad %ids, %dy {vocab = 16 : i64} : (tensor<2x4xi32>, tensor<2x4x8xf32>) -> tensor<16x8xf32>
  // CHECK: llmp.silu_grad
  %ds = llmp.silu_grad %x, %dy : (tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
  // CHECK: llmp.rmsnorm_grad {{.*}} -> (tensor<2x4x8xf32>, tensor<8xf32>)
  %dx, %dw = llmp.rmsnorm_grad %x, %n, %ds {eps = 1.0e-5 : f32} : (tensor<2x4x8xf32>, tensor<8xf32>, tensor<2x4x8xf32>) -> (tensor<2x4x8xf32>, tensor<8xf32>)
  // CHECK: llmp.attention_grad {{.*}} {causal, heads = 2 : i64}
  %dq, %dk, %dv = llmp.attention_grad %x, %x, %x, %dx {heads = 2 : i64, causal} : (tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> (tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32>)
  %ce = llmp.mean %dq : (tensor<2x4x8xf32>) -> tensor<f32>
  %d2 = llmp.splat %ce {scale = 1.0 : f32} : (tensor<f32>) -> tensor<2x4xf32>
  // CHECK: llmp.cross_entropy_grad %{{.*}}, %{{.*}}, %{{.*}} : (tensor<2x4x8xf32>, tensor<2x4xi32>, tensor<2x4xf32>) -> tensor<2x4x8xf32>
  %dlg = llmp.cross_entropy_grad %dk, %ids, %d2 : (tensor<2x4x8xf32>, tensor<2x4xi32>, tensor<2x4xf32>) -> tensor<2x4x8xf32>
  return %de, %dlg, %dw, %dv, %ds : tensor<16x8xf32>, tensor<2x4x8xf32>, tensor<8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32>
}

// -----

// Tests that grouped-query attention with document segments, positions and rope with
// positions round-trip.
// CHECK-LABEL: func.func @packed_gqa
func.func @packed_gqa(%q: tensor<2x4x8xf32>, %k: tensor<2x4x4xf32>, %seg: tensor<2x4xi32>)
    -> (tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x4xf32>) {
  // CHECK: %[[P:.+]] = llmp.positions %{{.*}} : (tensor<2x4xi32>) -> tensor<2x4xi32>
  %pos = llmp.positions %seg : (tensor<2x4xi32>) -> tensor<2x4xi32>
  // CHECK: llmp.rope %{{.*}} positions %[[P]] {heads = 1 : i64, theta = 1.000000e+04 : f32} : (tensor<2x4x4xf32>, tensor<2x4xi32>) -> tensor<2x4x4xf32>
  %kr = llmp.rope %k positions %pos {heads = 1 : i64, theta = 1.0e4 : f32} : (tensor<2x4x4xf32>, tensor<2x4xi32>) -> tensor<2x4x4xf32>
  // CHECK: llmp.attention %{{.*}}, %{{.*}}, %{{.*}} segments %{{.*}} {causal, heads = 4 : i64, kv_heads = 2 : i64}
  %o = llmp.attention %q, %kr, %kr segments %seg {heads = 4 : i64, kv_heads = 2 : i64, causal} : (tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>, tensor<2x4xi32>) -> tensor<2x4x8xf32>
  // CHECK: llmp.attention_grad %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} segments %{{.*}} {causal, heads = 4 : i64, kv_heads = 2 : i64} {{.*}} -> (tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>)
  %dq, %dk, %dv = llmp.attention_grad %q, %kr, %kr, %o segments %seg {heads = 4 : i64, kv_heads = 2 : i64, causal} : (tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>, tensor<2x4x8xf32>, tensor<2x4xi32>) -> (tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>)
  return %o, %dq, %dk : tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x4xf32>
}

// -----

// Tests that target_mean and its gradient round-trip.
// CHECK-LABEL: func.func @target_mean
func.func @target_mean(%l: tensor<2x4xf32>, %t: tensor<2x4xi32>, %dy: tensor<f32>) -> tensor<2x4xf32> {
  // CHECK: llmp.target_mean %{{.*}}, %{{.*}} : (tensor<2x4xf32>, tensor<2x4xi32>) -> tensor<f32>
  %m = llmp.target_mean %l, %t : (tensor<2x4xf32>, tensor<2x4xi32>) -> tensor<f32>
  // CHECK: llmp.target_mean_grad %{{.*}}, %{{.*}} : (tensor<2x4xi32>, tensor<f32>) -> tensor<2x4xf32>
  %g = llmp.target_mean_grad %t, %dy : (tensor<2x4xi32>, tensor<f32>) -> tensor<2x4xf32>
  return %g : tensor<2x4xf32>
}
