// RUN: llmp-opt %s --llmp-lower-to-linalg --one-shot-bufferize="bufferize-function-boundaries function-boundary-type-conversion=identity-layout-map" --llmp-linalg-to-lrt --canonicalize | FileCheck %s

// Tests that a bufferized matmul_nf4 (the tagged linalg.generic) becomes one call of the
// fused kernel with (tb, rows, cols, block, double_quant) and the input, blob and output
// buffers, and that no dequantizing loop body is left (nor, after canonicalize, the code
// tables it read).
// CHECK-LABEL: func.func @nf4
// CHECK-SAME: (%[[X:.+]]: memref<3x6xf32>, %[[W:.+]]: memref<24xi8>)
// CHECK-NOT: memref.get_global
// CHECK-DAG: %[[ONE:.+]] = arith.constant 1 : i32
// CHECK-DAG: %[[R:.+]] = arith.constant 4 : i64
// CHECK-DAG: %[[C:.+]] = arith.constant 6 : i64
// CHECK-DAG: %[[B:.+]] = arith.constant 64 : i64
// CHECK: linalg.fill
// CHECK: %[[CX:.+]] = memref.cast %[[X]] : memref<3x6xf32> to memref<?x?xf32, strided<[?, ?], offset: ?>>
// CHECK: %[[CW:.+]] = memref.cast %[[W]] : memref<24xi8> to memref<?xi8, strided<[?], offset: ?>>
// CHECK: %[[CO:.+]] = memref.cast %{{.+}} : memref<3x4xf32> to memref<?x?xf32, strided<[?, ?], offset: ?>>
// CHECK: call @lrt_matmul_nf4_f32(%[[ONE]], %[[R]], %[[C]], %[[B]], %[[ONE]], %[[CX]], %[[CW]], %[[CO]])
// CHECK-NOT: linalg.generic
// CHECK: func.func private @lrt_matmul_nf4_f32(i32, i64, i64, i64, i32, memref<?x?xf32, strided<[?, ?], offset: ?>>, memref<?xi8, strided<[?], offset: ?>>, memref<?x?xf32, strided<[?, ?], offset: ?>>) attributes {llvm.emit_c_interface}
func.func @nf4(%x: tensor<3x6xf32>, %w: tensor<24xi8>) -> tensor<3x4xf32> {
  %y = llmp.matmul_nf4 %x, %w {rows = 4 : i64, cols = 6 : i64, block = 64 : i64, double_quant, transpose_b} : (tensor<3x6xf32>, tensor<24xi8>) -> tensor<3x4xf32>
  return %y : tensor<3x4xf32>
}
