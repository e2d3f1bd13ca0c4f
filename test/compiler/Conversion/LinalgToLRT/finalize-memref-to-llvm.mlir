// RUN: llmp-opt %s --split-input-file --llmp-finalize-memref-to-llvm | FileCheck %s

// Tests the static arena's views: %a = bytes [0, 4096), %b = [4096, 8192) (1024 f32 each
// from byte shifts 0 and 4096) are disjoint, so the copy a -> b gets one scope each and
// each access names the other's as noalias; %c = [2048, 6144) overlaps both, so its load
// gets a scope of its own but no noalias claim, and %b's accesses claim only %a's scope.
// CHECK-DAG: #[[DOM:.+]] = #llvm.alias_scope_domain<id = distinct[{{.*}}]<>, description = "llmp.omp.parallel">
// CHECK-DAG: #[[A:alias_scope[0-9]*]] = #llvm.alias_scope<id = distinct[{{.*}}]<>, domain = #[[DOM]]>
// CHECK-DAG: #[[B:alias_scope[0-9]*]] = #llvm.alias_scope<id = distinct[{{.*}}]<>, domain = #[[DOM]]>
// CHECK-DAG: #[[C:alias_scope[0-9]*]] = #llvm.alias_scope<id = distinct[{{.*}}]<>, domain = #[[DOM]]>
// CHECK-LABEL: func.func @arena
// CHECK: omp.parallel
// CHECK: %[[X:.+]] = llvm.load %{{.+}} {alias_scopes = [#[[A]]], noalias_scopes = [#[[B]]]} : !llvm.ptr -> f32
// CHECK: llvm.store %[[X]], %{{.+}} {alias_scopes = [#[[B]]], noalias_scopes = [#[[A]]]} : f32, !llvm.ptr
// CHECK: %[[Y:.+]] = llvm.load %{{.+}} {alias_scopes = [#[[C]]]} : !llvm.ptr -> f32
// CHECK: llvm.store %[[Y]], %{{.+}} {alias_scopes = [#[[B]]], noalias_scopes = [#[[A]]]} : f32, !llvm.ptr
// Outside the OpenMP region: no scopes.
// CHECK: omp.terminator
// CHECK: %[[Z:.+]] = llvm.load %{{[0-9]+}} : !llvm.ptr -> f32
// CHECK: llvm.store %[[Z]], %{{[0-9]+}} : f32, !llvm.ptr
func.func @arena(%i: index) {
  %c0 = arith.constant 0 : index
  %c4096 = arith.constant 4096 : index
  %c2048 = arith.constant 2048 : index
  %arena = memref.alloc() : memref<8192xi8>
  %a = memref.view %arena[%c0][] : memref<8192xi8> to memref<1024xf32>
  %b = memref.view %arena[%c4096][] : memref<8192xi8> to memref<1024xf32>
  %c = memref.view %arena[%c2048][] : memref<8192xi8> to memref<1024xf32>
  omp.parallel {
    %x = memref.load %a[%i] : memref<1024xf32>
    memref.store %x, %b[%i] : memref<1024xf32>
    %y = memref.load %c[%i] : memref<1024xf32>
    memref.store %y, %b[%i] : memref<1024xf32>
    omp.terminator
  }
  %z = memref.load %a[%i] : memref<1024xf32>
  memref.store %z, %b[%i] : memref<1024xf32>
  return
}

// -----

// Tests roots: an allocation and a function argument are disjoint (the row-max pattern:
// a loop-invariant accumulator %acc, an argument's row %in), also through a subview of
// the argument; two function arguments are never claimed apart (the runtime may pass
// one buffer twice), so the copy %in -> %out gets no scopes.
// CHECK-LABEL: func.func @roots
// CHECK: omp.parallel
// CHECK: llvm.load %{{.+}} {alias_scopes = [#[[IN:alias_scope[0-9]*]]], noalias_scopes = [#[[ACC:alias_scope[0-9]*]]]} : !llvm.ptr -> f32
// CHECK: llvm.load %{{.+}} {alias_scopes = [#[[ACC]]], noalias_scopes = [#[[IN]]]} : !llvm.ptr -> f32
// CHECK: llvm.store %{{.+}}, %{{.+}} {alias_scopes = [#[[ACC]]], noalias_scopes = [#[[IN]]]} : f32, !llvm.ptr
// CHECK: omp.terminator
// CHECK: omp.parallel
// CHECK: %[[V:.+]] = llvm.load %{{[0-9]+}} : !llvm.ptr -> f32
// CHECK: llvm.store %[[V]], %{{[0-9]+}} : f32, !llvm.ptr
// CHECK: omp.terminator
func.func @roots(%in: memref<8x128xf32>, %out: memref<8x128xf32>, %r: index, %j: index) {
  %acc = memref.alloc() : memref<8xf32>
  omp.parallel {
    %row = memref.subview %in[%r, 0] [1, 128] [1, 1]
        : memref<8x128xf32> to memref<128xf32, strided<[1], offset: ?>>
    %x = memref.load %row[%j] : memref<128xf32, strided<[1], offset: ?>>
    %m = memref.load %acc[%r] : memref<8xf32>
    %n = arith.maxnumf %m, %x : f32
    memref.store %n, %acc[%r] : memref<8xf32>
    omp.terminator
  }
  omp.parallel {
    %v = memref.load %in[%r, %j] : memref<8x128xf32>
    memref.store %v, %out[%r, %j] : memref<8x128xf32>
    omp.terminator
  }
  return
}

// -----

// Tests that an allocation made inside the region (a fresh buffer per iteration, which
// may reuse another's freed memory) and a view at an unknown byte shift get no claim.
// CHECK-LABEL: func.func @unknown
// CHECK-NOT: alias_scopes
// CHECK: return
func.func @unknown(%arena: memref<8192xi8>, %shift: index, %i: index) {
  %c0 = arith.constant 0 : index
  %a = memref.view %arena[%c0][] : memref<8192xi8> to memref<1024xf32>
  %b = memref.view %arena[%shift][] : memref<8192xi8> to memref<1024xf32>
  omp.parallel {
    %t = memref.alloc() : memref<1024xf32>
    %x = memref.load %a[%i] : memref<1024xf32>
    memref.store %x, %b[%i] : memref<1024xf32>
    memref.store %x, %t[%i] : memref<1024xf32>
    memref.dealloc %t : memref<1024xf32>
    omp.terminator
  }
  return
}
