// RUN: llmp-opt %s --split-input-file --llmp-lower-to-linalg | FileCheck %s

// Tests that matmul {transpose_b} becomes a zero-filled linalg.matmul with transposed maps.
// CHECK-DAG: #[[A:.+]] = affine_map<(d0, d1, d2) -> (d0, d2)>
// CHECK-DAG: #[[B:.+]] = affine_map<(d0, d1, d2) -> (d1, d2)>
// CHECK-DAG: #[[C:.+]] = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-LABEL: func.func @matmul
// CHECK: %[[F:.+]] = linalg.fill
// CHECK: linalg.matmul indexing_maps = [#[[A]], #[[B]], #[[C]]] ins(%{{.+}}, %{{.+}} : tensor<3x4xf32>, tensor<5x4xf32>) outs(%[[F]] : tensor<3x5xf32>)
func.func @matmul(%a: tensor<3x4xf32>, %b: tensor<5x4xf32>) -> tensor<3x5xf32> {
  %y = llmp.matmul %a, %b {transpose_b} : (tensor<3x4xf32>, tensor<5x4xf32>) -> tensor<3x5xf32>
  return %y : tensor<3x5xf32>
}

// -----

// Tests that embedding_grad is a scatter-add loop nest of tensor.insert.
// CHECK-LABEL: func.func @embedding_grad
// CHECK: scf.for
// CHECK: scf.for
// CHECK: %[[ID:.+]] = tensor.extract %{{.+}} : tensor<2x3xi32>
// CHECK: %[[ROW:.+]] = arith.index_cast %[[ID]] : i32 to index
// CHECK: scf.for
// CHECK: %[[OLD:.+]] = tensor.extract %{{.+}}[%[[ROW]], %{{.+}}] : tensor<7x4xf32>
// CHECK: %[[NEW:.+]] = arith.addf %[[OLD]]
// CHECK: tensor.insert %[[NEW]] into %{{.+}}[%[[ROW]], %{{.+}}]
func.func @embedding_grad(%i: tensor<2x3xi32>, %dy: tensor<2x3x4xf32>) -> tensor<7x4xf32> {
  %y = llmp.embedding_grad %i, %dy {vocab = 7 : i64} : (tensor<2x3xi32>, tensor<2x3x4xf32>) -> tensor<7x4xf32>
  return %y : tensor<7x4xf32>
}

// -----

// Tests that attention splits heads, runs batch matmuls and a masked softmax.
// CHECK-LABEL: func.func @attention
// CHECK: tensor.expand_shape %{{.+}} {{\[\[}}0], [1], [2, 3]] output_shape [2, 3, 2, 4]
// CHECK: linalg.transpose
// CHECK: tensor.collapse_shape %{{.+}} {{\[\[}}0, 1], [2], [3]] : tensor<2x2x3x4xf32> into tensor<4x3x4xf32>
// CHECK: linalg.batch_matmul
// CHECK: arith.cmpi ugt
// CHECK: arith.maximumf
// CHECK: math.exp
// CHECK: arith.divf
// CHECK: linalg.batch_matmul
// CHECK: tensor.collapse_shape %{{.+}} {{\[\[}}0], [1], [2, 3]] : tensor<2x3x2x4xf32> into tensor<2x3x8xf32>
func.func @attention(%q: tensor<2x3x8xf32>) -> tensor<2x3x8xf32> {
  %y = llmp.attention %q, %q, %q {heads = 2 : i64, causal} : (tensor<2x3x8xf32>, tensor<2x3x8xf32>, tensor<2x3x8xf32>) -> tensor<2x3x8xf32>
  return %y : tensor<2x3x8xf32>
}

// -----

// Tests that cross_entropy is max and sum-exp reductions plus a gather of the target logit.
// CHECK-LABEL: func.func @cross_entropy
// CHECK: linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "reduction"]
// CHECK: arith.maximumf
// CHECK: linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "reduction"]
// CHECK: math.exp
// CHECK: linalg.generic
// CHECK: tensor.extract %{{.+}}[%{{.+}}, %{{.+}}, %{{.+}}] : tensor<2x3x7xf32>
// CHECK: math.log
func.func @cross_entropy(%l: tensor<2x3x7xf32>, %t: tensor<2x3xi32>) -> tensor<2x3xf32> {
  %y = llmp.cross_entropy %l, %t : (tensor<2x3x7xf32>, tensor<2x3xi32>) -> tensor<2x3xf32>
  return %y : tensor<2x3xf32>
}

// -----

// Tests that reshape goes through a flat tensor and mean is a full reduction then a scale.
// CHECK-LABEL: func.func @reshape_mean
// CHECK: tensor.collapse_shape %{{.+}} {{\[\[}}0, 1, 2]] : tensor<2x3x4xf32> into tensor<24xf32>
// CHECK: tensor.expand_shape %{{.+}} {{\[\[}}0, 1]] output_shape [6, 4]
// CHECK: linalg.generic {{.*}}iterator_types = ["reduction", "reduction"]
// CHECK: arith.constant 0.0416666679 : f32
func.func @reshape_mean(%x: tensor<2x3x4xf32>) -> tensor<f32> {
  %r = llmp.reshape %x : (tensor<2x3x4xf32>) -> tensor<6x4xf32>
  %m = llmp.mean %r : (tensor<6x4xf32>) -> tensor<f32>
  return %m : tensor<f32>
}

// -----

// Tests that rope evaluates cos and sin once per (position, head dim) in (T, hd) tables and
// the per-element generic only reads them.
// CHECK-LABEL: func.func @rope
// CHECK: %[[COS:.+]] = linalg.generic {{.+}} outs(%{{.+}} : tensor<3x4xf32>)
// CHECK: math.cos
// CHECK: %[[SIN:.+]] = linalg.generic {{.+}} outs(%{{.+}} : tensor<3x4xf32>)
// CHECK: math.sin
// CHECK: linalg.generic {{.+}} ins(%{{.+}} : tensor<2x3x8xf32>) outs(%{{.+}} : tensor<2x3x8xf32>)
// CHECK-NOT: math.sin
// CHECK-NOT: math.cos
// CHECK-DAG: tensor.extract %[[COS]]
// CHECK-DAG: tensor.extract %[[SIN]]
// CHECK: linalg.yield
func.func @rope(%x: tensor<2x3x8xf32>) -> tensor<2x3x8xf32> {
  %y = llmp.rope %x {heads = 2 : i64, theta = 1.0e+01 : f32} : (tensor<2x3x8xf32>) -> tensor<2x3x8xf32>
  return %y : tensor<2x3x8xf32>
}
