// RUN: llmp-opt %s --split-input-file --llmp-duplicate-fills | FileCheck %s
// RUN: llmp-opt %s --split-input-file --llmp-duplicate-fills --one-shot-bufferize="bufferize-function-boundaries" | FileCheck %s --check-prefix=BUF
// RUN: llmp-opt %s --split-input-file --one-shot-bufferize="bufferize-function-boundaries" | FileCheck %s --check-prefix=SHARED

// Tests that two GEMMs whose init is one shared zero fill (as CSE leaves them) each get
// a fill of their own right before them, and that bufferization then copies nothing:
// without the pass it copies the shared zero buffer before the first GEMM, since the
// second one still reads it (SHARED).
// CHECK-LABEL: func.func @two_gemms
// CHECK-NOT: linalg.fill
// CHECK: %[[E1:.+]] = tensor.empty() : tensor<4x2xf32>
// CHECK: %[[F1:.+]] = linalg.fill ins(%{{.+}} : f32) outs(%[[E1]] : tensor<4x2xf32>)
// CHECK: linalg.matmul ins(%{{.+}}, %{{.+}} : tensor<4x8xf32>, tensor<8x2xf32>) outs(%[[F1]] : tensor<4x2xf32>)
// CHECK: %[[E2:.+]] = tensor.empty() : tensor<4x2xf32>
// CHECK: %[[F2:.+]] = linalg.fill ins(%{{.+}} : f32) outs(%[[E2]] : tensor<4x2xf32>)
// CHECK: linalg.matmul ins(%{{.+}}, %{{.+}} : tensor<4x8xf32>, tensor<8x2xf32>) outs(%[[F2]] : tensor<4x2xf32>)
// CHECK-NOT: linalg.fill
// BUF-LABEL: func.func @two_gemms
// BUF-NOT: memref.copy
// BUF-COUNT-2: linalg.fill
// BUF-NOT: memref.copy
// SHARED-LABEL: func.func @two_gemms
// SHARED: memref.copy
func.func @two_gemms(%a: tensor<4x8xf32>, %b: tensor<8x2xf32>, %d: tensor<8x2xf32>)
    -> (tensor<4x2xf32>, tensor<4x2xf32>) {
  %cst = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<4x2xf32>
  %z = linalg.fill ins(%cst : f32) outs(%e : tensor<4x2xf32>) -> tensor<4x2xf32>
  %c1 = linalg.matmul ins(%a, %b : tensor<4x8xf32>, tensor<8x2xf32>) outs(%z : tensor<4x2xf32>) -> tensor<4x2xf32>
  %c2 = linalg.matmul ins(%a, %d : tensor<4x8xf32>, tensor<8x2xf32>) outs(%z : tensor<4x2xf32>) -> tensor<4x2xf32>
  return %c1, %c2 : tensor<4x2xf32>, tensor<4x2xf32>
}

// -----

// Tests that a fill read as an input keeps the original fill, and only its use as an
// init gets a new one.
// CHECK-LABEL: func.func @input_and_init
// CHECK: %[[Z:.+]] = linalg.fill
// CHECK: %[[F:.+]] = linalg.fill
// CHECK: linalg.add ins(%[[Z]], %{{.+}} : tensor<16xf32>, tensor<16xf32>) outs(%[[F]] : tensor<16xf32>)
func.func @input_and_init(%x: tensor<16xf32>) -> tensor<16xf32> {
  %cst = arith.constant 1.0 : f32
  %e = tensor.empty() : tensor<16xf32>
  %z = linalg.fill ins(%cst : f32) outs(%e : tensor<16xf32>) -> tensor<16xf32>
  %r = linalg.add ins(%z, %x : tensor<16xf32>, tensor<16xf32>) outs(%z : tensor<16xf32>) -> tensor<16xf32>
  return %r : tensor<16xf32>
}
