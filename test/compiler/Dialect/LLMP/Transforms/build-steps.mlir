// RUN: llmp-opt %s --split-input-file --verify-diagnostics --llmp-autodiff --llmp-build-steps | FileCheck %s

// Tests that grad/apply/eval/logits steps read parameters from flat-buffer slices, seed
// the backward pass with hyper[7] (the gradient scale), add the gradients into `grads`,
// count the targets that are not -100, and update decayed and plain runs of parameters
// separately.
// CHECK-LABEL: func.func private @loss(
// CHECK-LABEL: func.func private @loss_grad(
// CHECK-LABEL: func.func private @logits(
// CHECK-LABEL: func.func @grad_step
// CHECK-SAME: (%[[P:.+]]: memref<14xf32>, %[[G:.+]]: memref<14xf32>, %{{.+}}: memref<1x2xi32>, %[[TGT:.+]]: memref<1x2xi32>, %[[H:.+]]: memref<9xf32>, %[[MET:.+]]: memref<4xf32>)
// CHECK-SAME: attributes {llvm.emit_c_interface}
// CHECK: %[[W:.+]] = memref.subview %[[P]][0] [6] [1]
// CHECK: %[[WS:.+]] = memref.expand_shape %[[W]] {{\[\[}}0, 1]] output_shape [2, 3]
// CHECK: bufferization.to_tensor %[[WS]] restrict
// CHECK: %[[B:.+]] = memref.subview %[[P]][6] [2] [1]
// CHECK: bufferization.to_tensor %[[B]] restrict
// CHECK: %[[TT:.+]] = bufferization.to_tensor %[[TGT]] restrict
// CHECK: %[[SCALE:.+]] = memref.load %[[H]][%{{.+}}]
// CHECK: %[[SEED:.+]] = tensor.from_elements %[[SCALE]] : tensor<f32>
// The gradients' slices are viewed before the backward pass (llmp-accumulate-into-matmul
// may let a product accumulate into one where the product is).
// CHECK: %[[GW:.+]] = memref.subview %[[G]][0] [6] [1]
// CHECK: %[[GWS:.+]] = memref.expand_shape %[[GW]]
// CHECK: %[[OLD:.+]] = bufferization.to_tensor %[[GWS]] restrict writable
// CHECK: llmp.mean
// CHECK: %[[DW:.+]] = llmp.splat %[[SEED]]
// CHECK: %[[SUM:.+]] = linalg.generic {{.*}} ins(%[[DW]] : tensor<2x3xf32>) outs(%[[OLD]] : tensor<2x3xf32>)
// CHECK: arith.addf
// CHECK: bufferization.materialize_in_destination %[[SUM]] in restrict writable %[[GWS]]
// CHECK: memref.store %{{.+}}, %[[MET]][%{{.+}}]
// CHECK: linalg.generic {{.*}} ins(%[[TT]] : tensor<1x2xi32>)
// CHECK: arith.constant -100 : i32
// CHECK: arith.cmpi ne
// CHECK: memref.store %{{.+}}, %[[MET]][%{{.+}}]
// CHECK-LABEL: func.func @apply_step
// CHECK-SAME: (%[[AP:.+]]: memref<14xf32>, %[[AG:.+]]: memref<14xf32>, %{{.+}}: memref<14xf32>, %{{.+}}: memref<14xf32>, %{{.+}}: memref<9xf32>, %[[AMET:.+]]: memref<4xf32>)
// The three slices (w, b, e) follow each other: one reduction over all 14 gradients.
// CHECK: %[[AGALL:.+]] = memref.subview %[[AG]][0] [14] [1]
// CHECK: %[[AGT:.+]] = bufferization.to_tensor %[[AGALL]]
// CHECK: linalg.generic {{.*}} iterator_types = ["reduction"]} ins(%[[AGT]] : tensor<14xf32>)
// CHECK-NOT: linalg.generic
// CHECK: %[[NORM:.+]] = math.sqrt
// CHECK: memref.store %[[NORM]], %[[AMET]][%{{.+}}]
// CHECK: math.powf
// CHECK: %[[P0:.+]] = memref.subview %[[AP]][0] [6] [1]
// CHECK: linalg.generic {{.*}} ins(%{{.+}} : memref<6xf32{{.*}}>) outs(%[[P0]], %{{.+}}, %{{.+}} :
// The decayed run (w) adds wd * p before scaling by lr.
// CHECK: arith.mulf %{{.+}}, %{{.+}} : f32
// CHECK: linalg.yield
// CHECK: %[[P1:.+]] = memref.subview %[[AP]][6] [8] [1]
// CHECK: linalg.generic {{.*}} outs(%[[P1]], %{{.+}}, %{{.+}} :
// CHECK-LABEL: func.func @eval_step
// CHECK-SAME: (%{{.+}}: memref<14xf32>, %{{.+}}: memref<1x2xi32>, %{{.+}}: memref<1x2xi32>, %{{.+}}: memref<4xf32>)
// CHECK-LABEL: func.func @logits_step
// CHECK-SAME: (%{{.+}}: memref<14xf32>, %{{.+}}: memref<1x2xi32>, %[[OUT:.+]]: memref<1x2x3xf32>)
// CHECK: llmp.reshape
// CHECK: bufferization.materialize_in_destination %{{.+}} in restrict writable %[[OUT]]
module attributes {llmp.num_params = 14 : i64} {
  func.func @loss(%w: tensor<2x3xf32> {llmp.param = "w", llmp.offset = 0 : i64, llmp.decay},
                  %b: tensor<2xf32> {llmp.param = "b", llmp.offset = 6 : i64},
                  %e: tensor<2x3xf32> {llmp.param = "e", llmp.offset = 8 : i64},
                  %tokens: tensor<1x2xi32>, %targets: tensor<1x2xi32>) -> tensor<f32> attributes {llmp.differentiate} {
    %m = llmp.mean %w : (tensor<2x3xf32>) -> tensor<f32>
    return %m : tensor<f32>
  }
  func.func @logits(%w: tensor<2x3xf32> {llmp.param = "w", llmp.offset = 0 : i64, llmp.decay},
                    %tokens: tensor<1x2xi32>) -> tensor<1x2x3xf32> {
    %r = llmp.reshape %w : (tensor<2x3xf32>) -> tensor<1x2x3xf32>
    return %r : tensor<1x2x3xf32>
  }
}

// -----

// Tests that apply_step's squared gradient norm has one reduction per run of contiguous
// slices (whatever their decay flags) and reads no gap between runs: a is [0, 4), b is
// [4, 6), c is [8, 10) (elements 6 and 7 belong to no parameter), so [0, 6) and [8, 10);
// AdamW runs split by decay as well: [0, 4), [4, 6), [8, 10).
// CHECK-LABEL: func.func @apply_step
// CHECK-SAME: (%[[P:[^:]+]]: memref<10xf32>, %[[G:[^:]+]]: memref<10xf32>,
// CHECK: %[[G0:.+]] = memref.subview %[[G]][0] [6] [1]
// CHECK: %[[T0:.+]] = bufferization.to_tensor %[[G0]]
// CHECK: linalg.generic {{.*}} iterator_types = ["reduction"]} ins(%[[T0]] : tensor<6xf32>)
// CHECK: %[[G1:.+]] = memref.subview %[[G]][8] [2] [1]
// CHECK: %[[T1:.+]] = bufferization.to_tensor %[[G1]]
// CHECK: linalg.generic {{.*}} iterator_types = ["reduction"]} ins(%[[T1]] : tensor<2xf32>)
// CHECK-NOT: iterator_types = ["reduction"]
// CHECK: math.sqrt
// CHECK: memref.subview %[[P]][0] [4] [1]
// CHECK: linalg.generic
// CHECK: memref.subview %[[P]][4] [2] [1]
// CHECK: linalg.generic
// CHECK: memref.subview %[[P]][8] [2] [1]
// CHECK: linalg.generic
// CHECK-NOT: linalg.generic
// CHECK-LABEL: func.func @eval_step
module attributes {llmp.num_params = 10 : i64} {
  func.func @loss(%c: tensor<2xf32> {llmp.param = "c", llmp.offset = 8 : i64},
                  %a: tensor<2x2xf32> {llmp.param = "a", llmp.offset = 0 : i64, llmp.decay},
                  %b: tensor<2xf32> {llmp.param = "b", llmp.offset = 4 : i64},
                  %tokens: tensor<1x2xi32>, %targets: tensor<1x2xi32>) -> tensor<f32> attributes {llmp.differentiate} {
    %ma = llmp.mean %a : (tensor<2x2xf32>) -> tensor<f32>
    %mb = llmp.mean %b : (tensor<2xf32>) -> tensor<f32>
    %mc = llmp.mean %c : (tensor<2xf32>) -> tensor<f32>
    %s = llmp.add %ma, %mb : (tensor<f32>, tensor<f32>) -> tensor<f32>
    %l = llmp.add %s, %mc : (tensor<f32>, tensor<f32>) -> tensor<f32>
    return %l : tensor<f32>
  }
}

// -----

// Tests that the buffer size is required.
// expected-error@+1 {{'builtin.module' op expected an llmp.num_params attribute}}
module {
}

// -----

// Tests that a parameter must lie inside the flat buffer.
module attributes {llmp.num_params = 4 : i64} {
  // expected-error@+1 {{'func.func' op expected parameter argument 0 inside [0, 4) but found offset 2 with 6 elements}}
  func.func @loss(%w: tensor<2x3xf32> {llmp.param = "w", llmp.offset = 2 : i64},
                  %tokens: tensor<1x2xi32>, %targets: tensor<1x2xi32>) -> tensor<f32> attributes {llmp.differentiate} {
    %m = llmp.mean %w : (tensor<2x3xf32>) -> tensor<f32>
    return %m : tensor<f32>
  }
}
