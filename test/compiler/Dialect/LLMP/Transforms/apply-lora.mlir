// RUN: llmp-opt %s --llmp-apply-lora="rank=2 alpha=4 dropout=0.1 targets=wq" | FileCheck %s
// RUN: llmp-opt %s --llmp-apply-lora="rank=2 alpha=4 dropout=0.1 targets=wq" --llmp-grad-phase | FileCheck %s --check-prefix=GRAD
// RUN: llmp-opt %s --llmp-apply-lora="rank=4 alpha=4 rslora=true targets=layers.*.wq" | FileCheck %s --check-prefix=RS

// A tiny model: logits = embed[tokens] @ wq. Byte offsets by hand: embed is 5 x 8 fp32 =
// 160 bytes at 0, wq starts at the next multiple of 64, 192, and ends at 352, so the frozen
// buffer is 384 bytes. The adapters of wq [8, 5]: lora_A [2, 8] at 0, lora_B [5, 2] at 16,
// 26 trainable elements. scale = alpha / rank = 2.
module attributes {llmp.num_params = 80 : i64} {
  func.func @loss(%embed: tensor<5x8xf32> {llmp.param = "embed", llmp.offset = 0 : i64},
                  %wq: tensor<8x5xf32> {llmp.param = "layers.0.wq", llmp.offset = 40 : i64, llmp.decay},
                  %tokens: tensor<1x3xi32>, %targets: tensor<1x3xi32>) -> tensor<f32>
      attributes {llmp.differentiate} {
    %e = llmp.embedding %embed, %tokens : (tensor<5x8xf32>, tensor<1x3xi32>) -> tensor<1x3x8xf32>
    %h = llmp.reshape %e : (tensor<1x3x8xf32>) -> tensor<3x8xf32>
    %y = llmp.matmul %h, %wq : (tensor<3x8xf32>, tensor<8x5xf32>) -> tensor<3x5xf32> loc("tiny.llmp":7:9)
    %l = llmp.reshape %y : (tensor<3x5xf32>) -> tensor<1x3x5xf32>
    %ce = llmp.cross_entropy %l, %targets : (tensor<1x3x5xf32>, tensor<1x3xi32>) -> tensor<1x3xf32>
    %m = llmp.target_mean %ce, %targets : (tensor<1x3xf32>, tensor<1x3xi32>) -> tensor<f32>
    return %m : tensor<f32>
  }
  func.func @logits(%embed: tensor<5x8xf32> {llmp.param = "embed", llmp.offset = 0 : i64},
                    %wq: tensor<8x5xf32> {llmp.param = "layers.0.wq", llmp.offset = 40 : i64, llmp.decay},
                    %tokens: tensor<1x3xi32>) -> tensor<1x3x5xf32> {
    %e = llmp.embedding %embed, %tokens : (tensor<5x8xf32>, tensor<1x3xi32>) -> tensor<1x3x8xf32>
    %h = llmp.reshape %e : (tensor<1x3x8xf32>) -> tensor<3x8xf32>
    %y = llmp.matmul %h, %wq : (tensor<3x8xf32>, tensor<8x5xf32>) -> tensor<3x5xf32>
    %l = llmp.reshape %y : (tensor<3x5xf32>) -> tensor<1x3x5xf32>
    return %l : tensor<1x3x5xf32>
  }
}

// CHECK: module attributes {llmp.frozen_bytes = 384 : i64, llmp.lora = {alpha = 4.000000e+00 : f64, dropout = 1.000000e-01 : f64, rank = 2 : i64, scale = 2.000000e+00 : f64}, llmp.num_params = 26 : i64}
// CHECK-LABEL: func.func @loss(
// CHECK-SAME: %{{.+}}: tensor<5x8xf32> {llmp.byte_offset = 0 : i64, llmp.frozen, llmp.param = "embed"}
// CHECK-SAME: %[[W:.+]]: tensor<8x5xf32> {llmp.byte_offset = 192 : i64, llmp.frozen, llmp.param = "layers.0.wq"}
// CHECK-SAME: %[[A:.+]]: tensor<2x8xf32> {llmp.decay, llmp.offset = 0 : i64, llmp.param = "layers.0.wq.lora_A"}
// CHECK-SAME: %[[B:.+]]: tensor<5x2xf32> {llmp.decay, llmp.offset = 16 : i64, llmp.param = "layers.0.wq.lora_B"}
// CHECK-SAME: %{{.+}}: tensor<1x3xi32>, %{{.+}}: tensor<1x3xi32>, %[[KEY:.+]]: tensor<2xi32> {llmp.rng})
// CHECK: %[[H:.+]] = llmp.reshape
// CHECK: %[[Y:.+]] = llmp.matmul %[[H]], %[[W]] :
// CHECK: %[[D:.+]] = llmp.dropout %[[H]], %[[KEY]] {p = 1.000000e-01 : f32, seed = {{-?[0-9]+}} : i64}
// CHECK: %[[U:.+]] = llmp.matmul %[[D]], %[[A]] {transpose_b} : (tensor<3x8xf32>, tensor<2x8xf32>) -> tensor<3x2xf32>
// CHECK: %[[S:.+]] = arith.constant dense<2.000000e+00> : tensor<3x2xf32>
// CHECK: %[[US:.+]] = llmp.mul %[[U]], %[[S]]
// CHECK: %[[V:.+]] = llmp.matmul %[[US]], %[[B]] {transpose_b} : (tensor<3x2xf32>, tensor<5x2xf32>) -> tensor<3x5xf32>
// CHECK: %[[Z:.+]] = llmp.add %[[Y]], %[[V]]
// CHECK: llmp.reshape %[[Z]]
// @logits gets the same parameters but no dropout and no key.
// CHECK-LABEL: func.func @logits(
// CHECK-SAME: {llmp.byte_offset = 192 : i64, llmp.frozen, llmp.param = "layers.0.wq"}
// CHECK-SAME: {llmp.decay, llmp.offset = 16 : i64, llmp.param = "layers.0.wq.lora_B"}, %{{.+}}: tensor<1x3xi32>) -> tensor<1x3x5xf32>
// CHECK-NOT: llmp.dropout
// CHECK: llmp.matmul %{{.+}}, %{{.+}} {transpose_b}

// After autodiff and the step builder: @loss_grad returns the loss and the gradients of
// lora_A and lora_B only (none for the frozen embed and wq); the steps take the 384-byte
// frozen buffer after the trainable buffers and view embed and wq from it; grad_step builds
// the dropout key from hyper[6] (step) and hyper[8] (micro-batch); eval_step and
// logits_step run without dropout.
// GRAD-LABEL: func.func private @loss_grad(
// GRAD-SAME: -> (tensor<f32>, tensor<2x8xf32>, tensor<5x2xf32>)
// GRAD-NOT: llmp.embedding_grad
// GRAD-LABEL: func.func @grad_step
// GRAD-SAME: (%[[P:.+]]: memref<26xf32>, %[[G:.+]]: memref<26xf32>, %[[F:.+]]: memref<384xi8>, %{{.+}}: memref<1x3xi32>, %{{.+}}: memref<1x3xi32>, %[[H:.+]]: memref<9xf32>, %{{.+}}: memref<4xf32>)
// GRAD-DAG: memref.view %[[F]][%{{.+}}][] : memref<384xi8> to memref<5x8xf32>
// GRAD-DAG: memref.view %[[F]][%{{.+}}][] : memref<384xi8> to memref<8x5xf32>
// GRAD-DAG: memref.load %[[H]][%c6]
// GRAD-DAG: memref.load %[[H]][%c8]
// GRAD: llmp.dropout
// GRAD-NOT: llmp.embedding_grad
// GRAD-LABEL: func.func @apply_step
// GRAD-SAME: (%{{.+}}: memref<26xf32>, %{{.+}}: memref<26xf32>, %{{.+}}: memref<26xf32>, %{{.+}}: memref<26xf32>, %{{.+}}: memref<9xf32>, %{{.+}}: memref<4xf32>)
// GRAD-LABEL: func.func @eval_step
// GRAD-SAME: (%{{.+}}: memref<26xf32>, %{{.+}}: memref<384xi8>, %{{.+}}: memref<1x3xi32>, %{{.+}}: memref<1x3xi32>, %{{.+}}: memref<4xf32>)
// GRAD-NOT: llmp.dropout
// GRAD-LABEL: func.func @logits_step
// GRAD-SAME: (%{{.+}}: memref<26xf32>, %{{.+}}: memref<384xi8>, %{{.+}}: memref<1x3xi32>, %{{.+}}: memref<1x3x5xf32>)
// GRAD-NOT: llmp.dropout

// RS: llmp.lora = {alpha = 4.000000e+00 : f64, dropout = 0.000000e+00 : f64, rank = 4 : i64, scale = 2.000000e+00 : f64}
// RS-NOT: llmp.dropout
// RS-NOT: llmp.rng
