// SPDX-License-Identifier: Apache-2.0
/// Passes on the llmp dialect: `llmp-autodiff` and `llmp-build-steps`.
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

/// Adds `<name>_grad` for every function of `module` marked `llmp.differentiate`.
/// Emits a diagnostic and fails on an op without a gradient rule on a gradient path.
LogicalResult differentiateModule(ModuleOp module);
} // namespace mlir::llmp
