// RUN: llmp-opt %s --split-input-file --llmp-lower-to-linalg --canonicalize --llmp-fuse-elementwise | FileCheck %s

// Tests that matmul_nf4 becomes one zero-filled linalg.generic over (m, n, k) that reads the
// byte of W[k][n]'s code, (k * cols + n) floordiv 2, from the blob, picks the nibble
// (high for even flat indices), looks the value up in the NF4 table and scales it by the
// block's absmax (double quantization: code8[absmax code] * scale + offset), tagged for
// llmp-linalg-to-lrt; and that the elementwise producer of its input (the silu) is not
// fused into it (llmp-fuse-elementwise leaves tagged products alone).
// CHECK-DAG: #[[X:.+]] = affine_map<(d0, d1, d2) -> (d0, d2)>
// CHECK-DAG: #[[W:.+]] = affine_map<(d0, d1, d2) -> (d2 * 3 + d1 floordiv 2)>
// CHECK-DAG: #[[C:.+]] = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-LABEL: func.func @forward
// CHECK: %[[S:.+]] = linalg.generic
// CHECK: math.exp
// CHECK: %[[F:.+]] = linalg.fill
// CHECK: linalg.generic {indexing_maps = [#[[X]], #[[W]], #[[C]]], iterator_types = ["parallel", "parallel", "reduction"]}
// CHECK-SAME: ins(%[[S]], %{{.+}} : tensor<3x4xf32>, tensor<24xi8>) outs(%[[F]] : tensor<3x6xf32>)
// CHECK-SAME: attrs = {llmp.matmul_nf4 = {block = 64 : i64, cols = 6 : i64, double_quant = true, rows = 4 : i64, transpose_b = false}}
// CHECK: arith.shrui %{{.+}}, %c4_i32
// CHECK: tensor.extract %cst{{.*}} : tensor<16xf32>
// CHECK: tensor.extract %{{.+}} : tensor<256xf32>
// CHECK: arith.bitcast %{{.+}} : i32 to f32
// CHECK: arith.mulf
// CHECK: arith.addf
func.func @forward(%x: tensor<3x4xf32>, %w: tensor<24xi8>) -> tensor<3x6xf32> {
  %s = llmp.silu %x : (tensor<3x4xf32>) -> tensor<3x4xf32>
  %y = llmp.matmul_nf4 %s, %w {rows = 4 : i64, cols = 6 : i64, block = 64 : i64, double_quant} : (tensor<3x4xf32>, tensor<24xi8>) -> tensor<3x6xf32>
  return %y : tensor<3x6xf32>
}

// -----

// Tests that transpose_b swaps the roles of n and k in the blob's byte index: the loops are
// (m, r, j) for W[r][j], byte (r * cols + j) floordiv 2.
// CHECK-DAG: #[[WT:.+]] = affine_map<(d0, d1, d2) -> (d1 * 3 + d2 floordiv 2)>
// CHECK-LABEL: func.func @transposed
// CHECK: linalg.generic {indexing_maps = [#{{.+}}, #[[WT]], #{{.+}}]
// CHECK-SAME: attrs = {llmp.matmul_nf4 = {block = 64 : i64, cols = 6 : i64, double_quant = false, rows = 4 : i64, transpose_b = true}}
func.func @transposed(%x: tensor<3x6xf32>, %w: tensor<16xi8>) -> tensor<3x4xf32> {
  %y = llmp.matmul_nf4 %x, %w {rows = 4 : i64, cols = 6 : i64, block = 64 : i64, transpose_b} : (tensor<3x6xf32>, tensor<16xi8>) -> tensor<3x4xf32>
  return %y : tensor<3x4xf32>
}
