// RUN: llmp-opt %s --split-input-file --verify-diagnostics --llmp-apply-lora="rank=2 targets=wq"

// Tests the errors of llmp-apply-lora: a target that names no parameter, and a target that
// is no matmul weight.

// expected-error @+1 {{llmp-apply-lora: target 'wq' matches no parameter}}
module attributes {llmp.num_params = 4 : i64} {
  func.func @logits(%w: tensor<4xf32> {llmp.param = "norm", llmp.offset = 0 : i64}) -> tensor<4xf32> {
    return %w : tensor<4xf32>
  }
}

// -----

// expected-error @+1 {{llmp-apply-lora: target 'l.wq' is not the weight of any llmp.matmul}}
module attributes {llmp.num_params = 4 : i64} {
  func.func @logits(%w: tensor<2x2xf32> {llmp.param = "l.wq", llmp.offset = 0 : i64}) -> tensor<2x2xf32> {
    return %w : tensor<2x2xf32>
  }
}
