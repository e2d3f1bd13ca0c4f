// RUN: llmp-opt %s --split-input-file --llmp-linalg-to-lrt | FileCheck %s

// Tests that a matmul with a transposed rhs becomes a kernel call with tb = 1.
// CHECK-LABEL: func.func @matmul
// CHECK-SAME: (%[[A:.+]]: memref<3x4xf32>, %[[B:.+]]: memref<5x4xf32>, %[[C:.+]]: memref<3x5xf32>)
// CHECK-DAG: %[[F:.+]] = arith.constant 0 : i32
// CHECK-DAG: %[[T:.+]] = arith.constant 1 : i32
// CHECK: %[[CA:.+]] = memref.cast %[[A]] : memref<3x4xf32> to memref<?x?xf32, strided<[?, ?], offset: ?>>
// CHECK: %[[CB:.+]] = memref.cast %[[B]]
// CHECK: %[[CC:.+]] = memref.cast %[[C]]
// CHECK: call @lrt_matmul_f32(%[[F]], %[[T]], %[[CA]], %[[CB]], %[[CC]])
// CHECK-NOT: linalg.matmul
// CHECK: func.func private @lrt_matmul_f32(i32, i32, memref<?x?xf32, strided<[?, ?], offset: ?>>, memref<?x?xf32, strided<[?, ?], offset: ?>>, memref<?x?xf32, strided<[?, ?], offset: ?>>) attributes {llvm.emit_c_interface}
func.func @matmul(%a: memref<3x4xf32>, %b: memref<5x4xf32>, %c: memref<3x5xf32>) {
  linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>, affine_map<(m, n, k) -> (n, k)>, affine_map<(m, n, k) -> (m, n)>]
    ins(%a, %b : memref<3x4xf32>, memref<5x4xf32>) outs(%c : memref<3x5xf32>)
  return
}

// -----

// Tests that a batch matmul with a transposed lhs calls the batched kernel with ta = 1.
// CHECK-LABEL: func.func @batch
// CHECK-DAG: %[[T:.+]] = arith.constant 1 : i32
// CHECK-DAG: %[[F:.+]] = arith.constant 0 : i32
// CHECK: call @lrt_batch_matmul_f32(%[[T]], %[[F]], %{{.+}}, %{{.+}}, %{{.+}}) : (i32, i32, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
func.func @batch(%a: memref<2x4x3xf32>, %b: memref<2x4x5xf32>, %c: memref<2x3x5xf32>) {
  linalg.batch_matmul indexing_maps = [affine_map<(b, m, n, k) -> (b, k, m)>, affine_map<(b, m, n, k) -> (b, k, n)>, affine_map<(b, m, n, k) -> (b, m, n)>]
    ins(%a, %b : memref<2x4x3xf32>, memref<2x4x5xf32>) outs(%c : memref<2x3x5xf32>)
  return
}

// -----

// Tests that tensor-level matmuls are left alone.
// CHECK-LABEL: func.func @tensors
// CHECK: linalg.matmul
func.func @tensors(%a: tensor<3x4xf32>, %b: tensor<4x5xf32>, %c: tensor<3x5xf32>) -> tensor<3x5xf32> {
  %y = linalg.matmul ins(%a, %b : tensor<3x4xf32>, tensor<4x5xf32>) outs(%c : tensor<3x5xf32>) -> tensor<3x5xf32>
  return %y : tensor<3x5xf32>
}
