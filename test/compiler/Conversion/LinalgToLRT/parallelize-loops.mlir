// RUN: llmp-opt %s --split-input-file --llmp-parallelize-loops | FileCheck %s
// RUN: llmp-opt %s --split-input-file --llmp-parallelize-loops=min-iterations=1 | FileCheck %s --check-prefix=ALL

// Tests that an outermost scf.parallel with enough work (64 x 1024 = 65536 >= 32768
// iterations) stays parallel and that a parallel loop nested in it becomes scf.for.
// CHECK-LABEL: func.func @outer_kept
// CHECK: scf.parallel (%[[I:.+]]) =
// CHECK-NOT: scf.parallel
// CHECK: scf.for %[[J:.+]] =
// CHECK: memref.store %{{.+}}, %{{.+}}[%[[I]], %[[J]]]
func.func @outer_kept(%m: memref<64x1024xf32>, %v: f32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c64 = arith.constant 64 : index
  %c1024 = arith.constant 1024 : index
  scf.parallel (%i) = (%c0) to (%c64) step (%c1) {
    scf.parallel (%j) = (%c0) to (%c1024) step (%c1) {
      memref.store %v, %m[%i, %j] : memref<64x1024xf32>
    }
  }
  return
}

// -----

// Tests that a parallel loop inside a sequential (reduction) loop runs sequentially:
// forking once per iteration of the enclosing loop would cost more than it shares.
// CHECK-LABEL: func.func @inside_reduction
// CHECK-NOT: scf.parallel
// CHECK: scf.for
// CHECK: scf.for
// ALL-LABEL: func.func @inside_reduction
// ALL-NOT: scf.parallel
func.func @inside_reduction(%x: memref<4096x128xf32>, %acc: memref<128xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c128 = arith.constant 128 : index
  %c4096 = arith.constant 4096 : index
  scf.for %r = %c0 to %c4096 step %c1 {
    scf.parallel (%d) = (%c0) to (%c128) step (%c1) {
      %a = memref.load %x[%r, %d] : memref<4096x128xf32>
      %b = memref.load %acc[%d] : memref<128xf32>
      %s = arith.addf %a, %b : f32
      memref.store %s, %acc[%d] : memref<128xf32>
    }
  }
  return
}

// -----

// Tests that a small outermost nest (2 x 3 x 8 = 48 iterations) runs sequentially, with its
// two parallel dimensions as two scf.for in order, unless the threshold is lowered.
// CHECK-LABEL: func.func @small
// CHECK-NOT: scf.parallel
// CHECK: scf.for %[[A:.+]] = %{{.+}} to %[[C2:.+]] step
// CHECK-NEXT: scf.for %[[B:.+]] = %{{.+}} to %[[C3:.+]] step
// CHECK-NEXT: scf.for %[[K:.+]] =
// CHECK: memref.store %{{.+}}, %{{.+}}[%[[A]], %[[B]]]
// ALL-LABEL: func.func @small
// ALL: scf.parallel
func.func @small(%x: memref<2x3x8xf32>, %y: memref<2x3xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c3 = arith.constant 3 : index
  %c8 = arith.constant 8 : index
  scf.parallel (%a, %b) = (%c0, %c0) to (%c2, %c3) step (%c1, %c1) {
    scf.for %k = %c0 to %c8 step %c1 {
      %v = memref.load %x[%a, %b, %k] : memref<2x3x8xf32>
      %o = memref.load %y[%a, %b] : memref<2x3xf32>
      %s = arith.addf %v, %o : f32
      memref.store %s, %y[%a, %b] : memref<2x3xf32>
    }
  }
  return
}

// -----

// Tests that a kept elementwise loop of several dimensions (4 x 256 x 576, no loop in its
// body) keeps its outer dimensions parallel and runs its last, contiguous one as an
// scf.for inside: convert-scf-to-openmp would otherwise collapse all three into one
// counter (omp.loop_nest collapse(3)), which LLVM's loop vectoriser does not widen
// ("cannot identify array bounds"); the inner scf.for vectorises.
// CHECK-LABEL: func.func @elementwise_inner_for
// CHECK: scf.parallel (%[[B:.+]], %[[T:.+]]) = (%{{.+}}, %{{.+}}) to (%{{.+}}, %{{.+}}) step
// CHECK-NEXT: scf.for %[[D:.+]] = %{{.+}} to %{{.+}} step
// CHECK-NOT: scf.parallel
// CHECK: memref.store %{{.+}}, %{{.+}}[%[[B]], %[[T]], %[[D]]]
func.func @elementwise_inner_for(%x: memref<4x256x576xf32>, %y: memref<4x256x576xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %c256 = arith.constant 256 : index
  %c576 = arith.constant 576 : index
  scf.parallel (%b, %t, %d) = (%c0, %c0, %c0) to (%c4, %c256, %c576) step (%c1, %c1, %c1) {
    %v = memref.load %x[%b, %t, %d] : memref<4x256x576xf32>
    %s = arith.addf %v, %v : f32
    memref.store %s, %y[%b, %t, %d] : memref<4x256x576xf32>
  }
  return
}

// -----

// Tests that a kept loop whose body holds a loop (a row reduction: the inner scf.for
// vectorises as it is) keeps all its dimensions parallel.
// CHECK-LABEL: func.func @rows_with_reduction
// CHECK: scf.parallel (%{{.+}}, %{{.+}}) =
// CHECK-NEXT: scf.for
func.func @rows_with_reduction(%x: memref<12x768x256xf32>, %y: memref<12x768xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c12 = arith.constant 12 : index
  %c256 = arith.constant 256 : index
  %c768 = arith.constant 768 : index
  scf.parallel (%h, %r) = (%c0, %c0) to (%c12, %c768) step (%c1, %c1) {
    scf.for %k = %c0 to %c256 step %c1 {
      %v = memref.load %x[%h, %r, %k] : memref<12x768x256xf32>
      %o = memref.load %y[%h, %r] : memref<12x768xf32>
      %s = arith.addf %v, %o : f32
      memref.store %s, %y[%h, %r] : memref<12x768xf32>
    }
  }
  return
}

// -----

// Tests that a kept elementwise loop whose outer dimensions run one iteration (a decode
// step's (1, 1, V) loop over the vocabulary, V = 49152) is still shared by the threads:
// its last dimension is cut into 64 parallel chunks (ceil(64 / 1) chunks of
// 49152 / 64 = 768 iterations, a multiple of 16), each an scf.for over
// [c * 768, min(c * 768 + 768, 49152)).
// CHECK-LABEL: func.func @decode_row
// CHECK-DAG: %[[V:.+]] = arith.constant 49152 : index
// CHECK-DAG: %[[C64:.+]] = arith.constant 64 : index
// CHECK: scf.parallel (%{{.+}}, %{{.+}}, %[[C:.+]]) = (%{{.+}}, %{{.+}}, %{{.+}}) to (%{{.+}}, %{{.+}}, %[[C64]])
// CHECK: %[[C768:.+]] = arith.constant 768 : index
// CHECK: %[[SPAN:.+]] = arith.muli %{{.+}}, %[[C768]] : index
// CHECK: %[[OFF:.+]] = arith.muli %[[C]], %[[SPAN]] : index
// CHECK: %[[FROM:.+]] = arith.addi %{{.+}}, %[[OFF]] : index
// CHECK: %[[END:.+]] = arith.addi %[[FROM]], %[[SPAN]] : index
// CHECK: %[[TO:.+]] = arith.minsi %[[END]], %[[V]] : index
// CHECK: scf.for %[[D:.+]] = %[[FROM]] to %[[TO]] step
// CHECK: memref.store %{{.+}}, %{{.+}}[%{{.+}}, %{{.+}}, %[[D]]]
func.func @decode_row(%x: memref<1x1x49152xf32>, %y: memref<1x1x49152xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %cv = arith.constant 49152 : index
  scf.parallel (%b, %t, %d) = (%c0, %c0, %c0) to (%c1, %c1, %cv) step (%c1, %c1, %c1) {
    %v = memref.load %x[%b, %t, %d] : memref<1x1x49152xf32>
    %s = arith.addf %v, %v : f32
    memref.store %s, %y[%b, %t, %d] : memref<1x1x49152xf32>
  }
  return
}

// -----

// Tests that a kept elementwise loop whose last dimension is shorter than
// min-inner-iterations (8 < 16: too short for a vector loop) keeps all its dimensions
// parallel (convert-scf-to-openmp collapses them).
// CHECK-LABEL: func.func @short_last_dimension
// CHECK: scf.parallel (%{{.+}}, %{{.+}}) =
// CHECK-NOT: scf.for
func.func @short_last_dimension(%x: memref<8192x8xf32>, %y: memref<8192x8xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %c8192 = arith.constant 8192 : index
  scf.parallel (%i, %j) = (%c0, %c0) to (%c8192, %c8) step (%c1, %c1) {
    %v = memref.load %x[%i, %j] : memref<8192x8xf32>
    %s = arith.addf %v, %v : f32
    memref.store %s, %y[%i, %j] : memref<8192x8xf32>
  }
  return
}
