// RUN: llmp-opt %s --split-input-file --llmp-fills-to-memset | FileCheck %s

// Tests that a zero fill of a contiguous f32 buffer (1024 x 576) becomes one memset of
// its 1024 * 576 * 4 = 2,359,296 bytes from the buffer's aligned pointer.
// CHECK-LABEL: func.func @zero_fill
// CHECK-NOT: linalg.fill
// CHECK: %[[A:.+]] = memref.extract_aligned_pointer_as_index %[[BUF:.+]] : memref<1024x576xf32> -> index
// CHECK: %[[I:.+]] = arith.index_cast %[[A]] : index to i64
// CHECK: %[[P:.+]] = llvm.inttoptr %[[I]] : i64 to !llvm.ptr
// CHECK-DAG: %[[Z:.+]] = arith.constant 0 : i8
// CHECK-DAG: %[[N:.+]] = arith.constant 2359296 : i64
// CHECK: "llvm.intr.memset"(%[[P]], %[[Z]], %[[N]]) <{isVolatile = false}>
// CHECK: call @use(%[[BUF]])
func.func private @use(memref<1024x576xf32>)
func.func @zero_fill() {
  %cst = arith.constant 0.0 : f32
  %buf = memref.alloc() : memref<1024x576xf32>
  linalg.fill ins(%cst : f32) outs(%buf : memref<1024x576xf32>)
  call @use(%buf) : (memref<1024x576xf32>) -> ()
  return
}

// -----

// Tests that fills that are not all-zero bytes (a max's -inf init, -0.0) or not one
// contiguous run (a strided view of every other row) stay linalg.fill.
// CHECK-LABEL: func.func @kept_fills
// CHECK-NOT: llvm.intr.memset
// CHECK-COUNT-3: linalg.fill
// CHECK-NOT: llvm.intr.memset
func.func @kept_fills(%m: memref<8x16xf32>, %n: memref<4x16xf32, strided<[32, 1]>>) {
  %ninf = arith.constant 0xFF800000 : f32
  %nzero = arith.constant -0.0 : f32
  %zero = arith.constant 0.0 : f32
  linalg.fill ins(%ninf : f32) outs(%m : memref<8x16xf32>)
  linalg.fill ins(%nzero : f32) outs(%m : memref<8x16xf32>)
  linalg.fill ins(%zero : f32) outs(%n : memref<4x16xf32, strided<[32, 1]>>)
  return
}

// -----

// Tests that a zero fill of an i32 buffer (integer zero) becomes a memset too (64 * 4
// bytes).
// CHECK-LABEL: func.func @zero_i32
// CHECK: arith.constant 256 : i64
// CHECK: "llvm.intr.memset"
func.func @zero_i32(%m: memref<64xi32>) {
  %c0 = arith.constant 0 : i32
  linalg.fill ins(%c0 : i32) outs(%m : memref<64xi32>)
  return
}
