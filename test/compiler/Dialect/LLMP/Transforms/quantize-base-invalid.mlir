// RUN: llmp-opt %s --split-input-file --llmp-quantize-base --verify-diagnostics

// Tests that the pass needs the frozen parameters of llmp-apply-lora.
// expected-error@+1 {{llmp-quantize-base: expected frozen parameters (run llmp-apply-lora first)}}
module attributes {llmp.num_params = 24 : i64} {
  func.func @logits(%w: tensor<4x6xf32> {llmp.param = "wq", llmp.offset = 0 : i64, llmp.decay}, %x: tensor<3x4xf32>) -> tensor<3x6xf32> {
    %y = llmp.matmul %x, %w : (tensor<3x4xf32>, tensor<4x6xf32>) -> tensor<3x6xf32>
    return %y : tensor<3x6xf32>
  }
}

// -----

// Tests that a frozen weight read by another op too (the embedding table as a tied head)
// stays fp32, and that a module with no frozen linear weight left is an error.
// expected-error@+1 {{llmp-quantize-base: no frozen linear weight (a 2-D frozen parameter used only as the weight of llmp.matmul) to quantize}}
module attributes {llmp.num_params = 0 : i64, llmp.frozen_bytes = 80 : i64} {
  func.func @logits(%e: tensor<5x4xf32> {llmp.param = "embed", llmp.frozen, llmp.byte_offset = 0 : i64}, %tokens: tensor<1x3xi32>) -> tensor<3x5xf32> {
    %x = llmp.embedding %e, %tokens : (tensor<5x4xf32>, tensor<1x3xi32>) -> tensor<1x3x4xf32>
    %x2 = llmp.reshape %x : (tensor<1x3x4xf32>) -> tensor<3x4xf32>
    %z = llmp.matmul %x2, %e {transpose_b} : (tensor<3x4xf32>, tensor<5x4xf32>) -> tensor<3x5xf32>
    return %z : tensor<3x5xf32>
  }
}
