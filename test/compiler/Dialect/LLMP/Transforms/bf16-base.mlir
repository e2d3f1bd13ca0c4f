// RUN: llmp-opt %s --llmp-apply-lora="rank=2 targets=wq" --llmp-bf16-base | FileCheck %s
// RUN: llmp-opt %s --llmp-apply-lora="rank=2 targets=wq" --llmp-bf16-base --llmp-grad-phase | FileCheck %s --check-prefix=GRAD

// A tiny model: embed (5 x 4, read by llmp.embedding: stays fp32), wq [4, 6] and the head
// wo [5, 6] (used transposed): both linear, both bf16; wt [6, 6], also used as a
// transposed lhs, stays fp32. Byte offsets by hand (64-byte aligned, argument order):
// embed 5*4*4 = 80 bytes at 0; wq 4*6*2 = 48 at 128; wo 5*6*2 = 60 at 192; wt 6*6*4 = 144
// at 256; frozen_bytes 400 (all fp32: 80, 96, 120, 144 at 0, 128, 256, 384 -> 528).
// CHECK-LABEL: module attributes {llmp.frozen_bytes = 400 : i64
// CHECK: func.func @loss(%[[E:.+]]: tensor<5x4xf32> {llmp.byte_offset = 0 : i64, llmp.frozen, llmp.param = "embed"},
// CHECK-SAME: %[[WQ:.+]]: tensor<4x6xbf16> {llmp.byte_offset = 128 : i64, llmp.frozen, llmp.param = "l.wq"},
// CHECK-SAME: %[[WO:.+]]: tensor<5x6xbf16> {llmp.byte_offset = 192 : i64, llmp.frozen, llmp.param = "l.wo"},
// CHECK-SAME: %[[WT:.+]]: tensor<6x6xf32> {llmp.byte_offset = 256 : i64, llmp.frozen, llmp.param = "l.wt"},
// CHECK-SAME: %[[A:.+]]: tensor<2x4xf32> {{.+}}"l.wq.lora_A"
// CHECK: llmp.matmul %{{.+}}, %[[WQ]] : (tensor<3x4xf32>, tensor<4x6xbf16>) -> tensor<3x6xf32>
// CHECK: llmp.matmul %{{.+}}, %[[A]] {transpose_b}
// CHECK: llmp.matmul %{{.+}}, %[[WT]] : (tensor<3x6xf32>, tensor<6x6xf32>) -> tensor<3x6xf32>
// CHECK: llmp.matmul %[[WT]], %{{.+}} {transpose_a, transpose_b}
// CHECK: llmp.matmul %{{.+}}, %[[WO]] {transpose_b} : (tensor<3x6xf32>, tensor<5x6xbf16>) -> tensor<3x5xf32>
//
// The gradient phase: the head's input gradient keeps wo as the rhs with transpose_b
// flipped (dx = dy W); wq's input (the frozen embedding's rows) needs none; the bf16
// weights get no gradient.
// GRAD-LABEL: func.func private @loss_grad
// GRAD-SAME: -> (tensor<f32>, tensor<2x4xf32>, tensor<6x2xf32>)
// GRAD: llmp.matmul %{{.+}}, %{{.+}} : (tensor<3x5xf32>, tensor<5x6xbf16>) -> tensor<3x6xf32>
// GRAD-NOT: -> tensor<4x6xbf16>
// GRAD-NOT: -> tensor<5x6xbf16>
module attributes {llmp.num_params = 110 : i64} {
  func.func @loss(%e: tensor<5x4xf32> {llmp.param = "embed", llmp.offset = 0 : i64},
                  %w: tensor<4x6xf32> {llmp.param = "l.wq", llmp.offset = 20 : i64, llmp.decay},
                  %o: tensor<5x6xf32> {llmp.param = "l.wo", llmp.offset = 44 : i64, llmp.decay},
                  %t: tensor<6x6xf32> {llmp.param = "l.wt", llmp.offset = 74 : i64, llmp.decay},
                  %tokens: tensor<1x3xi32>, %targets: tensor<1x3xi32>) -> tensor<f32> attributes {llmp.differentiate} {
    %x = llmp.embedding %e, %tokens : (tensor<5x4xf32>, tensor<1x3xi32>) -> tensor<1x3x4xf32>
    %x2 = llmp.reshape %x : (tensor<1x3x4xf32>) -> tensor<3x4xf32>
    %y = llmp.matmul %x2, %w : (tensor<3x4xf32>, tensor<4x6xf32>) -> tensor<3x6xf32>
    %y1 = llmp.matmul %y, %t : (tensor<3x6xf32>, tensor<6x6xf32>) -> tensor<3x6xf32>
    %y2 = llmp.matmul %t, %y1 {transpose_a, transpose_b} : (tensor<6x6xf32>, tensor<3x6xf32>) -> tensor<6x3xf32>
    %y3 = llmp.transpose %y2 : (tensor<6x3xf32>) -> tensor<3x6xf32>
    %z = llmp.matmul %y3, %o {transpose_b} : (tensor<3x6xf32>, tensor<5x6xf32>) -> tensor<3x5xf32>
    %z3 = llmp.reshape %z : (tensor<3x5xf32>) -> tensor<1x3x5xf32>
    %l = llmp.cross_entropy %z3, %targets : (tensor<1x3x5xf32>, tensor<1x3xi32>) -> tensor<1x3xf32>
    %m = llmp.target_mean %l, %targets : (tensor<1x3xf32>, tensor<1x3xi32>) -> tensor<f32>
    return %m : tensor<f32>
  }
}
