// RUN: llmp-opt %s --split-input-file --llmp-dealloc-at-last-use | FileCheck %s

// Tests that a dealloc at the end of the block moves to just after the buffer's last use,
// through a view (expand_shape) and a use nested in a loop.
// CHECK-LABEL: func.func @moves
// CHECK: %[[A:.+]] = memref.alloc() : memref<4xf32>
// CHECK: %[[V:.+]] = memref.expand_shape %[[A]]
// CHECK: scf.for
// CHECK: memref.load %[[V]]
// CHECK: }
// CHECK-NEXT: memref.dealloc %[[A]]
// CHECK-NEXT: %[[B:.+]] = memref.alloc() : memref<8xf32>
// CHECK: linalg.fill {{.*}} outs(%[[B]]
// CHECK-NEXT: memref.dealloc %[[B]]
// CHECK-NEXT: return
func.func @moves(%out: memref<f32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %zero = arith.constant 0.0 : f32
  %a = memref.alloc() : memref<4xf32>
  linalg.fill ins(%zero : f32) outs(%a : memref<4xf32>)
  %v = memref.expand_shape %a [[0, 1]] output_shape [2, 2] : memref<4xf32> into memref<2x2xf32>
  scf.for %i = %c0 to %c2 step %c1 {
    %x = memref.load %v[%i, %c0] : memref<2x2xf32>
    memref.store %x, %out[] : memref<f32>
  }
  %b = memref.alloc() : memref<8xf32>
  linalg.fill ins(%zero : f32) outs(%b : memref<8xf32>)
  memref.dealloc %a : memref<4xf32>
  memref.dealloc %b : memref<8xf32>
  return
}

// -----

// Tests that a buffer that may escape by a path the walk does not follow (here: passed to
// a call) keeps its dealloc where it was; an unused one is freed at once.
// CHECK-LABEL: func.func @stays
// CHECK: call @use
// CHECK-NEXT: %[[B:.+]] = memref.alloc() : memref<8xf32>
// CHECK-NEXT: memref.dealloc %[[B]]
// CHECK-NEXT: memref.dealloc %{{.+}} : memref<4xf32>
// CHECK-NEXT: return
func.func private @use(memref<4xf32>)
func.func @stays() {
  %a = memref.alloc() : memref<4xf32>
  call @use(%a) : (memref<4xf32>) -> ()
  %b = memref.alloc() : memref<8xf32>
  memref.dealloc %a : memref<4xf32>
  memref.dealloc %b : memref<8xf32>
  return
}
