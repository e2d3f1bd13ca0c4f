// RUN: llmp-opt %s --split-input-file | llmp-opt --split-input-file | FileCheck %s

// Tests that llmp.matmul_nf4 round-trips with its attributes. Blob bytes by hand
// (kernels/cpu/Quant.h Nf4Layout): 16 x 32 = 512 weights at block 64 with double
// quantization: 256 code bytes, 8 absmax codes, scales at align4(264) = 264, one scale,
// one offset: 272; the transposed product reads the same blob.
// CHECK-LABEL: func.func @nf4
// CHECK: llmp.matmul_nf4 %{{.*}}, %{{.*}} {block = 64 : i64, cols = 32 : i64, double_quant, rows = 16 : i64} : (tensor<8x16xf32>, tensor<272xi8>) -> tensor<8x32xf32>
// CHECK: llmp.matmul_nf4 %{{.*}}, %{{.*}} {block = 64 : i64, cols = 32 : i64, double_quant, rows = 16 : i64, transpose_b} : (tensor<8x32xf32>, tensor<272xi8>) -> tensor<8x16xf32>
func.func @nf4(%x: tensor<8x16xf32>, %w: tensor<272xi8>) -> tensor<8x16xf32> {
  %y = llmp.matmul_nf4 %x, %w {rows = 16 : i64, cols = 32 : i64, block = 64 : i64, double_quant} : (tensor<8x16xf32>, tensor<272xi8>) -> tensor<8x32xf32>
  %z = llmp.matmul_nf4 %y, %w {rows = 16 : i64, cols = 32 : i64, block = 64 : i64, double_quant, transpose_b} : (tensor<8x32xf32>, tensor<272xi8>) -> tensor<8x16xf32>
  return %z : tensor<8x16xf32>
}

// -----

// Tests the form without double quantization: 4 x 6 = 24 weights at block 64: 12 code
// bytes, one fp32 absmax at align4(12) = 12: 16 bytes.
// CHECK-LABEL: func.func @fp32_absmax
// CHECK: llmp.matmul_nf4 %{{.*}}, %{{.*}} {block = 64 : i64, cols = 6 : i64, rows = 4 : i64} : (tensor<3x4xf32>, tensor<16xi8>) -> tensor<3x6xf32>
func.func @fp32_absmax(%x: tensor<3x4xf32>, %w: tensor<16xi8>) -> tensor<3x6xf32> {
  %y = llmp.matmul_nf4 %x, %w {rows = 4 : i64, cols = 6 : i64, block = 64 : i64} : (tensor<3x4xf32>, tensor<16xi8>) -> tensor<3x6xf32>
  return %y : tensor<3x6xf32>
}
