// RUN: llmp-opt %s --split-input-file --verify-diagnostics

// Tests that an embedding table must be 2-D.
func.func @case0(%t: tensor<4x8x2xf32>, %i: tensor<2x3xi32>) {
  // expected-error@+1 {{'llmp.embedding' op expected table of rank 2 but found rank 3}}
  %0 = llmp.embedding %t, %i : (tensor<4x8x2xf32>, tensor<2x3xi32>) -> tensor<2x3x8xf32>
  return
}

// -----

// Tests that the embedding result is (B, T, D).
func.func @case1(%t: tensor<4x8xf32>, %i: tensor<2x3xi32>) {
  // expected-error@+1 {{'llmp.embedding' op expected result of shape 2x3x8 but found 2x3x4}}
  %0 = llmp.embedding %t, %i : (tensor<4x8xf32>, tensor<2x3xi32>) -> tensor<2x3x4xf32>
  return
}

// -----

// Tests that matmul contraction sizes must match.
func.func @case2(%a: tensor<3x4xf32>, %b: tensor<5x6xf32>) {
  // expected-error@+1 {{'llmp.matmul' op expected the contraction sizes to match but found 4 (lhs) and 5 (rhs)}}
  %0 = llmp.matmul %a, %b : (tensor<3x4xf32>, tensor<5x6xf32>) -> tensor<3x6xf32>
  return
}

// -----

// Tests that transpose_b changes the result shape.
func.func @case3(%a: tensor<3x4xf32>, %b: tensor<4x6xf32>) {
  // expected-error@+1 {{'llmp.matmul' op expected the contraction sizes to match but found 4 (lhs) and 6 (rhs)}}
  %0 = llmp.matmul %a, %b {transpose_b} : (tensor<3x4xf32>, tensor<4x6xf32>) -> tensor<3x6xf32>
  return
}

// -----

// Tests that the matmul result is (M, N).
func.func @case4(%a: tensor<3x4xf32>, %b: tensor<4x6xf32>) {
  // expected-error@+1 {{'llmp.matmul' op expected result of shape 3x6 but found 6x3}}
  %0 = llmp.matmul %a, %b : (tensor<3x4xf32>, tensor<4x6xf32>) -> tensor<6x3xf32>
  return
}

// -----

// Tests that matmul operands are 2-D.
func.func @case5(%a: tensor<2x3x4xf32>, %b: tensor<4x6xf32>) {
  // expected-error@+1 {{'llmp.matmul' op expected lhs of rank 2 but found rank 3}}
  %0 = llmp.matmul %a, %b : (tensor<2x3x4xf32>, tensor<4x6xf32>) -> tensor<3x6xf32>
  return
}

// -----

// Tests that reshape keeps the element count.
func.func @case6(%a: tensor<3x4xf32>) {
  // expected-error@+1 {{'llmp.reshape' op expected result with 12 elements but found 10}}
  %0 = llmp.reshape %a : (tensor<3x4xf32>) -> tensor<5x2xf32>
  return
}

// -----

// Tests that reshape keeps the element type.
func.func @case7(%a: tensor<3x4xf32>) {
  // expected-error@+1 {{'llmp.reshape' op expected result element type 'f32' but found 'i32'}}
  %0 = llmp.reshape %a : (tensor<3x4xf32>) -> tensor<12xi32>
  return
}

// -----

// Tests that the transpose result swaps the dims.
func.func @case8(%a: tensor<3x4xf32>) {
  // expected-error@+1 {{'llmp.transpose' op expected result of shape 4x3 but found 3x4}}
  %0 = llmp.transpose %a : (tensor<3x4xf32>) -> tensor<3x4xf32>
  return
}

// -----

// Tests that add operands have the same shape.
func.func @case9(%a: tensor<3x4xf32>, %b: tensor<4x3xf32>) {
  // expected-error@+1 {{'llmp.add' op expected rhs of shape 3x4 but found 4x3}}
  %0 = llmp.add %a, %b : (tensor<3x4xf32>, tensor<4x3xf32>) -> tensor<3x4xf32>
  return
}

// -----

// Tests that the mul result has the operands' shape.
func.func @case10(%a: tensor<3x4xf32>, %b: tensor<3x4xf32>) {
  // expected-error@+1 {{'llmp.mul' op expected result of shape 3x4 but found 12}}
  %0 = llmp.mul %a, %b : (tensor<3x4xf32>, tensor<3x4xf32>) -> tensor<12xf32>
  return
}

// -----

// Tests that the silu result has the input's shape.
func.func @case11(%a: tensor<3x4xf32>) {
  // expected-error@+1 {{'llmp.silu' op expected result of shape 3x4 but found 4x3}}
  %0 = llmp.silu %a : (tensor<3x4xf32>) -> tensor<4x3xf32>
  return
}

// -----

// Tests that the rmsnorm weight matches the last dim.
func.func @case12(%x: tensor<2x8xf32>, %w: tensor<4xf32>) {
  // expected-error@+1 {{'llmp.rmsnorm' op expected weight of shape 8 but found 4}}
  %0 = llmp.rmsnorm %x, %w {eps = 1.0e-5 : f32} : (tensor<2x8xf32>, tensor<4xf32>) -> tensor<2x8xf32>
  return
}

// -----

// Tests that rmsnorm needs a dimension to normalise.
func.func @case13(%x: tensor<f32>, %w: tensor<4xf32>) {
  // expected-error@+1 {{'llmp.rmsnorm' op expected an input of rank >= 1 but found a scalar}}
  %0 = llmp.rmsnorm %x, %w {eps = 1.0e-5 : f32} : (tensor<f32>, tensor<4xf32>) -> tensor<f32>
  return
}

// -----

// Tests that rope heads divide the width.
func.func @case14(%x: tensor<2x3x8xf32>) {
  // expected-error@+1 {{'llmp.rope' op expected heads to divide the model width 8 but found heads = 3}}
  %0 = llmp.rope %x {heads = 3 : i64, theta = 1.0e4 : f32} : (tensor<2x3x8xf32>) -> tensor<2x3x8xf32>
  return
}

// -----

// Tests that rope heads have an even size.
func.func @case15(%x: tensor<2x3x6xf32>) {
  // expected-error@+1 {{'llmp.rope' op expected an even head size but found 3}}
  %0 = llmp.rope %x {heads = 2 : i64, theta = 1.0e4 : f32} : (tensor<2x3x6xf32>) -> tensor<2x3x6xf32>
  return
}

// -----

// Tests that rope input is (B, T, D).
func.func @case16(%x: tensor<3x8xf32>) {
  // expected-error@+1 {{'llmp.rope' op expected input of rank 3 but found rank 2}}
  %0 = llmp.rope %x {heads = 2 : i64, theta = 1.0e4 : f32} : (tensor<3x8xf32>) -> tensor<3x8xf32>
  return
}

// -----

// Tests that attention k has q's shape.
func.func @case17(%q: tensor<2x3x8xf32>, %k: tensor<2x4x8xf32>) {
  // expected-error@+1 {{'llmp.attention' op expected k of shape 2x3x8 but found 2x4x8}}
  %0 = llmp.attention %q, %k, %q {heads = 2 : i64} : (tensor<2x3x8xf32>, tensor<2x4x8xf32>, tensor<2x3x8xf32>) -> tensor<2x3x8xf32>
  return
}

// -----

// Tests that cross_entropy targets are (B, T).
func.func @case18(%l: tensor<2x3x8xf32>, %t: tensor<3x2xi32>) {
  // expected-error@+1 {{'llmp.cross_entropy' op expected targets of shape 2x3 but found 3x2}}
  %0 = llmp.cross_entropy %l, %t : (tensor<2x3x8xf32>, tensor<3x2xi32>) -> tensor<2x3xf32>
  return
}

// -----

// Tests that cross_entropy logits are (B, T, V).
func.func @case19(%l: tensor<6x8xf32>, %t: tensor<2x3xi32>) {
  // expected-error@+1 {{'llmp.cross_entropy' op expected logits of rank 3 but found rank 2}}
  %0 = llmp.cross_entropy %l, %t : (tensor<6x8xf32>, tensor<2x3xi32>) -> tensor<2x3xf32>
  return
}

// -----

// Tests that embedding_grad dy matches the ids.
func.func @case20(%i: tensor<2x3xi32>, %dy: tensor<3x2x8xf32>) {
  // expected-error@+1 {{'llmp.embedding_grad' op expected dy of shape 2x3xD but found 3x2x8}}
  %0 = llmp.embedding_grad %i, %dy {vocab = 16 : i64} : (tensor<2x3xi32>, tensor<3x2x8xf32>) -> tensor<16x8xf32>
  return
}

// -----

// Tests that embedding_grad result is (vocab, D).
func.func @case21(%i: tensor<2x3xi32>, %dy: tensor<2x3x8xf32>) {
  // expected-error@+1 {{'llmp.embedding_grad' op expected result of shape 16x8 but found 15x8}}
  %0 = llmp.embedding_grad %i, %dy {vocab = 16 : i64} : (tensor<2x3xi32>, tensor<2x3x8xf32>) -> tensor<15x8xf32>
  return
}

// -----

// Tests that silu_grad dy has the input's shape.
func.func @case22(%x: tensor<3x4xf32>, %dy: tensor<4x3xf32>) {
  // expected-error@+1 {{'llmp.silu_grad' op expected dy of shape 3x4 but found 4x3}}
  %0 = llmp.silu_grad %x, %dy : (tensor<3x4xf32>, tensor<4x3xf32>) -> tensor<3x4xf32>
  return
}

// -----

// Tests that rmsnorm_grad dweight has the weight's shape.
func.func @case23(%x: tensor<2x8xf32>, %w: tensor<8xf32>) {
  // expected-error@+1 {{'llmp.rmsnorm_grad' op expected dweight of shape 8 but found 2}}
  %0:2 = llmp.rmsnorm_grad %x, %w, %x {eps = 1.0e-5 : f32} : (tensor<2x8xf32>, tensor<8xf32>, tensor<2x8xf32>) -> (tensor<2x8xf32>, tensor<2xf32>)
  return
}

// -----

// Tests that attention_grad results have q's shape.
func.func @case24(%q: tensor<2x3x8xf32>) {
  // expected-error@+1 {{'llmp.attention_grad' op expected gradient of shape 2x3x8 but found 2x3x4}}
  %0:3 = llmp.attention_grad %q, %q, %q, %q {heads = 2 : i64} : (tensor<2x3x8xf32>, tensor<2x3x8xf32>, tensor<2x3x8xf32>, tensor<2x3x8xf32>) -> (tensor<2x3x8xf32>, tensor<2x3x8xf32>, tensor<2x3x4xf32>)
  return
}

// -----

// Tests that cross_entropy_grad dy is (B, T).
func.func @case25(%l: tensor<2x3x8xf32>, %t: tensor<2x3xi32>, %dy: tensor<2x4xf32>) {
  // expected-error@+1 {{'llmp.cross_entropy_grad' op expected dy of shape 2x3 but found 2x4}}
  %0 = llmp.cross_entropy_grad %l, %t, %dy : (tensor<2x3x8xf32>, tensor<2x3xi32>, tensor<2x4xf32>) -> tensor<2x3x8xf32>
  return
}

// -----

// Tests that kv_heads must divide heads.
func.func @case26(%q: tensor<2x3x8xf32>, %k: tensor<2x3x4xf32>) {
  // expected-error@+1 {{'llmp.attention' op expected kv_heads to divide heads = 4 but found kv_heads = 3}}
  %0 = llmp.attention %q, %k, %k {heads = 4 : i64, kv_heads = 3 : i64} : (tensor<2x3x8xf32>, tensor<2x3x4xf32>, tensor<2x3x4xf32>) -> tensor<2x3x8xf32>
  return
}

// -----

// Tests that grouped-query keys are (B, T, kv_heads * head dim).
func.func @case27(%q: tensor<2x3x8xf32>) {
  // expected-error@+1 {{'llmp.attention' op expected k of shape 2x3x4 but found 2x3x8}}
  %0 = llmp.attention %q, %q, %q {heads = 4 : i64, kv_heads = 2 : i64} : (tensor<2x3x8xf32>, tensor<2x3x8xf32>, tensor<2x3x8xf32>) -> tensor<2x3x8xf32>
  return
}

// -----

// Tests that grouped-query values have the keys' shape.
func.func @case28(%q: tensor<2x3x8xf32>, %k: tensor<2x3x4xf32>) {
  // expected-error@+1 {{'llmp.attention' op expected v of shape 2x3x4 but found 2x3x8}}
  %0 = llmp.attention %q, %k, %q {heads = 4 : i64, kv_heads = 2 : i64} : (tensor<2x3x8xf32>, tensor<2x3x4xf32>, tensor<2x3x8xf32>) -> tensor<2x3x8xf32>
  return
}

// -----

// Tests that attention segments are (B, T).
func.func @case29(%q: tensor<2x3x8xf32>, %s: tensor<2x4xi32>) {
  // expected-error@+1 {{'llmp.attention' op expected segments of shape 2x3 but found 2x4}}
  %0 = llmp.attention %q, %q, %q segments %s {heads = 2 : i64, causal} : (tensor<2x3x8xf32>, tensor<2x3x8xf32>, tensor<2x3x8xf32>, tensor<2x4xi32>) -> tensor<2x3x8xf32>
  return
}

// -----

// Tests that grouped-query dk has the keys' shape, not the queries'.
func.func @case30(%q: tensor<2x3x8xf32>, %k: tensor<2x3x4xf32>) {
  // expected-error@+1 {{'llmp.attention_grad' op expected gradient of shape 2x3x4 but found 2x3x8}}
  %0:3 = llmp.attention_grad %q, %k, %k, %q {heads = 4 : i64, kv_heads = 2 : i64} : (tensor<2x3x8xf32>, tensor<2x3x4xf32>, tensor<2x3x4xf32>, tensor<2x3x8xf32>) -> (tensor<2x3x8xf32>, tensor<2x3x8xf32>, tensor<2x3x4xf32>)
  return
}

// -----

// Tests that rope positions are (B, T).
func.func @case31(%x: tensor<2x3x8xf32>, %p: tensor<3x2xi32>) {
  // expected-error@+1 {{'llmp.rope' op expected positions of shape 2x3 but found 3x2}}
  %0 = llmp.rope %x positions %p {heads = 2 : i64, theta = 1.0e4 : f32} : (tensor<2x3x8xf32>, tensor<3x2xi32>) -> tensor<2x3x8xf32>
  return
}

// -----

// Tests that positions come from 2-D segments.
func.func @case32(%s: tensor<6xi32>) {
  // expected-error@+1 {{'llmp.positions' op expected segments of rank 2 but found rank 1}}
  %0 = llmp.positions %s : (tensor<6xi32>) -> tensor<6xi32>
  return
}

// -----

// Tests that positions have the segments' shape.
func.func @case33(%s: tensor<2x3xi32>) {
  // expected-error@+1 {{'llmp.positions' op expected result of shape 2x3 but found 3x2}}
  %0 = llmp.positions %s : (tensor<2x3xi32>) -> tensor<3x2xi32>
  return
}

// -----

// Tests that target_mean targets have the shape of its input.
func.func @target_mean_shape(%l: tensor<2x3xf32>, %t: tensor<3x2xi32>) {
  // expected-error@+1 {{'llmp.target_mean' op expected targets of shape 2x3 but found 3x2}}
  %0 = llmp.target_mean %l, %t : (tensor<2x3xf32>, tensor<3x2xi32>) -> tensor<f32>
  return
}

// -----

// Tests that the target_mean gradient has the shape of the targets.
func.func @target_mean_grad_shape(%t: tensor<2x3xi32>, %dy: tensor<f32>) {
  // expected-error@+1 {{'llmp.target_mean_grad' op expected result of shape 2x3 but found 2x4}}
  %0 = llmp.target_mean_grad %t, %dy : (tensor<2x3xi32>, tensor<f32>) -> tensor<2x4xf32>
  return
}
