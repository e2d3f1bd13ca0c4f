// RUN: llmp-opt %s --split-input-file | llmp-opt --split-input-file | FileCheck %s

// Tests that the KV cache ops of @prefill / @decode round-trip: a cache of 2 layers, 2
// rows, 2 key/value heads, 16 positions of head size 4; 4 query heads of size 4.
// CHECK-LABEL: func.func @decode
func.func @decode(%kc: tensor<2x2x2x16x4xf32>, %vc: tensor<2x2x2x16x4xf32>, %k: tensor<2x1x8xf32>,
                  %q: tensor<2x1x16xf32>, %pos: tensor<2xi32>)
    -> (tensor<2x1x16xf32>, tensor<2x2x2x16x4xf32>, tensor<2x2x2x16x4xf32>) {
  // CHECK: %[[K:.+]] = llmp.kv_cache_write %{{.*}}, %{{.*}} start %{{.*}} {layer = 1 : i64} : (tensor<2x2x2x16x4xf32>, tensor<2x1x8xf32>, tensor<2xi32>) -> tensor<2x2x2x16x4xf32>
  %k1 = llmp.kv_cache_write %kc, %k start %pos {layer = 1 : i64} : (tensor<2x2x2x16x4xf32>, tensor<2x1x8xf32>, tensor<2xi32>) -> tensor<2x2x2x16x4xf32>
  %v1 = llmp.kv_cache_write %vc, %k start %pos {layer = 1 : i64} : (tensor<2x2x2x16x4xf32>, tensor<2x1x8xf32>, tensor<2xi32>) -> tensor<2x2x2x16x4xf32>
  // CHECK: llmp.cache_attention %{{.*}}, %[[K]], %{{.*}} start %{{.*}} {heads = 4 : i64, kv_heads = 2 : i64, layer = 1 : i64} : (tensor<2x1x16xf32>, tensor<2x2x2x16x4xf32>, tensor<2x2x2x16x4xf32>, tensor<2xi32>) -> tensor<2x1x16xf32>
  %o = llmp.cache_attention %q, %k1, %v1 start %pos {layer = 1 : i64, heads = 4 : i64, kv_heads = 2 : i64} : (tensor<2x1x16xf32>, tensor<2x2x2x16x4xf32>, tensor<2x2x2x16x4xf32>, tensor<2xi32>) -> tensor<2x1x16xf32>
  return %o, %k1, %v1 : tensor<2x1x16xf32>, tensor<2x2x2x16x4xf32>, tensor<2x2x2x16x4xf32>
}

// -----

// Tests that a prefill write (no start: positions 0..T-1) and last_token round-trip.
// CHECK-LABEL: func.func @prefill
func.func @prefill(%kc: tensor<1x2x1x16x4xf32>, %k: tensor<2x8x4xf32>, %logits: tensor<2x8x64xf32>,
                   %len: tensor<2xi32>) -> (tensor<1x2x1x16x4xf32>, tensor<2x64xf32>) {
  // CHECK: llmp.kv_cache_write %{{.*}}, %{{.*}} {layer = 0 : i64} : (tensor<1x2x1x16x4xf32>, tensor<2x8x4xf32>) -> tensor<1x2x1x16x4xf32>
  %k1 = llmp.kv_cache_write %kc, %k {layer = 0 : i64} : (tensor<1x2x1x16x4xf32>, tensor<2x8x4xf32>) -> tensor<1x2x1x16x4xf32>
  // CHECK: llmp.last_token %{{.*}}, %{{.*}} : (tensor<2x8x64xf32>, tensor<2xi32>) -> tensor<2x64xf32>
  %l = llmp.last_token %logits, %len : (tensor<2x8x64xf32>, tensor<2xi32>) -> tensor<2x64xf32>
  return %k1, %l : tensor<1x2x1x16x4xf32>, tensor<2x64xf32>
}
