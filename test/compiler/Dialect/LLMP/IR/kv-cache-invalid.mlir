// RUN: llmp-opt %s --split-input-file --verify-diagnostics

// Tests that a KV cache is (layers, B, kv_heads, context, head size).
func.func @cache_rank(%kc: tensor<2x2x16x4xf32>, %k: tensor<2x1x8xf32>) {
  // expected-error@+1 {{'llmp.kv_cache_write' op expected cache of rank 5 but found rank 4}}
  %0 = llmp.kv_cache_write %kc, %k {layer = 0 : i64} : (tensor<2x2x16x4xf32>, tensor<2x1x8xf32>) -> tensor<2x2x16x4xf32>
  return
}

// -----

// Tests that the layer lies inside the cache.
func.func @cache_layer(%kc: tensor<2x2x2x16x4xf32>, %k: tensor<2x1x8xf32>) {
  // expected-error@+1 {{'llmp.kv_cache_write' op expected layer in [0, 2) but found 2}}
  %0 = llmp.kv_cache_write %kc, %k {layer = 2 : i64} : (tensor<2x2x2x16x4xf32>, tensor<2x1x8xf32>) -> tensor<2x2x2x16x4xf32>
  return
}

// -----

// Tests that the written keys are (B, T, kv_heads * head size).
func.func @cache_write_x(%kc: tensor<2x2x2x16x4xf32>, %k: tensor<2x1x16xf32>) {
  // expected-error@+1 {{'llmp.kv_cache_write' op expected x of shape 2x1x8 but found 2x1x16}}
  %0 = llmp.kv_cache_write %kc, %k {layer = 0 : i64} : (tensor<2x2x2x16x4xf32>, tensor<2x1x16xf32>) -> tensor<2x2x2x16x4xf32>
  return
}

// -----

// Tests that a chunk has at most the cache's positions.
func.func @cache_write_long(%kc: tensor<1x1x1x4x4xf32>, %k: tensor<1x8x4xf32>) {
  // expected-error@+1 {{'llmp.kv_cache_write' op expected at most 4 tokens (the cache's positions) but found 8}}
  %0 = llmp.kv_cache_write %kc, %k {layer = 0 : i64} : (tensor<1x1x1x4x4xf32>, tensor<1x8x4xf32>) -> tensor<1x1x1x4x4xf32>
  return
}

// -----

// Tests that start has one position per row.
func.func @cache_write_start(%kc: tensor<2x2x2x16x4xf32>, %k: tensor<2x1x8xf32>, %pos: tensor<3xi32>) {
  // expected-error@+1 {{'llmp.kv_cache_write' op expected start of shape 2 but found 3}}
  %0 = llmp.kv_cache_write %kc, %k start %pos {layer = 0 : i64} : (tensor<2x2x2x16x4xf32>, tensor<2x1x8xf32>, tensor<3xi32>) -> tensor<2x2x2x16x4xf32>
  return
}

// -----

// Tests that the cache's heads and head size match the queries' grouping.
func.func @cache_attention_heads(%q: tensor<2x1x16xf32>, %kc: tensor<2x2x2x16x4xf32>, %pos: tensor<2xi32>) {
  // expected-error@+1 {{'llmp.cache_attention' op expected k_cache of shape 2x2x4x16x4 but found 2x2x2x16x4}}
  %0 = llmp.cache_attention %q, %kc, %kc start %pos {layer = 0 : i64, heads = 4 : i64} : (tensor<2x1x16xf32>, tensor<2x2x2x16x4xf32>, tensor<2x2x2x16x4xf32>, tensor<2xi32>) -> tensor<2x1x16xf32>
  return
}

// -----

// Tests that kv_heads divides heads.
func.func @cache_attention_kv(%q: tensor<2x1x16xf32>, %kc: tensor<2x2x3x16x4xf32>, %pos: tensor<2xi32>) {
  // expected-error@+1 {{'llmp.cache_attention' op expected kv_heads to divide heads = 4 but found kv_heads = 3}}
  %0 = llmp.cache_attention %q, %kc, %kc start %pos {layer = 0 : i64, heads = 4 : i64, kv_heads = 3 : i64} : (tensor<2x1x16xf32>, tensor<2x2x3x16x4xf32>, tensor<2x2x3x16x4xf32>, tensor<2xi32>) -> tensor<2x1x16xf32>
  return
}

// -----

// Tests that the value cache has the key cache's shape.
func.func @cache_attention_v(%q: tensor<2x1x16xf32>, %kc: tensor<2x2x2x16x4xf32>, %vc: tensor<2x2x2x8x4xf32>, %pos: tensor<2xi32>) {
  // expected-error@+1 {{'llmp.cache_attention' op expected v_cache of shape 2x2x2x16x4 but found 2x2x2x8x4}}
  %0 = llmp.cache_attention %q, %kc, %vc start %pos {layer = 0 : i64, heads = 4 : i64, kv_heads = 2 : i64} : (tensor<2x1x16xf32>, tensor<2x2x2x16x4xf32>, tensor<2x2x2x8x4xf32>, tensor<2xi32>) -> tensor<2x1x16xf32>
  return
}

// -----

// Tests that the cache's layer exists.
func.func @cache_attention_layer(%q: tensor<2x1x16xf32>, %kc: tensor<2x2x2x16x4xf32>, %pos: tensor<2xi32>) {
  // expected-error@+1 {{'llmp.cache_attention' op expected layer in [0, 2) but found 5}}
  %0 = llmp.cache_attention %q, %kc, %kc start %pos {layer = 5 : i64, heads = 4 : i64, kv_heads = 2 : i64} : (tensor<2x1x16xf32>, tensor<2x2x2x16x4xf32>, tensor<2x2x2x16x4xf32>, tensor<2xi32>) -> tensor<2x1x16xf32>
  return
}

// -----

// Tests that the result of cache_attention has q's shape.
func.func @cache_attention_result(%q: tensor<2x1x16xf32>, %kc: tensor<2x2x2x16x4xf32>, %pos: tensor<2xi32>) {
  // expected-error@+1 {{'llmp.cache_attention' op expected result of shape 2x1x16 but found 2x1x8}}
  %0 = llmp.cache_attention %q, %kc, %kc start %pos {layer = 0 : i64, heads = 4 : i64, kv_heads = 2 : i64} : (tensor<2x1x16xf32>, tensor<2x2x2x16x4xf32>, tensor<2x2x2x16x4xf32>, tensor<2xi32>) -> tensor<2x1x8xf32>
  return
}

// -----

// Tests that last_token takes one length per row.
func.func @last_token_lengths(%x: tensor<2x8x64xf32>, %len: tensor<3xi32>) {
  // expected-error@+1 {{'llmp.last_token' op expected lengths of shape 2 but found 3}}
  %0 = llmp.last_token %x, %len : (tensor<2x8x64xf32>, tensor<3xi32>) -> tensor<2x64xf32>
  return
}

// -----

// Tests that last_token's result is (B, N).
func.func @last_token_result(%x: tensor<2x8x64xf32>, %len: tensor<2xi32>) {
  // expected-error@+1 {{'llmp.last_token' op expected result of shape 2x64 but found 2x8x64}}
  %0 = llmp.last_token %x, %len : (tensor<2x8x64xf32>, tensor<2xi32>) -> tensor<2x8x64xf32>
  return
}

// -----

// Tests that last_token's input is (B, T, N).
func.func @last_token_rank(%x: tensor<8x64xf32>, %len: tensor<8xi32>) {
  // expected-error@+1 {{'llmp.last_token' op expected input of rank 3 but found rank 2}}
  %0 = llmp.last_token %x, %len : (tensor<8x64xf32>, tensor<8xi32>) -> tensor<8x64xf32>
  return
}

// -----

// Tests that the written keys are rank 3.
func.func @cache_write_x_rank(%kc: tensor<2x2x2x16x4xf32>, %k: tensor<2x8xf32>) {
  // expected-error@+1 {{'llmp.kv_cache_write' op expected x of rank 3 but found rank 2}}
  %0 = llmp.kv_cache_write %kc, %k {layer = 0 : i64} : (tensor<2x2x2x16x4xf32>, tensor<2x8xf32>) -> tensor<2x2x2x16x4xf32>
  return
}

// -----

// Tests that kv_cache_write returns the cache's shape.
func.func @cache_write_result(%kc: tensor<2x2x2x16x4xf32>, %k: tensor<2x1x8xf32>) {
  // expected-error@+1 {{'llmp.kv_cache_write' op expected result of shape 2x2x2x16x4 but found 2x2x2x8x4}}
  %0 = llmp.kv_cache_write %kc, %k {layer = 0 : i64} : (tensor<2x2x2x16x4xf32>, tensor<2x1x8xf32>) -> tensor<2x2x2x8x4xf32>
  return
}

// -----

// Tests that heads divides the query width.
func.func @cache_attention_q(%q: tensor<2x1x10xf32>, %kc: tensor<2x2x2x16x4xf32>, %pos: tensor<2xi32>) {
  // expected-error@+1 {{'llmp.cache_attention' op expected heads to divide the model width 10 but found heads = 4}}
  %0 = llmp.cache_attention %q, %kc, %kc start %pos {layer = 0 : i64, heads = 4 : i64, kv_heads = 2 : i64} : (tensor<2x1x10xf32>, tensor<2x2x2x16x4xf32>, tensor<2x2x2x16x4xf32>, tensor<2xi32>) -> tensor<2x1x10xf32>
  return
}

// -----

// Tests that cache_attention takes one start position per row.
func.func @cache_attention_start(%q: tensor<2x1x16xf32>, %kc: tensor<2x2x2x16x4xf32>, %pos: tensor<1xi32>) {
  // expected-error@+1 {{'llmp.cache_attention' op expected start of shape 2 but found 1}}
  %0 = llmp.cache_attention %q, %kc, %kc start %pos {layer = 0 : i64, heads = 4 : i64, kv_heads = 2 : i64} : (tensor<2x1x16xf32>, tensor<2x2x2x16x4xf32>, tensor<2x2x2x16x4xf32>, tensor<1xi32>) -> tensor<2x1x16xf32>
  return
}
