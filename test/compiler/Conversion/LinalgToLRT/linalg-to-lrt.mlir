// RUN: llmp-opt %s --split-input-file --llmp-linalg-to-lrt | FileCheck %s

// Tests that a matmul with a transposed rhs becomes a kernel call with tb = 1; C, an
// argument with no fill before the matmul, is accumulated into (accumulate = 1).
// CHECK-LABEL: func.func @matmul
// CHECK-SAME: (%[[A:.+]]: memref<3x4xf32>, %[[B:.+]]: memref<5x4xf32>, %[[C:.+]]: memref<3x5xf32>)
// CHECK-DAG: %[[F:.+]] = arith.constant 0 : i32
// CHECK-DAG: %[[T:.+]] = arith.constant 1 : i32
// CHECK-DAG: %[[ACC:.+]] = arith.constant 1 : i32
// CHECK: %[[CA:.+]] = memref.cast %[[A]] : memref<3x4xf32> to memref<?x?xf32, strided<[?, ?], offset: ?>>
// CHECK: %[[CB:.+]] = memref.cast %[[B]]
// CHECK: %[[CC:.+]] = memref.cast %[[C]]
// CHECK: call @lrt_matmul_f32(%[[F]], %[[T]], %[[ACC]], %[[CA]], %[[CB]], %[[CC]])
// CHECK-NOT: linalg.matmul
// CHECK: func.func private @lrt_matmul_f32(i32, i32, i32, memref<?x?xf32, strided<[?, ?], offset: ?>>, memref<?x?xf32, strided<[?, ?], offset: ?>>, memref<?x?xf32, strided<[?, ?], offset: ?>>) attributes {llvm.emit_c_interface}
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
// CHECK-DAG: %[[ACC:.+]] = arith.constant 1 : i32
// CHECK: call @lrt_batch_matmul_f32(%[[T]], %[[F]], %[[ACC]], %{{.+}}, %{{.+}}, %{{.+}}) : (i32, i32, i32, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
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

// -----

// Tests that a zero fill of exactly C's buffer followed by the matmul folds: the call
// overwrites C (accumulate = 0) and the fill is gone. The alloc and the fill of another
// buffer in between touch nothing of C.
// CHECK-LABEL: func.func @zero_fill_folds
// CHECK: %[[C:.+]] = memref.alloc() : memref<3x5xf32>
// CHECK: linalg.fill ins(%{{.+}} : f32) outs(%{{.+}} : memref<2x2xf32>)
// CHECK-NOT: linalg.fill
// CHECK: arith.constant 0 : i32
// CHECK: arith.constant 0 : i32
// CHECK: %[[Z:.+]] = arith.constant 0 : i32
// CHECK: %[[CC:.+]] = memref.cast %[[C]]
// CHECK: call @lrt_matmul_f32(%{{.+}}, %{{.+}}, %[[Z]], %{{.+}}, %{{.+}}, %[[CC]])
// CHECK-NOT: linalg.fill
// CHECK: return %[[C]]
func.func @zero_fill_folds(%a: memref<3x4xf32>, %b: memref<4x5xf32>) -> (memref<3x5xf32>, memref<2x2xf32>) {
  %zero = arith.constant 0.0 : f32
  %c = memref.alloc() : memref<3x5xf32>
  linalg.fill ins(%zero : f32) outs(%c : memref<3x5xf32>)
  %d = memref.alloc() : memref<2x2xf32>
  linalg.fill ins(%zero : f32) outs(%d : memref<2x2xf32>)
  linalg.matmul ins(%a, %b : memref<3x4xf32>, memref<4x5xf32>) outs(%c : memref<3x5xf32>)
  return %c, %d : memref<3x5xf32>, memref<2x2xf32>
}

// -----

// Tests that a batch matmul after a zero fill overwrites too.
// CHECK-LABEL: func.func @batch_zero_fill_folds
// CHECK-NOT: linalg.fill
// CHECK: arith.constant 0 : i32
// CHECK: arith.constant 0 : i32
// CHECK: %[[Z:.+]] = arith.constant 0 : i32
// CHECK-NOT: linalg.fill
// CHECK: call @lrt_batch_matmul_f32(%{{.+}}, %{{.+}}, %[[Z]],
func.func @batch_zero_fill_folds(%a: memref<2x3x4xf32>, %b: memref<2x4x5xf32>) -> memref<2x3x5xf32> {
  %zero = arith.constant 0.0 : f32
  %c = memref.alloc() : memref<2x3x5xf32>
  linalg.fill ins(%zero : f32) outs(%c : memref<2x3x5xf32>)
  linalg.batch_matmul ins(%a, %b : memref<2x3x4xf32>, memref<2x4x5xf32>) outs(%c : memref<2x3x5xf32>)
  return %c : memref<2x3x5xf32>
}

// -----

// Tests that a zero fill whose zeros something reads before the matmul (here a copy out of
// a view of C) stays, and the matmul accumulates onto it (accumulate = 1).
// CHECK-LABEL: func.func @fill_read_before_matmul
// CHECK: linalg.fill
// CHECK: memref.copy
// CHECK: %[[ONE:.+]] = arith.constant 1 : i32
// CHECK: call @lrt_matmul_f32(%{{.+}}, %{{.+}}, %[[ONE]],
func.func @fill_read_before_matmul(%a: memref<3x4xf32>, %b: memref<4x5xf32>, %d: memref<15xf32>) -> memref<3x5xf32> {
  %zero = arith.constant 0.0 : f32
  %c = memref.alloc() : memref<3x5xf32>
  linalg.fill ins(%zero : f32) outs(%c : memref<3x5xf32>)
  %flat = memref.collapse_shape %c [[0, 1]] : memref<3x5xf32> into memref<15xf32>
  memref.copy %flat, %d : memref<15xf32> to memref<15xf32>
  linalg.matmul ins(%a, %b : memref<3x4xf32>, memref<4x5xf32>) outs(%c : memref<3x5xf32>)
  return %c : memref<3x5xf32>
}

// -----

// Tests that a fill of a value other than +0.0 stays (C = 1 + A B needs the ones).
// CHECK-LABEL: func.func @nonzero_fill
// CHECK: linalg.fill
// CHECK: %[[ONE:.+]] = arith.constant 1 : i32
// CHECK: call @lrt_matmul_f32(%{{.+}}, %{{.+}}, %[[ONE]],
func.func @nonzero_fill(%a: memref<3x4xf32>, %b: memref<4x5xf32>) -> memref<3x5xf32> {
  %one = arith.constant 1.0 : f32
  %c = memref.alloc() : memref<3x5xf32>
  linalg.fill ins(%one : f32) outs(%c : memref<3x5xf32>)
  linalg.matmul ins(%a, %b : memref<3x4xf32>, memref<4x5xf32>) outs(%c : memref<3x5xf32>)
  return %c : memref<3x5xf32>
}

// -----

// Tests that a zero fill of a C that may alias an input (both function arguments) stays:
// if %a were %c, the matmul would read the zeros.
// CHECK-LABEL: func.func @may_alias_input
// CHECK: linalg.fill
// CHECK: %[[ONE:.+]] = arith.constant 1 : i32
// CHECK: call @lrt_matmul_f32(%{{.+}}, %{{.+}}, %[[ONE]],
func.func @may_alias_input(%a: memref<3x3xf32>, %b: memref<3x3xf32>, %c: memref<3x3xf32>) {
  %zero = arith.constant 0.0 : f32
  linalg.fill ins(%zero : f32) outs(%c : memref<3x3xf32>)
  linalg.matmul ins(%a, %b : memref<3x3xf32>, memref<3x3xf32>) outs(%c : memref<3x3xf32>)
  return
}

// -----

// Tests that a matmul whose B alone is bf16 (a frozen base weight stored in bf16 by
// llmp-bf16-base) calls lrt_matmul_bf16_b with B cast to a dynamic bf16 memref, in any
// module (no llmp.precision needed), and overwrites its zero-filled C.
// CHECK-LABEL: func.func @stored_bf16_b
// CHECK-SAME: (%[[A:.+]]: memref<3x4xf32>, %[[B:.+]]: memref<5x4xbf16>)
// CHECK-NOT: linalg.fill
// CHECK-DAG: %[[F:.+]] = arith.constant 0 : i32
// CHECK-DAG: %[[T:.+]] = arith.constant 1 : i32
// CHECK: %[[CB:.+]] = memref.cast %[[B]] : memref<5x4xbf16> to memref<?x?xbf16, strided<[?, ?], offset: ?>>
// CHECK: call @lrt_matmul_bf16_b(%[[F]], %[[T]], %{{.+}}, %{{.+}}, %[[CB]], %{{.+}})
// CHECK: func.func private @lrt_matmul_bf16_b(i32, i32, i32, memref<?x?xf32, strided<[?, ?], offset: ?>>, memref<?x?xbf16, strided<[?, ?], offset: ?>>, memref<?x?xf32, strided<[?, ?], offset: ?>>) attributes {llvm.emit_c_interface}
func.func @stored_bf16_b(%a: memref<3x4xf32>, %b: memref<5x4xbf16>) -> memref<3x5xf32> {
  %zero = arith.constant 0.0 : f32
  %c = memref.alloc() : memref<3x5xf32>
  linalg.fill ins(%zero : f32) outs(%c : memref<3x5xf32>)
  linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>, affine_map<(m, n, k) -> (n, k)>, affine_map<(m, n, k) -> (m, n)>]
    ins(%a, %b : memref<3x4xf32>, memref<5x4xbf16>) outs(%c : memref<3x5xf32>)
  return %c : memref<3x5xf32>
}

// -----

// Tests that in a `precision: bf16` module (llmp.precision) a 2-D product calls
// lrt_matmul_bf16 and a batched one (attention's) lrt_batch_matmul_bf16, with the same
// transposes and overwrite rule as the fp32 calls.
// CHECK-LABEL: func.func @bf16_module
// CHECK: call @lrt_matmul_bf16(%{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}) : (i32, i32, i32, memref<?x?xf32, strided<[?, ?], offset: ?>>
// CHECK: call @lrt_batch_matmul_bf16(%{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}) : (i32, i32, i32, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
// CHECK-NOT: call @lrt_batch_matmul_f32
// CHECK: func.func private @lrt_matmul_bf16(
// CHECK: func.func private @lrt_batch_matmul_bf16(i32, i32, i32, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>) attributes {llvm.emit_c_interface}
module attributes {llmp.precision = "bf16"} {
  func.func @bf16_module(%a: memref<3x4xf32>, %b: memref<4x5xf32>, %c: memref<3x5xf32>,
                         %x: memref<2x3x4xf32>, %y: memref<2x4x5xf32>, %z: memref<2x3x5xf32>) {
    linalg.matmul ins(%a, %b : memref<3x4xf32>, memref<4x5xf32>) outs(%c : memref<3x5xf32>)
    linalg.batch_matmul ins(%x, %y : memref<2x3x4xf32>, memref<2x4x5xf32>) outs(%z : memref<2x3x5xf32>)
    return
  }
}
