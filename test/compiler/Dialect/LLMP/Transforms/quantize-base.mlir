// RUN: llmp-opt %s --llmp-apply-lora="rank=2 targets=wq" --llmp-quantize-base | FileCheck %s
// RUN: llmp-opt %s --llmp-apply-lora="rank=2 targets=wq" --llmp-quantize-base --llmp-grad-phase | FileCheck %s --check-prefix=GRAD

// A tiny model: embed (5 x 4, read by llmp.embedding: stays fp32), wq [4, 6] and the head
// wo [5, 6] (used transposed): both linear, both NF4. Byte counts by hand (block 64, double
// quantization): 24 weights -> 12 code bytes, 1 absmax code, the scale at align4(13) = 16,
// the offset at 20: 24 bytes; 30 weights -> 15 + 1, scale at 16, offset at 20: 24 bytes.
// Offsets: embed 80 bytes at 0, wq at 128, wo at 192, frozen_bytes 216.
// CHECK-LABEL: module attributes {llmp.frozen_bytes = 216 : i64
// CHECK: func.func @loss(%[[E:.+]]: tensor<5x4xf32> {llmp.byte_offset = 0 : i64, llmp.frozen, llmp.param = "embed"},
// CHECK-SAME: %[[WQ:.+]]: tensor<24xi8> {llmp.byte_offset = 128 : i64, llmp.frozen, llmp.nf4 = {block = 64 : i64, double_quant = true}, llmp.param = "l.wq"},
// CHECK-SAME: %[[WO:.+]]: tensor<24xi8> {llmp.byte_offset = 192 : i64, llmp.frozen, llmp.nf4 = {block = 64 : i64, double_quant = true}, llmp.param = "l.wo"},
// CHECK-SAME: %[[A:.+]]: tensor<2x4xf32> {{.+}}"l.wq.lora_A"
// CHECK: %[[Y:.+]] = llmp.matmul_nf4 %{{.+}}, %[[WQ]] {block = 64 : i64, cols = 6 : i64, double_quant, rows = 4 : i64} : (tensor<3x4xf32>, tensor<24xi8>) -> tensor<3x6xf32>
// CHECK: llmp.matmul %{{.+}}, %[[A]] {transpose_b}
// CHECK: llmp.matmul_nf4 %{{.+}}, %[[WO]] {block = 64 : i64, cols = 6 : i64, double_quant, rows = 5 : i64, transpose_b} : (tensor<3x6xf32>, tensor<24xi8>) -> tensor<3x5xf32>
// CHECK-NOT: llmp.matmul %{{.+}}, %[[WQ]]
//
// The gradient phase: the adapters get gradients through the NF4 head's input gradient
// (matmul_nf4 with transpose_b flipped); the blobs get none.
// GRAD-LABEL: func.func private @loss_grad
// GRAD-SAME: -> (tensor<f32>, tensor<2x4xf32>, tensor<6x2xf32>)
// GRAD: llmp.matmul_nf4 %{{.+}}, %{{.+}} {block = 64 : i64, cols = 6 : i64, double_quant, rows = 5 : i64} : (tensor<3x5xf32>, tensor<24xi8>) -> tensor<3x6xf32>
module attributes {llmp.num_params = 80 : i64} {
  func.func @loss(%e: tensor<5x4xf32> {llmp.param = "embed", llmp.offset = 0 : i64},
                  %w: tensor<4x6xf32> {llmp.param = "l.wq", llmp.offset = 20 : i64, llmp.decay},
                  %o: tensor<5x6xf32> {llmp.param = "l.wo", llmp.offset = 44 : i64, llmp.decay},
                  %tokens: tensor<1x3xi32>, %targets: tensor<1x3xi32>) -> tensor<f32> attributes {llmp.differentiate} {
    %x = llmp.embedding %e, %tokens : (tensor<5x4xf32>, tensor<1x3xi32>) -> tensor<1x3x4xf32>
    %x2 = llmp.reshape %x : (tensor<1x3x4xf32>) -> tensor<3x4xf32>
    %y = llmp.matmul %x2, %w : (tensor<3x4xf32>, tensor<4x6xf32>) -> tensor<3x6xf32>
    %z = llmp.matmul %y, %o {transpose_b} : (tensor<3x6xf32>, tensor<5x6xf32>) -> tensor<3x5xf32>
    %z3 = llmp.reshape %z : (tensor<3x5xf32>) -> tensor<1x3x5xf32>
    %l = llmp.cross_entropy %z3, %targets : (tensor<1x3x5xf32>, tensor<1x3xi32>) -> tensor<1x3xf32>
    %m = llmp.target_mean %l, %targets : (tensor<1x3xf32>, tensor<1x3xi32>) -> tensor<f32>
    return %m : tensor<f32>
  }
}
