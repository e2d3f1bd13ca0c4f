// SPDX-License-Identifier: Apache-2.0
/// Passes on the llmp dialect: `llmp-apply-lora`, `llmp-autodiff` and `llmp-build-steps`.
#pragma once

#include "compiler/Dialect/LLMP/IR/LLMPOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace mlir::llmp {
#define GEN_PASS_DECL
#include "compiler/Dialect/LLMP/Transforms/Passes.h.inc"
#define GEN_PASS_REGISTRATION
#include "compiler/Dialect/LLMP/Transforms/Passes.h.inc"

/// The `llmp-apply-lora` rewrite (see its description in Passes.td) with `options`
/// (alpha 0 means alpha = rank). Emits a diagnostic and fails when a target matches no
/// parameter or no matmul weight, the rank is not positive, dropout is outside [0, 1), the
/// functions disagree on their parameters, or the module already has frozen parameters.
LogicalResult applyLora(ModuleOp module, const LLMPApplyLoraOptions &options);

/// The `llmp-quantize-base` rewrite (QLoRA's NF4 base; see Passes.td) with `options`.
/// Emits a diagnostic and fails when the module has no frozen parameters, no frozen linear
/// weight, or the block size is < 1.
LogicalResult quantizeBase(ModuleOp module, const LLMPQuantizeBaseOptions &options);

/// The `llmp-bf16-base` rewrite (a LoRA stage's frozen linear weights in bf16 under
/// `precision: bf16`; see Passes.td). Emits a diagnostic and fails when the module has no
/// frozen parameters; a module without frozen linear weights keeps its layout.
LogicalResult bf16Base(ModuleOp module);

/// Adds `<name>_grad` for every function of `module` marked `llmp.differentiate`.
/// Emits a diagnostic and fails on an op without a gradient rule on a gradient path.
LogicalResult differentiateModule(ModuleOp module);
} // namespace mlir::llmp
