// RUN: llmp-opt %s --split-input-file --llmp-autodiff --llmp-recompute | FileCheck %s

// Tests `recompute: layers`: in @loss_grad each layer's forward is cloned (from a copy of
// its input) just before its backward, layer 1's before layer 0's, and the backward reads
// the clones; the checkpoint x1 (layer 0's output) is read as it is.
// CHECK-LABEL: func.func @loss_grad
// CHECK: %[[X1:.+]] = llmp.add %{{.+}}, %{{.+}} {llmp.layer = 0 : i64}
// CHECK: arith.constant {llmp.seed}
// CHECK: %[[C1:.+]] = bufferization.alloc_tensor() copy(%[[X1]])
// CHECK-NEXT: %[[A1:.+]] = llmp.matmul %[[C1]], %{{.+}} {llmp.layer = 1 : i64, llmp.recompute = 1 : i64}
// CHECK-NEXT: %[[H1:.+]] = llmp.silu %[[A1]] {llmp.layer = 1 : i64, llmp.recompute = 1 : i64}
// CHECK-NEXT: llmp.add %[[C1]], %[[H1]] {llmp.layer = 1 : i64, llmp.recompute = 1 : i64}
// CHECK-NEXT: llmp.silu_grad %[[A1]], %{{.+}}
// CHECK: llmp.matmul %[[X1]], %{{.+}} {transpose_a}
// CHECK: %[[C0:.+]] = bufferization.alloc_tensor() copy(%{{.+}})
// CHECK-NEXT: %[[A0:.+]] = llmp.matmul %[[C0]], %{{.+}} {llmp.layer = 0 : i64, llmp.recompute = 0 : i64}
// CHECK: llmp.silu_grad %[[A0]], %{{.+}}
// CHECK: return
module attributes {llmp.recompute = "layers"} {
  func.func @loss(%w0: tensor<4x4xf32> {llmp.param = "w0"}, %w1: tensor<4x4xf32> {llmp.param = "w1"},
                  %x: tensor<4x4xf32>) -> tensor<f32> attributes {llmp.differentiate} {
    %e = llmp.add %x, %x : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
    %a0 = llmp.matmul %e, %w0 {llmp.layer = 0 : i64} : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
    %h0 = llmp.silu %a0 {llmp.layer = 0 : i64} : (tensor<4x4xf32>) -> tensor<4x4xf32>
    %x1 = llmp.add %e, %h0 {llmp.layer = 0 : i64} : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
    %a1 = llmp.matmul %x1, %w1 {llmp.layer = 1 : i64} : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
    %h1 = llmp.silu %a1 {llmp.layer = 1 : i64} : (tensor<4x4xf32>) -> tensor<4x4xf32>
    %x2 = llmp.add %x1, %h1 {llmp.layer = 1 : i64} : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
    %l = llmp.mean %x2 : (tensor<4x4xf32>) -> tensor<f32>
    return %l : tensor<f32>
  }
}

// -----

// Tests `recompute: attention`: only the layer's ops up to its attention and the reshape
// of its output are cloned (the q projection, attention), before the first backward use of
// one of their results (the output projection's weight gradient reads the reshaped
// attention output); the MLP's silu stays saved.
// CHECK-LABEL: func.func @loss_grad
// CHECK: %[[P:.+]] = llmp.matmul %{{.+}}, %arg1 {llmp.layer = 0 : i64}
// CHECK: arith.constant {llmp.seed}
// CHECK: llmp.silu_grad %[[P]], %{{.+}}
// CHECK: bufferization.alloc_tensor() copy
// CHECK-NEXT: %[[Q:.+]] = llmp.matmul {{.+}} {llmp.layer = 0 : i64, llmp.recompute = 0 : i64}
// CHECK-NEXT: %[[Q3:.+]] = llmp.reshape %[[Q]] {llmp.layer = 0 : i64, llmp.recompute = 0 : i64}
// CHECK-NEXT: %[[O:.+]] = llmp.attention %[[Q3]], %[[Q3]], %[[Q3]] {causal, heads = 2 : i64, llmp.layer = 0 : i64, llmp.recompute = 0 : i64}
// CHECK-NEXT: %[[O2:.+]] = llmp.reshape %[[O]] {llmp.layer = 0 : i64, llmp.recompute = 0 : i64}
// CHECK-NOT: llmp.recompute
// CHECK: llmp.matmul %[[O2]], %{{.+}} {transpose_a}
// CHECK: llmp.attention_grad %[[Q3]], %[[Q3]], %[[Q3]]
// CHECK: return
module attributes {llmp.recompute = "attention"} {
  func.func @loss(%wq: tensor<8x8xf32> {llmp.param = "wq"}, %wo: tensor<8x8xf32> {llmp.param = "wo"},
                  %x: tensor<8x8xf32>) -> tensor<f32> attributes {llmp.differentiate} {
    %e = llmp.add %x, %x : (tensor<8x8xf32>, tensor<8x8xf32>) -> tensor<8x8xf32>
    %q = llmp.matmul %e, %wq {llmp.layer = 0 : i64} : (tensor<8x8xf32>, tensor<8x8xf32>) -> tensor<8x8xf32>
    %q3 = llmp.reshape %q {llmp.layer = 0 : i64} : (tensor<8x8xf32>) -> tensor<2x4x8xf32>
    %o = llmp.attention %q3, %q3, %q3 {causal, heads = 2 : i64, llmp.layer = 0 : i64} : (tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
    %o2 = llmp.reshape %o {llmp.layer = 0 : i64} : (tensor<2x4x8xf32>) -> tensor<8x8xf32>
    %p = llmp.matmul %o2, %wo {llmp.layer = 0 : i64} : (tensor<8x8xf32>, tensor<8x8xf32>) -> tensor<8x8xf32>
    %s = llmp.silu %p {llmp.layer = 0 : i64} : (tensor<8x8xf32>) -> tensor<8x8xf32>
    %l = llmp.mean %s : (tensor<8x8xf32>) -> tensor<f32>
    return %l : tensor<f32>
  }
}
