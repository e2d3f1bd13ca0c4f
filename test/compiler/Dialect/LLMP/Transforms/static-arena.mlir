// RUN: llmp-opt %s --split-input-file --llmp-static-arena | FileCheck %s
// RUN: llmp-opt %s --split-input-file --llmp-static-arena --llmp-step-heap-peak \
// RUN:   | FileCheck %s --check-prefix=HEAP

// Three buffers, placed by hand with greedy by size. Positions in the entry block (one per
// op): %zero 0, %a 1, %b 2, fill a 3, dealloc a 4, fill b 5, %c 6, dealloc b 7, fill c 8,
// dealloc c 9, so a = 256 x f32 = 1024 bytes live [1, 4], b = 128 x f32 = 512 bytes live
// [2, 7], c = 16 x 16 x f32 = 1024 bytes live [6, 9]. Largest first, ties by start: a at 0;
// c at 0 (its interval misses a's: c reuses a's bytes); b meets both a and c, which hold
// [0, 1024), so b at 1024. Arena: the largest end, max(0 + 1024, 0 + 1024, 1024 + 512) =
// 1536 bytes (freed at last use on the heap: a + b = b + c = 1536 live at most, the same;
// without reuse 2560).
// CHECK-LABEL: module attributes {llmp.step_arena_buffers = {plan = 3 : i64}, llmp.step_arena_bytes = {plan = 1536 : i64}, llmp.step_arena_live_peak = {plan = 1536 : i64}}
// CHECK-LABEL: func.func @plan
// CHECK-NEXT: %[[ARENA:.+]] = memref.alloc() {alignment = 64 : i64, llmp.arena} : memref<1536xi8>
// CHECK-NEXT: arith.constant 0.0
// CHECK-NEXT: %[[OA:.+]] = arith.constant 0 : index
// CHECK-NEXT: %[[A:.+]] = memref.view %[[ARENA]][%[[OA]]][] : memref<1536xi8> to memref<256xf32>
// CHECK-NEXT: %[[OB:.+]] = arith.constant 1024 : index
// CHECK-NEXT: %[[B:.+]] = memref.view %[[ARENA]][%[[OB]]][] : memref<1536xi8> to memref<128xf32>
// CHECK-NEXT: linalg.fill {{.*}} outs(%[[A]] :
// CHECK-NEXT: linalg.fill {{.*}} outs(%[[B]] :
// CHECK-NEXT: %[[OC:.+]] = arith.constant 0 : index
// CHECK-NEXT: %[[C:.+]] = memref.view %[[ARENA]][%[[OC]]][] : memref<1536xi8> to memref<16x16xf32>
// CHECK-NEXT: linalg.fill {{.*}} outs(%[[C]] :
// CHECK-NEXT: memref.dealloc %[[ARENA]] : memref<1536xi8>
// CHECK-NEXT: return
// The heap then holds only the arena: 1536 + 63 (alignment 64, which
// finalize-memref-to-llvm adds) rounded up to 64 = 1600 bytes.
// HEAP-LABEL: module attributes {llmp.step_arena_buffers = {plan = 3 : i64}, llmp.step_arena_bytes = {plan = 1536 : i64}, llmp.step_arena_live_peak = {plan = 1536 : i64}, llmp.step_heap_peak = {plan = 1600 : i64}}
module {
  func.func @plan() {
    %zero = arith.constant 0.0 : f32
    %a = memref.alloc() : memref<256xf32>
    %b = memref.alloc() : memref<128xf32>
    linalg.fill ins(%zero : f32) outs(%a : memref<256xf32>)
    memref.dealloc %a : memref<256xf32>
    linalg.fill ins(%zero : f32) outs(%b : memref<128xf32>)
    %c = memref.alloc() : memref<16x16xf32>
    memref.dealloc %b : memref<128xf32>
    linalg.fill ins(%zero : f32) outs(%c : memref<16x16xf32>)
    memref.dealloc %c : memref<16x16xf32>
    return
  }
}

// -----

// Sizes rounded as lrt_alloc rounds them, and a gap reused: x = 10 x f32 = 40 -> 64
// bytes live [0, 4], y = 64 x f32 = 256 bytes live [1, 2], z = 128 x f32 = 512 bytes live
// [3, 6], w = 96 x f32 = 384 bytes live [5, 7] (positions: %x 0, %y 1, dealloc y 2, %z 3,
// dealloc x 4, %w 5, dealloc z 6, dealloc w 7). Largest first: z at 0; w meets z: at 512;
// y meets neither z nor w: at 0; x meets y ([0, 256)) and z ([0, 512)): at 512. Arena:
// 512 + 384 = 896 bytes. Live peak: z + w = 896 at position 5. The heap holds the arena:
// 896 + 63 rounded up to 64 = 960.
// CHECK-LABEL: module attributes {llmp.step_arena_buffers = {frag = 4 : i64}, llmp.step_arena_bytes = {frag = 896 : i64}, llmp.step_arena_live_peak = {frag = 896 : i64}}
// CHECK-LABEL: func.func @frag
// CHECK: memref.alloc() {alignment = 64 : i64, llmp.arena} : memref<896xi8>
// CHECK-NEXT: %[[OX:.+]] = arith.constant 512 : index
// CHECK-NEXT: memref.view %{{.+}}[%[[OX]]][] : memref<896xi8> to memref<10xf32>
// CHECK-NEXT: %[[OY:.+]] = arith.constant 0 : index
// CHECK-NEXT: memref.view %{{.+}}[%[[OY]]][] : memref<896xi8> to memref<64xf32>
// CHECK-NEXT: %[[OZ:.+]] = arith.constant 0 : index
// CHECK-NEXT: memref.view %{{.+}}[%[[OZ]]][] : memref<896xi8> to memref<128xf32>
// CHECK-NEXT: %[[OW:.+]] = arith.constant 512 : index
// CHECK-NEXT: memref.view %{{.+}}[%[[OW]]][] : memref<896xi8> to memref<96xf32>
// CHECK-NEXT: memref.dealloc %{{.+}} : memref<896xi8>
// CHECK-NEXT: return
// HEAP: llmp.step_heap_peak = {frag = 960 : i64}
module {
  func.func @frag() {
    %x = memref.alloc() : memref<10xf32>
    %y = memref.alloc() : memref<64xf32>
    memref.dealloc %y : memref<64xf32>
    %z = memref.alloc() : memref<128xf32>
    memref.dealloc %x : memref<10xf32>
    %w = memref.alloc() : memref<96xf32>
    memref.dealloc %z : memref<128xf32>
    memref.dealloc %w : memref<96xf32>
    return
  }
}

// -----

// What stays on the heap: a dynamic shape, a buffer returned from the function (no
// dealloc), one passed to a call (it may escape: llmp-dealloc-at-last-use's rule), one
// freed inside a loop, and an alloc in a loop body. Only %s (64 bytes) is planned.
// A private function is not a step function: no entry, no arena.
// CHECK-LABEL: module attributes {llmp.step_arena_buffers = {stay = 1 : i64}, llmp.step_arena_bytes = {stay = 64 : i64}, llmp.step_arena_live_peak = {stay = 64 : i64}}
// CHECK-LABEL: func.func private @helper
// CHECK-NEXT: memref.alloc() : memref<4xf32>
// CHECK-LABEL: func.func @stay
// CHECK-NEXT: %[[ARENA:.+]] = memref.alloc() {alignment = 64 : i64, llmp.arena} : memref<64xi8>
// CHECK: memref.alloc(%{{.+}}) : memref<?xf32>
// CHECK: memref.alloc() : memref<8xf32>
// CHECK: %[[E:.+]] = memref.alloc() : memref<4xf32>
// CHECK: call @use(%[[E]])
// CHECK: %[[L:.+]] = memref.alloc() : memref<2xf32>
// CHECK: scf.for
// CHECK-NEXT: memref.alloc() : memref<3xf32>
// CHECK: memref.dealloc %[[L]]
// CHECK: memref.view %[[ARENA]][%{{.+}}][] : memref<64xi8> to memref<16xf32>
// CHECK: memref.dealloc %[[E]]
// CHECK-NEXT: memref.dealloc %[[ARENA]]
// CHECK-NEXT: return
// Heap: the arena (64 + 63 -> 128) and, in the loop, the returned 8 x f32, %e, %l and the
// loop's 3 x f32 (64 bytes each; the dynamic buffer, 64 with n = rows = 1, was freed
// before): 128 + 4 x 64 = 384.
// HEAP: llmp.step_heap_peak = {stay = 384 : i64}
module {
  func.func private @use(memref<4xf32>)
  func.func private @helper() {
    %h = memref.alloc() : memref<4xf32>
    memref.dealloc %h : memref<4xf32>
    return
  }
  func.func @stay(%n: index, %p: i1) -> memref<8xf32> {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %zero = arith.constant 0.0 : f32
    %d = memref.alloc(%n) : memref<?xf32>
    memref.dealloc %d : memref<?xf32>
    %r = memref.alloc() : memref<8xf32>
    %e = memref.alloc() : memref<4xf32>
    call @use(%e) : (memref<4xf32>) -> ()
    %l = memref.alloc() : memref<2xf32>
    scf.for %i = %c0 to %n step %c1 {
      %t = memref.alloc() : memref<3xf32>
      linalg.fill ins(%zero : f32) outs(%t : memref<3xf32>)
      memref.dealloc %t : memref<3xf32>
      scf.if %p {
        memref.dealloc %l : memref<2xf32>
      }
    }
    %s = memref.alloc() : memref<16xf32>
    linalg.fill ins(%zero : f32) outs(%s : memref<16xf32>)
    memref.dealloc %s : memref<16xf32>
    memref.dealloc %e : memref<4xf32>
    return %r : memref<8xf32>
  }
}
