// RUN: llmp-opt %s --split-input-file --verify-diagnostics

// Tests that the blob must have the Nf4Layout byte size: 4 x 6 weights at block 64 with
// double quantization take 12 + 1 code bytes, the scale at align4(13) = 16, the offset at
// 20: 24 bytes.
func.func @blob_size(%x: tensor<3x4xf32>, %w: tensor<16xi8>) {
  // expected-error@+1 {{'llmp.matmul_nf4' op expected weight of shape 24 but found 16}}
  %0 = llmp.matmul_nf4 %x, %w {rows = 4 : i64, cols = 6 : i64, block = 64 : i64, double_quant} : (tensor<3x4xf32>, tensor<16xi8>) -> tensor<3x6xf32>
  return
}

// -----

// Tests that the input's columns must be the weight's rows.
func.func @contraction(%x: tensor<3x5xf32>, %w: tensor<16xi8>) {
  // expected-error@+1 {{'llmp.matmul_nf4' op expected the contraction sizes to match but found 5 (input) and 4 (weight)}}
  %0 = llmp.matmul_nf4 %x, %w {rows = 4 : i64, cols = 6 : i64, block = 64 : i64} : (tensor<3x5xf32>, tensor<16xi8>) -> tensor<3x6xf32>
  return
}

// -----

// Tests that transpose_b contracts over the weight's columns and yields its rows.
func.func @transposed_result(%x: tensor<3x6xf32>, %w: tensor<16xi8>) {
  // expected-error@+1 {{'llmp.matmul_nf4' op expected result of shape 3x4 but found 3x6}}
  %0 = llmp.matmul_nf4 %x, %w {rows = 4 : i64, cols = 6 : i64, block = 64 : i64, transpose_b} : (tensor<3x6xf32>, tensor<16xi8>) -> tensor<3x6xf32>
  return
}

// -----

// Tests that the block size must be positive.
func.func @block(%x: tensor<3x4xf32>, %w: tensor<16xi8>) {
  // expected-error@+1 {{'llmp.matmul_nf4' op expected rows, cols and block >= 1 but found rows = 4, cols = 6, block = 0}}
  %0 = llmp.matmul_nf4 %x, %w {rows = 4 : i64, cols = 6 : i64, block = 0 : i64} : (tensor<3x4xf32>, tensor<16xi8>) -> tensor<3x6xf32>
  return
}

// -----

// Tests that the weight is a byte blob.
func.func @weight_type(%x: tensor<3x4xf32>, %w: tensor<16xf32>) {
  // expected-error@+1 {{'llmp.matmul_nf4' op operand #1 must be ranked tensor of 8-bit signless integer values}}
  %0 = llmp.matmul_nf4 %x, %w {rows = 4 : i64, cols = 6 : i64, block = 64 : i64} : (tensor<3x4xf32>, tensor<16xf32>) -> tensor<3x6xf32>
  return
}

// -----

// Tests that the blob is 1-D.
func.func @weight_rank(%x: tensor<3x4xf32>, %w: tensor<4x4xi8>) {
  // expected-error@+1 {{'llmp.matmul_nf4' op expected weight of rank 1 but found rank 2}}
  %0 = llmp.matmul_nf4 %x, %w {rows = 4 : i64, cols = 6 : i64, block = 64 : i64} : (tensor<3x4xf32>, tensor<4x4xi8>) -> tensor<3x6xf32>
  return
}
