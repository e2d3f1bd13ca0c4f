// SPDX-License-Identifier: Apache-2.0
/// Transformation passes on the llmp dialect.
#ifndef LLMP_TRANSFORMS_PASSES_TD
#define LLMP_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def LLMPAutodiff : Pass<"llmp-autodiff", "ModuleOp"> {
  let summary = "Reverse-mode differentiation of functions marked llmp.differentiate";
  let description = [{
    For each `func.func @f` with the unit attribute `llmp.differentiate` that returns one
    `tensor<f32>`, adds `@f_grad` with the same arguments that returns the loss followed by
    the gradient of every argument carrying `llmp.param`, in argument order. Gradients come
    from `DifferentiableOpInterface::buildGradients`, visited in reverse program order;
    values used several times get their gradients summed with `llmp.add`. Parameters
    without a gradient path get zeros.

    Before:
    ```mlir
    func.func @f(%w: tensor<4xf32> {llmp.param = "w"}) -> tensor<f32> attributes {llmp.differentiate} {
      %m = llmp.mean %w : (tensor<4xf32>) -> tensor<f32>
      return %m : tensor<f32>
    }
    ```
    After (added):
    ```mlir
    func.func @f_grad(%w: tensor<4xf32> {llmp.param = "w"}) -> (tensor<f32>, tensor<4xf32>) {
      %m = llmp.mean %w : (tensor<4xf32>) -> tensor<f32>
      %one = arith.constant dense<1.0> : tensor<f32>
      %g = llmp.splat %one {scale = 2.5e-01 : f32} : (tensor<f32>) -> tensor<4xf32>
      return %m, %g : tensor<f32>, tensor<4xf32>
    }
    ```
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect", "::mlir::llmp::LLMPDialect"];
}

def LLMPBuildSteps : Pass<"llmp-build-steps", "ModuleOp"> {
  let summary = "Build the train/eval/logits step functions over flat buffers";
  let description = [{
    From `@loss`, `@loss_grad` (see `llmp-autodiff`) and `@logits`, builds the C-ABI entry
    points of runtime/StepABI.h: `train_step` (loss, gradients, global gradient norm,
    clipping and an in-place bias-corrected AdamW update over the flat `params`, `m`, `v`
    buffers), `eval_step` (loss) and `logits_step` (logits), each with
    `llvm.emit_c_interface`. Parameter `i` is the slice at its `llmp.offset` of the flat
    `memref<Nxf32>` (N = module attribute `llmp.num_params`), viewed with its tensor shape.
    `@loss`, `@loss_grad` and `@logits` become private, their bodies cloned into the steps.

    After (sketch):
    ```mlir
    func.func @train_step(%params: memref<Nxf32>, %grads: memref<Nxf32>, %m: memref<Nxf32>,
        %v: memref<Nxf32>, %tokens: memref<BxTxi32>, %targets: memref<BxTxi32>,
        %hyper: memref<8xf32>, %metrics: memref<4xf32>) attributes {llvm.emit_c_interface}
    ```
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::bufferization::BufferizationDialect",
    "::mlir::linalg::LinalgDialect", "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect", "::mlir::tensor::TensorDialect"
  ];
}

#endif
