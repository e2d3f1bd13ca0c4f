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
// CHECK: llmp.mean
// CHECK: %[[DW:.+]] = llmp.splat %[[SEED]]
// CHECK: %[[GW:.+]] = memref.subview %[[G]][0] [6] [1]
// CHECK: %[[GWS:.+]] = memref.expand_shape %[[GW]]
// CHECK: %[[OLD:.+]] = bufferization.to_tensor %[[GWS]] restrict writable
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
