// RUN: llmp-opt %s --llmp-grad-phase --llmp-linalg-phase --one-shot-bufferize="bufferize-function-boundaries function-boundary-type-conversion=identity-layout-map" | FileCheck %s

// Tests that a training step holds one (B,T,V) buffer for cross-entropy: the logits'
// (6x32, the LM head's product). Their gradient (softmax - onehot) * dy is written over
// them in place after the forward's log-sum-exp and gather have read them, and the
// probabilities never exist as a tensor of their own (no 2x3x32 or second 6x32 buffer).
// The log-sum-exp's per-lane partials (2x3x16) are the only other logits-sized work.
// CHECK-LABEL: func.func @grad_step
// CHECK-NOT: memref<2x3x32xf32>
// CHECK: memref.alloc() {{.*}}: memref<6x32xf32>
// CHECK-NOT: memref.alloc() {{.*}}: memref<{{6x32|2x3x32}}xf32>
// CHECK-LABEL: func.func @apply_step
module attributes {llmp.num_params = 256 : i64} {
  func.func @loss(%embed: tensor<32x4xf32> {llmp.param = "embed", llmp.offset = 0 : i64},
                  %w: tensor<4x32xf32> {llmp.param = "w", llmp.offset = 128 : i64, llmp.decay},
                  %tokens: tensor<2x3xi32>, %targets: tensor<2x3xi32>) -> tensor<f32> attributes {llmp.differentiate} {
    %x = llmp.embedding %embed, %tokens : (tensor<32x4xf32>, tensor<2x3xi32>) -> tensor<2x3x4xf32>
    %x2 = llmp.reshape %x : (tensor<2x3x4xf32>) -> tensor<6x4xf32>
    %l = llmp.matmul %x2, %w : (tensor<6x4xf32>, tensor<4x32xf32>) -> tensor<6x32xf32>
    %l3 = llmp.reshape %l : (tensor<6x32xf32>) -> tensor<2x3x32xf32>
    %ce = llmp.cross_entropy %l3, %targets : (tensor<2x3x32xf32>, tensor<2x3xi32>) -> tensor<2x3xf32>
    %m = llmp.target_mean %ce, %targets : (tensor<2x3xf32>, tensor<2x3xi32>) -> tensor<f32>
    return %m : tensor<f32>
  }
}
