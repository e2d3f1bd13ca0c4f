// RUN: llmp-opt %s --split-input-file --llmp-step-heap-peak="rows=4" | FileCheck %s

// The step heap's peak per function, computed by hand with lrt_alloc's rounding (numel x
// element bytes up to a multiple of 64, or of the alloc's alignment when larger).

// Straight line: a = 100 x f32 = 400 -> 448 bytes, b = 16 x f32 = 64; both live: 512.
// After freeing a, c = 8 x i8 -> 64: 128 live, below the peak.
// CHECK-LABEL: module attributes {llmp.step_heap_peak = {f = 512 : i64}}
module {
  func.func @f() {
    %a = memref.alloc() : memref<100xf32>
    %b = memref.alloc() : memref<16xf32>
    memref.dealloc %a : memref<100xf32>
    %c = memref.alloc() : memref<8xi8>
    memref.dealloc %b : memref<16xf32>
    memref.dealloc %c : memref<8xi8>
    return
  }
}

// -----

// A loop body allocating and freeing 1024 bytes counts once whatever the trip count; the
// 4096-byte buffer outside stays live around it: 4096 + 1024. A dynamic dimension is
// `rows` = 4: ?x32 f32 = 4 x 32 x 4 = 512 bytes, allocated after both are freed.
// An alloc with an alignment asks for alignment - 1 bytes more (finalize-memref-to-llvm
// aligns the pointer itself): 10 x f32 with alignment 256 = 40 + 255 -> 320 bytes.
// CHECK-LABEL: module attributes {llmp.step_heap_peak = {g = 5120 : i64, h = 832 : i64}}
module {
  func.func @g(%n: index) {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %big = memref.alloc() : memref<1024xf32>
    scf.for %i = %c0 to %n step %c1 {
      %t = memref.alloc() : memref<256xf32>
      memref.dealloc %t : memref<256xf32>
    }
    memref.dealloc %big : memref<1024xf32>
    %d = memref.alloc(%n) : memref<?x32xf32>
    memref.dealloc %d : memref<?x32xf32>
    return
  }
  // A view's dealloc frees its allocation; scf.if takes its larger branch (512 bytes):
  // 320 + 512.
  func.func @h(%p: i1) {
    %a = memref.alloc() {alignment = 256 : i64} : memref<10xf32>
    %v = memref.cast %a : memref<10xf32> to memref<?xf32>
    scf.if %p {
      %x = memref.alloc() : memref<128xf32>
      memref.dealloc %x : memref<128xf32>
    } else {
      %y = memref.alloc() : memref<16xf32>
      memref.dealloc %y : memref<16xf32>
    }
    memref.dealloc %v : memref<?xf32>
    return
  }
}

// -----

// A call: the callee's own peak (2048) on top of the caller's live 64 bytes; the buffer it
// returns (1024) stays live in the caller until freed, under the next alloc (64): peak
// max(64 + 2048, 64 + 1024 + 64) = 2112. The private callee gets no entry.
// CHECK-LABEL: module attributes {llmp.step_heap_peak = {caller = 2112 : i64}}
module {
  func.func private @callee() -> memref<256xf32> {
    %tmp = memref.alloc() : memref<256xf32>
    %out = memref.alloc() : memref<256xf32>
    memref.dealloc %tmp : memref<256xf32>
    return %out : memref<256xf32>
  }
  func.func @caller() {
    %a = memref.alloc() : memref<16xf32>
    %r = func.call @callee() : () -> memref<256xf32>
    %b = memref.alloc() : memref<16xf32>
    memref.dealloc %r : memref<256xf32>
    memref.dealloc %b : memref<16xf32>
    memref.dealloc %a : memref<16xf32>
    return
  }
}

// -----

// A matmul whose B is bf16 already (llmp-bf16-base; lrt_matmul_bf16_b), in any module:
// wide (every dimension >= 64) it holds op(A)'s bf16 copy, 2 MK bytes; narrow, B widened
// to fp32, 4 KN bytes. wide: C 64 x 64 f32 = 16384 bytes, A's copy 2 x 64 x 128 = 16384:
// 32768. narrow: C 3 x 5 f32 = 60 -> 64, B widened 4 x 4 x 5 = 80 -> 128: 192.
// CHECK-LABEL: module attributes {llmp.step_heap_peak = {narrow = 192 : i64, wide = 32768 : i64}}
module {
  func.func @wide(%a: memref<64x128xf32>, %b: memref<128x64xbf16>) {
    %c = memref.alloc() : memref<64x64xf32>
    linalg.matmul ins(%a, %b : memref<64x128xf32>, memref<128x64xbf16>) outs(%c : memref<64x64xf32>)
    memref.dealloc %c : memref<64x64xf32>
    return
  }
  func.func @narrow(%a: memref<3x4xf32>, %b: memref<4x5xbf16>) {
    %c = memref.alloc() : memref<3x5xf32>
    linalg.matmul ins(%a, %b : memref<3x4xf32>, memref<4x5xbf16>) outs(%c : memref<3x5xf32>)
    memref.dealloc %c : memref<3x5xf32>
    return
  }
}

// -----

// Batched products in a bf16 module (lrt_batch_matmul_bf16): a wide one (every one of M, N,
// K >= 64) holds bf16 copies of the whole op(A) and op(B), 2 Bt MK + 2 Bt KN bytes; a
// narrow one (K = 16) runs the fp32 kernel and takes none. wide: C 2 x 64 x 64 f32 =
// 32768 bytes, A's copy 2 x 2 x 64 x 128 = 32768, B's 2 x 2 x 128 x 64 = 32768: 98304.
// narrow: C 2 x 64 x 64 f32 = 32768.
// CHECK-LABEL: module attributes {llmp.precision = "bf16", llmp.step_heap_peak = {narrow = 32768 : i64, wide = 98304 : i64}}
module attributes {llmp.precision = "bf16"} {
  func.func @wide(%a: memref<2x64x128xf32>, %b: memref<2x128x64xf32>) {
    %c = memref.alloc() : memref<2x64x64xf32>
    linalg.batch_matmul ins(%a, %b : memref<2x64x128xf32>, memref<2x128x64xf32>) outs(%c : memref<2x64x64xf32>)
    memref.dealloc %c : memref<2x64x64xf32>
    return
  }
  func.func @narrow(%a: memref<2x64x16xf32>, %b: memref<2x16x64xf32>) {
    %c = memref.alloc() : memref<2x64x64xf32>
    linalg.batch_matmul ins(%a, %b : memref<2x64x16xf32>, memref<2x16x64xf32>) outs(%c : memref<2x64x64xf32>)
    memref.dealloc %c : memref<2x64x64xf32>
    return
  }
}
