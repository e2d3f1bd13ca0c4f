// RUN: llmp-opt %s --split-input-file --llmp-lower-to-linalg | FileCheck %s

// Tests that a decode cache write transposes the keys to the cache's (B, KV, T, d) layout
// and inserts each row at [layer, b, 0, clamp(start[b], 0, C - T), 0], and that attention
// over the cache takes layer 1's keys, scores the grouped queries against the first
// N = min(C, roundup(max_b start[b] + T, 16)) of the C = 64 positions only (a dynamic
// size, e.g. start = [5, 20] and T = 1 give N = roundup(21, 16) = 32; later positions lie
// after every row's query, so they are masked for all rows), masks position j of batch b
// where j > start[b] + i, and multiplies the (B*KV, G*T, N) probabilities by the first N
// values.
// CHECK-LABEL: func.func @decode
// CHECK-SAME: (%[[KC:.+]]: tensor<2x2x2x64x4xf32>, %[[K:.+]]: tensor<2x1x8xf32>, %[[Q:.+]]: tensor<2x1x16xf32>, %[[POS:.+]]: tensor<2xi32>)
// CHECK: %[[KT:.+]] = linalg.transpose ins(%{{.+}} : tensor<2x1x2x4xf32>) outs(%{{.+}} : tensor<2x2x1x4xf32>) permutation = [0, 2, 1, 3]
// CHECK: %[[W:.+]] = scf.for %[[B:.+]] = %{{.+}} to %{{.+}} step %{{.+}} iter_args(%[[ACC:.+]] = %[[KC]])
// CHECK: %[[S:.+]] = tensor.extract %[[POS]][%[[B]]]
// CHECK: %[[SI:.+]] = arith.index_cast %[[S]]
// CHECK: %[[LO:.+]] = arith.maxsi %[[SI]], %{{.+}}
// CHECK: %[[AT:.+]] = arith.minsi %[[LO]], %{{.+}}
// CHECK: %[[ROW:.+]] = tensor.extract_slice %[[KT]][%[[B]], 0, 0, 0] [1, 2, 1, 4]
// CHECK: %[[ROW5:.+]] = tensor.expand_shape %[[ROW]]
// CHECK: tensor.insert_slice %[[ROW5]] into %[[ACC]][1, %[[B]], 0, %[[AT]], 0] [1, 1, 2, 1, 4]
// CHECK: %[[MAX:.+]] = scf.for %[[B2:.+]] = %{{.+}} to %{{.+}} step %{{.+}} iter_args(%[[M:.+]] = %{{.+}}) -> (index)
// CHECK: %[[S2:.+]] = tensor.extract %[[POS]][%[[B2]]]
// CHECK: %[[S2I:.+]] = arith.index_cast %[[S2]]
// CHECK: %[[M2:.+]] = arith.maxsi %[[M]], %[[S2I]]
// CHECK: scf.yield %[[M2]] : index
// CHECK: %[[C16:.+]] = arith.constant 16 : index
// CHECK: %[[END:.+]] = arith.addi %[[MAX]], %[[C16]]
// CHECK: %[[Q16:.+]] = arith.divui %[[END]], %{{.+}}
// CHECK: %[[R16:.+]] = arith.muli %[[Q16]], %{{.+}}
// CHECK: %[[C64:.+]] = arith.constant 64 : index
// CHECK: %[[N:.+]] = arith.minsi %[[R16]], %[[C64]]
// CHECK: %[[L1:.+]] = tensor.extract_slice %[[W]][1, 0, 0, 0, 0] [1, 2, 2, %[[N]], 4]
// CHECK: %[[KEYS:.+]] = tensor.collapse_shape %[[L1]] {{\[\[}}0, 1, 2], [3], [4]] : tensor<1x2x2x?x4xf32> into tensor<4x?x4xf32>
// CHECK: %[[SE:.+]] = tensor.empty(%[[N]]) : tensor<4x2x?xf32>
// CHECK: %[[SZ:.+]] = linalg.fill ins(%{{.+}} : f32) outs(%[[SE]] : tensor<4x2x?xf32>)
// CHECK: linalg.batch_matmul {{.*}} ins(%{{.+}}, %[[KEYS]] : tensor<4x2x4xf32>, tensor<4x?x4xf32>) outs(%[[SZ]] : tensor<4x2x?xf32>)
// CHECK: linalg.generic
// CHECK: %[[J:.+]] = linalg.index 2 : index
// CHECK: %[[ST:.+]] = tensor.extract %[[POS]][%{{.+}}] : tensor<2xi32>
// CHECK: %[[STI:.+]] = arith.index_cast %[[ST]]
// CHECK: %[[I:.+]] = arith.addi %{{.+}}, %[[STI]] : index
// CHECK: arith.cmpi ugt, %[[J]], %[[I]] : index
// CHECK: %[[PE:.+]] = tensor.empty(%[[N]]) : tensor<4x2x?xf32>
// CHECK: %[[P:.+]] = linalg.generic {{.*}} outs(%[[PE]] : tensor<4x2x?xf32>)
// CHECK: %[[V1:.+]] = tensor.extract_slice %[[W]][1, 0, 0, 0, 0] [1, 2, 2, %[[N]], 4]
// CHECK: %[[VALS:.+]] = tensor.collapse_shape %[[V1]] {{\[\[}}0, 1, 2], [3], [4]] : tensor<1x2x2x?x4xf32> into tensor<4x?x4xf32>
// CHECK: linalg.batch_matmul ins(%[[P]], %[[VALS]] : tensor<4x2x?xf32>, tensor<4x?x4xf32>) outs(%{{.+}} : tensor<4x2x4xf32>)
func.func @decode(%kc: tensor<2x2x2x64x4xf32>, %k: tensor<2x1x8xf32>, %q: tensor<2x1x16xf32>, %pos: tensor<2xi32>) -> (tensor<2x1x16xf32>, tensor<2x2x2x64x4xf32>) {
  %k1 = llmp.kv_cache_write %kc, %k start %pos {layer = 1 : i64} : (tensor<2x2x2x64x4xf32>, tensor<2x1x8xf32>, tensor<2xi32>) -> tensor<2x2x2x64x4xf32>
  %o = llmp.cache_attention %q, %k1, %k1 start %pos {layer = 1 : i64, heads = 4 : i64, kv_heads = 2 : i64} : (tensor<2x1x16xf32>, tensor<2x2x2x64x4xf32>, tensor<2x2x2x64x4xf32>, tensor<2xi32>) -> tensor<2x1x16xf32>
  return %o, %k1 : tensor<2x1x16xf32>, tensor<2x2x2x64x4xf32>
}

// -----

// Tests that a prefill write (no start) inserts all rows at positions 0..T-1 at once, and
// that last_token reads row b at clamp(lengths[b], 1, T) - 1.
// CHECK-LABEL: func.func @prefill
// CHECK-SAME: (%[[KC:.+]]: tensor<1x2x1x16x4xf32>, %{{.+}}: tensor<2x8x4xf32>, %[[X:.+]]: tensor<2x8x64xf32>, %[[LEN:.+]]: tensor<2xi32>)
// CHECK-NOT: scf.for
// CHECK: tensor.insert_slice %{{.+}} into %[[KC]][0, 0, 0, 0, 0] [1, 2, 1, 8, 4]
// CHECK: linalg.generic {{.*}} ins(%[[LEN]] : tensor<2xi32>) outs(%{{.+}} : tensor<2x64xf32>)
// CHECK: %[[N:.+]] = arith.index_cast %{{.+}} : i32 to index
// CHECK: %[[N1:.+]] = arith.maxsi %[[N]], %{{.+}}
// CHECK: %[[N2:.+]] = arith.minsi %[[N1]], %{{.+}}
// CHECK: %[[T:.+]] = arith.subi %[[N2]], %{{.+}}
// CHECK: tensor.extract %[[X]][%{{.+}}, %[[T]], %{{.+}}] : tensor<2x8x64xf32>
func.func @prefill(%kc: tensor<1x2x1x16x4xf32>, %k: tensor<2x8x4xf32>, %logits: tensor<2x8x64xf32>,
                   %len: tensor<2xi32>) -> (tensor<1x2x1x16x4xf32>, tensor<2x64xf32>) {
  %k1 = llmp.kv_cache_write %kc, %k {layer = 0 : i64} : (tensor<1x2x1x16x4xf32>, tensor<2x8x4xf32>) -> tensor<1x2x1x16x4xf32>
  %l = llmp.last_token %logits, %len : (tensor<2x8x64xf32>, tensor<2xi32>) -> tensor<2x64xf32>
  return %k1, %l : tensor<1x2x1x16x4xf32>, tensor<2x64xf32>
}
