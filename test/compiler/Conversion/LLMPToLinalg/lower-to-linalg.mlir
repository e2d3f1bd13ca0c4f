// RUN: llmp-opt %s --split-input-file --llmp-lower-to-linalg | FileCheck %s
// RUN: llmp-opt %s --split-input-file --llmp-lower-to-linalg=attention-block=2 | FileCheck %s --check-prefix=BLOCK
// RUN: llmp-opt %s --split-input-file --llmp-lower-to-linalg=causal-row-block=2 | FileCheck %s --check-prefix=ROWS

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

// Tests that attention splits heads, runs batch matmuls and a masked softmax (the masked
// row max with maxnumf, which LLVM's loop vectoriser recognises as a reduction).
// CHECK-LABEL: func.func @attention
// CHECK: tensor.expand_shape %{{.+}} {{\[\[}}0], [1], [2, 3]] output_shape [2, 3, 2, 4]
// CHECK: linalg.transpose
// CHECK: tensor.collapse_shape %{{.+}} {{\[\[}}0, 1], [2], [3]] : tensor<2x2x3x4xf32> into tensor<4x3x4xf32>
// CHECK: linalg.batch_matmul
// CHECK: arith.cmpi ugt
// CHECK: arith.maxnumf
// CHECK: math.exp
// CHECK: arith.divf
// CHECK: linalg.batch_matmul
// CHECK: tensor.collapse_shape %{{.+}} {{\[\[}}0], [1], [2, 3]] : tensor<2x3x2x4xf32> into tensor<2x3x8xf32>
func.func @attention(%q: tensor<2x3x8xf32>) -> tensor<2x3x8xf32> {
  %y = llmp.attention %q, %q, %q {heads = 2 : i64, causal} : (tensor<2x3x8xf32>, tensor<2x3x8xf32>, tensor<2x3x8xf32>) -> tensor<2x3x8xf32>
  return %y : tensor<2x3x8xf32>
}

// -----

// Tests that grouped-query attention (4 query heads, 2 key/value heads) puts the query heads
// of a group on consecutive rows, (B*KV, G*T, d) = 4x6x2, against unrepeated keys 4x3x2,
// and that the packed-sequence mask reads query i = row mod T and the segments of batch
// row n / KV.
// CHECK-LABEL: func.func @attention_gqa_segments
// CHECK-SAME: %[[S:[^:]+]]: tensor<2x3xi32>
// CHECK: tensor.collapse_shape %{{.+}} {{\[\[}}0], [1, 2], [3]] : tensor<4x2x3x2xf32> into tensor<4x6x2xf32>
// CHECK: linalg.batch_matmul {{.*}} ins(%{{.+}}, %{{.+}} : tensor<4x6x2xf32>, tensor<4x3x2xf32>) outs(%{{.+}} : tensor<4x6x3xf32>)
// CHECK: %[[R:.+]] = linalg.index 1
// CHECK: %[[J:.+]] = linalg.index 2
// CHECK: %[[I:.+]] = arith.remui %[[R]], %{{.+}} : index
// CHECK: %[[CAUSAL:.+]] = arith.cmpi ugt, %[[J]], %[[I]]
// CHECK: %[[N:.+]] = linalg.index 0
// CHECK: %[[B:.+]] = arith.divui %[[N]], %{{.+}} : index
// CHECK: %[[SI:.+]] = tensor.extract %[[S]][%[[B]], %[[I]]]
// CHECK: %[[SJ:.+]] = tensor.extract %[[S]][%[[B]], %[[J]]]
// CHECK: %[[OTHER:.+]] = arith.cmpi ne, %[[SI]], %[[SJ]]
// CHECK: arith.ori %[[CAUSAL]], %[[OTHER]]
// CHECK: linalg.batch_matmul ins(%{{.+}}, %{{.+}} : tensor<4x6x3xf32>, tensor<4x3x2xf32>)
// CHECK: tensor.collapse_shape %{{.+}} {{\[\[}}0], [1], [2, 3]] : tensor<2x3x4x2xf32> into tensor<2x3x8xf32>
func.func @attention_gqa_segments(%q: tensor<2x3x8xf32>, %k: tensor<2x3x4xf32>, %s: tensor<2x3xi32>) -> tensor<2x3x8xf32> {
  %y = llmp.attention %q, %k, %k segments %s {heads = 4 : i64, kv_heads = 2 : i64, causal} : (tensor<2x3x8xf32>, tensor<2x3x4xf32>, tensor<2x3x4xf32>, tensor<2x3xi32>) -> tensor<2x3x8xf32>
  return %y : tensor<2x3x8xf32>
}

// Tests that with attention-block=2 the forward over T = 3 keys stays whole: 3 has no
// divisor in [min(8, 2), 2], and blocks of one key would only cost time.
// BLOCK-LABEL: func.func @attention_gqa_segments
// BLOCK-NOT: scf.for
// BLOCK: return

// -----

// Tests that attention over more keys than attention-block runs blockwise: an scf.for over
// key blocks of 2 carrying the running max (4x8), sum (4x8) and output (4x8x2); scores
// exist per block (4x8x2), the causal mask offsets the key index by the block start, and
// the output is divided by the running sum after the loop.
// BLOCK-LABEL: func.func @attention_blockwise
// BLOCK: %[[R:.+]]:3 = scf.for %[[KB:.+]] = %{{.+}} to %{{.+}} step %{{.+}} iter_args({{.+}}) -> (tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8x2xf32>)
// BLOCK: tensor.extract_slice %{{.+}}[0, %[[KB]], 0] [4, 2, 2] [1, 1, 1] : tensor<4x4x2xf32> to tensor<4x2x2xf32>
// BLOCK: linalg.batch_matmul {{.*}} outs(%{{.+}} : tensor<4x8x2xf32>)
// BLOCK: %[[J:.+]] = linalg.index 2
// BLOCK: arith.addi %[[J]], %[[KB]]
// BLOCK: arith.maxnumf
// BLOCK: math.exp
// BLOCK: linalg.batch_matmul
// BLOCK: scf.yield
// BLOCK: arith.divf
// CHECK-LABEL: func.func @attention_blockwise
// CHECK-NOT: scf.for
func.func @attention_blockwise(%q: tensor<2x4x8xf32>, %k: tensor<2x4x4xf32>) -> tensor<2x4x8xf32> {
  %y = llmp.attention %q, %k, %k {heads = 4 : i64, kv_heads = 2 : i64, causal} : (tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>) -> tensor<2x4x8xf32>
  return %y : tensor<2x4x8xf32>
}

// -----

// Tests that the grouped-query gradient contracts over the G*T rows, so dK and dV come out
// as (B*KV, T, d) = 4x3x2, summed over the query heads of each group.
// CHECK-DAG: #[[PT:.+]] = affine_map<(d0, d1, d2, d3) -> (d0, d3, d1)>
// CHECK-LABEL: func.func @attention_grad_gqa
// CHECK: linalg.batch_matmul indexing_maps = [#[[PT]], {{.+}}] ins(%{{.+}}, %{{.+}} : tensor<4x6x3xf32>, tensor<4x6x2xf32>) outs(%{{.+}} : tensor<4x3x2xf32>)
// CHECK: return {{.*}} : tensor<2x3x8xf32>, tensor<2x3x4xf32>, tensor<2x3x4xf32>
func.func @attention_grad_gqa(%q: tensor<2x3x8xf32>, %k: tensor<2x3x4xf32>) -> (tensor<2x3x8xf32>, tensor<2x3x4xf32>, tensor<2x3x4xf32>) {
  %dq, %dk, %dv = llmp.attention_grad %q, %k, %k, %q {heads = 4 : i64, kv_heads = 2 : i64, causal} : (tensor<2x3x8xf32>, tensor<2x3x4xf32>, tensor<2x3x4xf32>, tensor<2x3x8xf32>) -> (tensor<2x3x8xf32>, tensor<2x3x4xf32>, tensor<2x3x4xf32>)
  return %dq, %dk, %dv : tensor<2x3x8xf32>, tensor<2x3x4xf32>, tensor<2x3x4xf32>
}

// -----

// Tests that attention_grad over more keys than attention-block runs blockwise (the
// FlashAttention-2 backward): with no forward beside it, a blockwise forward first gives
// each row's log-sum-exp (m + log l); then an scf.for over key blocks of 2 carries dQ
// (4x8x2) and the dK, dV (4x4x2) that each block's slice is inserted into. P is exp(S - L)
// of a (4x8x2) score block, dV_blk = P^T dO, dQ accumulates into the loop's own tensor, and
// no (4x8x4) score or probability tensor exists.
// BLOCK-LABEL: func.func @attention_grad_blockwise
// BLOCK-NOT: tensor<4x8x4xf32>
// BLOCK: %[[F:.+]]:3 = scf.for {{.+}} -> (tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8x2xf32>)
// BLOCK: %[[L:.+]] = linalg.generic {{.+}} ins(%[[F]]#0, %[[F]]#1 : tensor<4x8xf32>, tensor<4x8xf32>)
// BLOCK: math.log
// BLOCK: %[[G:.+]]:3 = scf.for %[[KB:.+]] = %{{.+}} to %{{.+}} step %{{.+}} iter_args(%[[DQ:.+]] = %{{.+}}, %[[DK:.+]] = %{{.+}}, %[[DV:.+]] = %{{.+}}) -> (tensor<4x8x2xf32>, tensor<4x4x2xf32>, tensor<4x4x2xf32>)
// BLOCK: %[[S:.+]] = linalg.batch_matmul {{.+}} outs(%{{.+}} : tensor<4x8x2xf32>)
// BLOCK: %[[P:.+]] = linalg.generic {{.+}} ins(%[[S]], %[[L]] : tensor<4x8x2xf32>, tensor<4x8xf32>)
// BLOCK: math.exp
// BLOCK: linalg.batch_matmul {{.+}} ins(%[[P]], %{{.+}} : tensor<4x8x2xf32>, tensor<4x8x2xf32>) outs(%{{.+}} : tensor<4x2x2xf32>)
// BLOCK: linalg.batch_matmul {{.+}} outs(%[[DQ]] : tensor<4x8x2xf32>)
// BLOCK: tensor.insert_slice %{{.+}} into %[[DK]][0, %[[KB]], 0] [4, 2, 2] [1, 1, 1]
// BLOCK: tensor.insert_slice %{{.+}} into %[[DV]][0, %[[KB]], 0] [4, 2, 2] [1, 1, 1]
// BLOCK: scf.yield
// BLOCK-NOT: tensor<4x8x4xf32>
// BLOCK: return
// CHECK-LABEL: func.func @attention_grad_blockwise
// CHECK-NOT: scf.for
func.func @attention_grad_blockwise(%q: tensor<2x4x8xf32>, %k: tensor<2x4x4xf32>) -> (tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>) {
  %dq, %dk, %dv = llmp.attention_grad %q, %k, %k, %q {heads = 4 : i64, kv_heads = 2 : i64, causal} : (tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>, tensor<2x4x8xf32>) -> (tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>)
  return %dq, %dk, %dv : tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>
}

// -----

// Tests that attention_grad beside its forward (as autodiff leaves them) reuses the
// forward's log-sum-exp and output: one blockwise forward loop, then the backward loop,
// and no second forward.
// BLOCK-LABEL: func.func @attention_and_grad_blockwise
// BLOCK: scf.for {{.+}} -> (tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8x2xf32>)
// BLOCK-NOT: scf.for {{.+}} -> (tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8x2xf32>)
// BLOCK: scf.for {{.+}} -> (tensor<4x8x2xf32>, tensor<4x4x2xf32>, tensor<4x4x2xf32>)
// BLOCK-NOT: scf.for
// BLOCK: return
func.func @attention_and_grad_blockwise(%q: tensor<2x4x8xf32>, %k: tensor<2x4x4xf32>, %dy: tensor<2x4x8xf32>) -> (tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>) {
  %y = llmp.attention %q, %k, %k {heads = 4 : i64, kv_heads = 2 : i64, causal} : (tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>) -> tensor<2x4x8xf32>
  %dq, %dk, %dv = llmp.attention_grad %q, %k, %k, %dy {heads = 4 : i64, kv_heads = 2 : i64, causal} : (tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>, tensor<2x4x8xf32>) -> (tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>)
  return %y, %dq, %dk, %dv : tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>
}

// -----

// Tests that positions count the earlier tokens of the same document: a reduction over t'
// of (t' < t and seg[t'] == seg[t]).
// CHECK-LABEL: func.func @positions
// CHECK: linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "reduction"]
// CHECK: arith.cmpi ult
// CHECK: arith.cmpi eq
// CHECK: arith.andi
// CHECK: arith.extui
// CHECK: arith.addi
func.func @positions(%s: tensor<2x5xi32>) -> tensor<2x5xi32> {
  %p = llmp.positions %s : (tensor<2x5xi32>) -> tensor<2x5xi32>
  return %p : tensor<2x5xi32>
}

// -----

// Tests that rope with positions builds (B, T, hd) cos/sin tables from the positions.
// CHECK-LABEL: func.func @rope_positions
// CHECK-SAME: %[[P:[^:]+]]: tensor<2x3xi32>
// CHECK: linalg.generic {{.*}}outs(%{{.+}} : tensor<2x3x4xf32>)
// CHECK: %[[POS:.+]] = tensor.extract %[[P]]
// CHECK: arith.sitofp %[[POS]] : i32 to f32
// CHECK: math.cos
// CHECK: math.sin
func.func @rope_positions(%x: tensor<2x3x8xf32>, %p: tensor<2x3xi32>) -> tensor<2x3x8xf32> {
  %y = llmp.rope %x positions %p {heads = 2 : i64, theta = 1.0e4 : f32} : (tensor<2x3x8xf32>, tensor<2x3xi32>) -> tensor<2x3x8xf32>
  return %y : tensor<2x3x8xf32>
}

// -----

// Tests that cross_entropy over V = 7 (not a multiple of 16 lanes) is max and sum-exp
// reductions, their log-sum-exp, and a gather of the target logit.
// CHECK-LABEL: func.func @cross_entropy
// CHECK: linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "reduction"]
// CHECK: arith.maximumf
// CHECK: linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "reduction"]
// CHECK: math.exp
// CHECK: linalg.generic
// CHECK: math.log
// CHECK: linalg.generic
// CHECK: tensor.extract %{{.+}}[%{{.+}}, %{{.+}}, %{{.+}}] : tensor<2x3x7xf32>
func.func @cross_entropy(%l: tensor<2x3x7xf32>, %t: tensor<2x3xi32>) -> tensor<2x3xf32> {
  %y = llmp.cross_entropy %l, %t : (tensor<2x3x7xf32>, tensor<2x3xi32>) -> tensor<2x3xf32>
  return %y : tensor<2x3xf32>
}

// -----

// Tests that cross_entropy over V = 32 reads the logits once: one generic over the row
// viewed as (V/16, 16) lanes keeps a running max and sum per lane (a reduction over the
// 2 lane groups, parallel over the 16 lanes, one exp per element); the 16 lanes are then
// merged per row, and only the (2, 3) log-sum-exp meets the gather.
// CHECK-LABEL: func.func @cross_entropy_one_pass
// CHECK: %[[X4:.+]] = tensor.expand_shape %{{.+}} {{\[}}[0], [1], [2, 3]] output_shape [2, 3, 2, 16] : tensor<2x3x32xf32> into tensor<2x3x2x16xf32>
// CHECK: %[[ON:.+]]:2 = linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "reduction", "parallel"]} ins(%[[X4]] : tensor<2x3x2x16xf32>) outs(%{{.+}}, %{{.+}} : tensor<2x3x16xf32>, tensor<2x3x16xf32>)
// CHECK: arith.maximumf
// CHECK: arith.minimumf
// CHECK: math.exp
// CHECK: arith.cmpf ogt
// CHECK: arith.select
// CHECK-NOT: math.exp
// CHECK: linalg.yield
// CHECK: linalg.generic {{.*}}ins(%[[ON]]#0 : tensor<2x3x16xf32>)
// CHECK: linalg.generic {{.*}}ins(%[[ON]]#0, %[[ON]]#1, %{{.+}} : tensor<2x3x16xf32>, tensor<2x3x16xf32>, tensor<2x3xf32>)
// CHECK: math.log
// CHECK: tensor.extract %{{.+}} : tensor<2x3x32xf32>
func.func @cross_entropy_one_pass(%l: tensor<2x3x32xf32>, %t: tensor<2x3xi32>) -> tensor<2x3xf32> {
  %y = llmp.cross_entropy %l, %t : (tensor<2x3x32xf32>, tensor<2x3xi32>) -> tensor<2x3xf32>
  return %y : tensor<2x3xf32>
}

// -----

// Tests that cross_entropy_grad is one elementwise pass written over the logits tensor
// itself (outs), exp(x - lse) minus the one-hot target, times dy: no probabilities
// tensor and no second (B,T,V) result.
// CHECK-LABEL: func.func @cross_entropy_grad
// CHECK-SAME: %[[L:[^:]+]]: tensor<2x3x32xf32>
// CHECK: %[[G:.+]] = linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "parallel"]} ins(%{{.+}}, %{{.+}}, %{{.+}} : tensor<2x3xi32>, tensor<2x3xf32>, tensor<2x3xf32>) outs(%[[L]] : tensor<2x3x32xf32>)
// CHECK: ^bb0(%{{.+}}: i32, %[[LSE:.+]]: f32, %{{.+}}: f32, %[[X:.+]]: f32):
// CHECK: %[[D:.+]] = arith.subf %[[X]], %[[LSE]]
// CHECK: math.exp %[[D]]
// CHECK: return %[[G]]
func.func @cross_entropy_grad(%l: tensor<2x3x32xf32>, %t: tensor<2x3xi32>, %dy: tensor<2x3xf32>) -> tensor<2x3x32xf32> {
  %g = llmp.cross_entropy_grad %l, %t, %dy : (tensor<2x3x32xf32>, tensor<2x3xi32>, tensor<2x3xf32>) -> tensor<2x3x32xf32>
  return %g : tensor<2x3x32xf32>
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

// -----

// Tests causal row blocks (causal-row-block=2, T = 4, G = 2 query heads per key head, the
// grouped rows 4x8x2): the block of queries [0, 2) takes those queries of both heads (the
// grouped rows viewed as 4x2x4x2, sliced to 4x2x2x2 and collapsed to 4x4x2) and meets only
// keys [0, 2) (4x4x2 scores); the block of queries [2, 4) meets all 4 keys (4x4x4), its
// query index in the causal mask being 2 + (row mod 2). Each block's output goes back into
// its queries' rows of both heads. By default (128 rows) T = 4 stays one block (4x8x4).
// ROWS-LABEL: func.func @attention_causal_rows
// ROWS: %[[Q:.+]] = tensor.collapse_shape %{{.+}} : tensor<4x2x4x2xf32> into tensor<4x8x2xf32>
// ROWS: %[[K:.+]] = tensor.collapse_shape %{{.+}} : tensor<2x2x4x2xf32> into tensor<4x4x2xf32>
// ROWS: %[[QE:.+]] = tensor.expand_shape %[[Q]] {{.+}} into tensor<4x2x4x2xf32>
// ROWS: %[[Q0:.+]] = tensor.extract_slice %[[QE]][0, 0, 0, 0] [4, 2, 2, 2] [1, 1, 1, 1]
// ROWS: %[[QB0:.+]] = tensor.collapse_shape %[[Q0]] {{.+}} into tensor<4x4x2xf32>
// ROWS: %[[K0:.+]] = tensor.extract_slice %[[K]][0, 0, 0] [4, 2, 2] [1, 1, 1] : tensor<4x4x2xf32> to tensor<4x2x2xf32>
// ROWS: linalg.batch_matmul {{.+}} ins(%[[QB0]], %[[K0]] : {{.+}}) outs(%{{.+}} : tensor<4x4x2xf32>)
// ROWS: tensor.insert_slice %{{.+}} into %{{.+}}[0, 0, 0, 0] [4, 2, 2, 2] [1, 1, 1, 1] : tensor<4x2x2x2xf32> into tensor<4x2x4x2xf32>
// ROWS: %[[Q1:.+]] = tensor.extract_slice %{{.+}}[0, 0, 2, 0] [4, 2, 2, 2] [1, 1, 1, 1]
// ROWS: %[[QB1:.+]] = tensor.collapse_shape %[[Q1]]
// ROWS: linalg.batch_matmul {{.+}} ins(%[[QB1]], %[[K]] : {{.+}}) outs(%{{.+}} : tensor<4x4x4xf32>)
// ROWS: %[[R:.+]] = linalg.index 1
// ROWS: %[[J:.+]] = linalg.index 2
// ROWS: %[[M:.+]] = arith.remui %[[R]], %{{.+}} : index
// ROWS: %[[I:.+]] = arith.addi %[[M]], %{{.+}} : index
// ROWS: arith.cmpi ugt, %[[J]], %[[I]]
// ROWS: tensor.insert_slice %{{.+}} into %{{.+}}[0, 0, 2, 0] [4, 2, 2, 2] [1, 1, 1, 1]
// ROWS: return
// CHECK-LABEL: func.func @attention_causal_rows
// CHECK-NOT: tensor.extract_slice
// CHECK: linalg.batch_matmul {{.+}} outs(%{{.+}} : tensor<4x8x4xf32>)
func.func @attention_causal_rows(%q: tensor<2x4x8xf32>, %k: tensor<2x4x4xf32>) -> tensor<2x4x8xf32> {
  %y = llmp.attention %q, %k, %k {heads = 4 : i64, kv_heads = 2 : i64, causal} : (tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>) -> tensor<2x4x8xf32>
  return %y : tensor<2x4x8xf32>
}

// Tests that without `causal` no row block is formed: every query sees every key.
// ROWS-LABEL: func.func @attention_not_causal
// ROWS-NOT: tensor.extract_slice
// ROWS: linalg.batch_matmul {{.+}} outs(%{{.+}} : tensor<4x8x4xf32>)
func.func @attention_not_causal(%q: tensor<2x4x8xf32>, %k: tensor<2x4x4xf32>) -> tensor<2x4x8xf32> {
  %y = llmp.attention %q, %k, %k {heads = 4 : i64, kv_heads = 2 : i64} : (tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>) -> tensor<2x4x8xf32>
  return %y : tensor<2x4x8xf32>
}

// -----

// Tests the gradient over causal row blocks: per block, dK and dV of its key prefix
// accumulate into the running dK, dV (the product's init is the prefix slice, its result
// inserted back), and dQ of its queries goes into their rows. First block (queries [0, 2)
// of both heads, keys [0, 2)): dV_p += P^T dO_b into the 4x2x2 prefix of a zero-filled dV.
// ROWS-LABEL: func.func @attention_grad_causal_rows
// ROWS: %[[DV0:.+]] = tensor.extract_slice %[[DV:[0-9]+]][0, 0, 0] [4, 2, 2] [1, 1, 1] : tensor<4x4x2xf32> to tensor<4x2x2xf32>
// ROWS: %[[DVP:.+]] = linalg.batch_matmul {{.+}} outs(%[[DV0]] : tensor<4x2x2xf32>)
// ROWS: tensor.insert_slice %{{.+}} into %{{.+}}[0, 0, 0, 0] [4, 2, 2, 2] [1, 1, 1, 1] : tensor<4x2x2x2xf32> into tensor<4x2x4x2xf32>
// ROWS: %[[DK1:.+]] = tensor.insert_slice %{{.+}} into %{{.+}}[0, 0, 0] [4, 2, 2] [1, 1, 1] : tensor<4x2x2xf32> into tensor<4x4x2xf32>
// ROWS: %[[DV1:.+]] = tensor.insert_slice %[[DVP]] into %[[DV]][0, 0, 0] [4, 2, 2] [1, 1, 1] : tensor<4x2x2xf32> into tensor<4x4x2xf32>
// Second block (queries [2, 4), all 4 keys): the whole dV and dK accumulate.
// ROWS: linalg.batch_matmul {{.+}} outs(%[[DV1]] : tensor<4x4x2xf32>)
// ROWS: linalg.batch_matmul {{.+}} outs(%[[DK1]] : tensor<4x4x2xf32>)
// ROWS: tensor.insert_slice %{{.+}} into %{{.+}}[0, 0, 2, 0] [4, 2, 2, 2]
// ROWS: return {{.*}} : tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>
func.func @attention_grad_causal_rows(%q: tensor<2x4x8xf32>, %k: tensor<2x4x4xf32>) -> (tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>) {
  %dq, %dk, %dv = llmp.attention_grad %q, %k, %k, %q {heads = 4 : i64, kv_heads = 2 : i64, causal} : (tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>, tensor<2x4x8xf32>) -> (tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>)
  return %dq, %dk, %dv : tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>
}
