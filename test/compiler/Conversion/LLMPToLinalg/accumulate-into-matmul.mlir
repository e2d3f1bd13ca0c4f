// RUN: llmp-opt %s --split-input-file --llmp-accumulate-into-matmul | FileCheck %s

#id = affine_map<(d0, d1) -> (d0, d1)>
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>

// Tests that a zero-initialised product added to another tensor accumulates onto it: the
// sum goes away and the product's init is the other side.
// CHECK-LABEL: func.func @sum_of_inputs
// CHECK-SAME: (%[[X:.+]]: tensor<4x2xf32>, %[[W:.+]]: tensor<2x8xf32>, %[[Y:.+]]: tensor<4x8xf32>)
// CHECK: %[[P:.+]] = linalg.matmul ins(%[[X]], %[[W]] : tensor<4x2xf32>, tensor<2x8xf32>) outs(%[[Y]] : tensor<4x8xf32>)
// CHECK-NOT: linalg.generic
// CHECK: return %[[P]]
func.func @sum_of_inputs(%x: tensor<4x2xf32>, %w: tensor<2x8xf32>, %y: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<4x8xf32>
  %z = linalg.fill ins(%zero : f32) outs(%e : tensor<4x8xf32>) -> tensor<4x8xf32>
  %p = linalg.matmul ins(%x, %w : tensor<4x2xf32>, tensor<2x8xf32>) outs(%z : tensor<4x8xf32>) -> tensor<4x8xf32>
  %s = linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%y, %p : tensor<4x8xf32>, tensor<4x8xf32>) outs(%e : tensor<4x8xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %r = arith.addf %a, %b : f32
    linalg.yield %r : f32
  } -> tensor<4x8xf32>
  return %s : tensor<4x8xf32>
}

// -----

#id = affine_map<(d0, d1) -> (d0, d1)>

// Tests grad_step's accumulation `out += in` (the sum's own init is the other side) and
// a chain: the sum of two products becomes the first accumulating onto the second (moved
// right after the second), and the outer sum lets the second start from the accumulator.
// CHECK-LABEL: func.func @chain_into_init
// CHECK-SAME: (%[[X:[^:]+]]: tensor<4x2xf32>, %[[A:[^:]+]]: tensor<2x8xf32>, %[[B:[^:]+]]: tensor<2x8xf32>, %[[G:[^:]+]]: tensor<4x8xf32>)
// CHECK: %[[P2:.+]] = linalg.matmul ins(%[[X]], %[[B]] : {{.*}}) outs(%[[G]] : tensor<4x8xf32>)
// CHECK: %[[P1:.+]] = linalg.matmul ins(%[[X]], %[[A]] : {{.*}}) outs(%[[P2]] : tensor<4x8xf32>)
// CHECK-NOT: linalg.generic
// CHECK: return %[[P1]]
func.func @chain_into_init(%x: tensor<4x2xf32>, %a: tensor<2x8xf32>, %b: tensor<2x8xf32>, %g: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<4x8xf32>
  %z = linalg.fill ins(%zero : f32) outs(%e : tensor<4x8xf32>) -> tensor<4x8xf32>
  %p1 = linalg.matmul ins(%x, %a : tensor<4x2xf32>, tensor<2x8xf32>) outs(%z : tensor<4x8xf32>) -> tensor<4x8xf32>
  %p2 = linalg.matmul ins(%x, %b : tensor<4x2xf32>, tensor<2x8xf32>) outs(%z : tensor<4x8xf32>) -> tensor<4x8xf32>
  %s = linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%p1, %p2 : tensor<4x8xf32>, tensor<4x8xf32>) outs(%e : tensor<4x8xf32>) {
  ^bb0(%u: f32, %v: f32, %o: f32):
    %r = arith.addf %u, %v : f32
    linalg.yield %r : f32
  } -> tensor<4x8xf32>
  %acc = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%s : tensor<4x8xf32>) outs(%g : tensor<4x8xf32>) {
  ^bb0(%in: f32, %out: f32):
    %r = arith.addf %out, %in : f32
    linalg.yield %r : f32
  } -> tensor<4x8xf32>
  return %acc : tensor<4x8xf32>
}

// -----

#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>

// Tests a product seen through tensor.expand_shape (a (B*T, N) GEMM as (B, T, N)): the
// other side is collapsed to the product's shape and the result expanded back.
// CHECK-LABEL: func.func @through_expand
// CHECK-SAME: (%[[X:[^:]+]]: tensor<4x2xf32>, %[[W:[^:]+]]: tensor<2x8xf32>, %[[H:[^:]+]]: tensor<2x2x8xf32>)
// CHECK: %[[C:.+]] = tensor.collapse_shape %[[H]] {{\[\[}}0, 1], [2]] : tensor<2x2x8xf32> into tensor<4x8xf32>
// CHECK: %[[P:.+]] = linalg.matmul ins(%[[X]], %[[W]] : {{.*}}) outs(%[[C]] : tensor<4x8xf32>)
// CHECK: %[[R:.+]] = tensor.expand_shape %[[P]]
// CHECK-NOT: linalg.generic
// CHECK: return %[[R]]
func.func @through_expand(%x: tensor<4x2xf32>, %w: tensor<2x8xf32>, %h: tensor<2x2x8xf32>) -> tensor<2x2x8xf32> {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<4x8xf32>
  %z = linalg.fill ins(%zero : f32) outs(%e : tensor<4x8xf32>) -> tensor<4x8xf32>
  %p = linalg.matmul ins(%x, %w : tensor<4x2xf32>, tensor<2x8xf32>) outs(%z : tensor<4x8xf32>) -> tensor<4x8xf32>
  %pe = tensor.expand_shape %p [[0, 1], [2]] output_shape [2, 2, 8] : tensor<4x8xf32> into tensor<2x2x8xf32>
  %e3 = tensor.empty() : tensor<2x2x8xf32>
  %s = linalg.generic {indexing_maps = [#id3, #id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%h, %pe : tensor<2x2x8xf32>, tensor<2x2x8xf32>) outs(%e3 : tensor<2x2x8xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %r = arith.addf %a, %b : f32
    linalg.yield %r : f32
  } -> tensor<2x2x8xf32>
  return %s : tensor<2x2x8xf32>
}

// -----

#id = affine_map<(d0, d1) -> (d0, d1)>

// Tests what stays a sum: a product read twice, a product onto a non-zero fill, and a
// difference.
// CHECK-LABEL: func.func @kept
// CHECK-COUNT-3: linalg.generic
func.func @kept(%x: tensor<4x2xf32>, %w: tensor<2x8xf32>, %y: tensor<4x8xf32>) -> (tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>) {
  %zero = arith.constant 0.0 : f32
  %one = arith.constant 1.0 : f32
  %e = tensor.empty() : tensor<4x8xf32>
  %z = linalg.fill ins(%zero : f32) outs(%e : tensor<4x8xf32>) -> tensor<4x8xf32>
  %o = linalg.fill ins(%one : f32) outs(%e : tensor<4x8xf32>) -> tensor<4x8xf32>
  %p = linalg.matmul ins(%x, %w : tensor<4x2xf32>, tensor<2x8xf32>) outs(%z : tensor<4x8xf32>) -> tensor<4x8xf32>
  %s1 = linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%y, %p : tensor<4x8xf32>, tensor<4x8xf32>) outs(%e : tensor<4x8xf32>) {
  ^bb0(%a: f32, %b: f32, %u: f32):
    %r = arith.addf %a, %b : f32
    linalg.yield %r : f32
  } -> tensor<4x8xf32>
  %q = linalg.matmul ins(%x, %w : tensor<4x2xf32>, tensor<2x8xf32>) outs(%o : tensor<4x8xf32>) -> tensor<4x8xf32>
  %s2 = linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%y, %q : tensor<4x8xf32>, tensor<4x8xf32>) outs(%e : tensor<4x8xf32>) {
  ^bb0(%a: f32, %b: f32, %u: f32):
    %r = arith.addf %a, %b : f32
    linalg.yield %r : f32
  } -> tensor<4x8xf32>
  %t = linalg.matmul ins(%x, %w : tensor<4x2xf32>, tensor<2x8xf32>) outs(%z : tensor<4x8xf32>) -> tensor<4x8xf32>
  %s3 = linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%y, %t : tensor<4x8xf32>, tensor<4x8xf32>) outs(%e : tensor<4x8xf32>) {
  ^bb0(%a: f32, %b: f32, %u: f32):
    %r = arith.subf %a, %b : f32
    linalg.yield %r : f32
  } -> tensor<4x8xf32>
  return %s1, %s2, %s3, %p : tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>
}
