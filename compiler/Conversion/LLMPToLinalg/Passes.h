// SPDX-License-Identifier: Apache-2.0
/// Passes of the llmp -> linalg conversion (`llmp-lower-to-linalg`).
#pragma once

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace mlir::llmp {
#define GEN_PASS_DECL
#include "compiler/Conversion/LLMPToLinalg/Passes.h.inc"
#define GEN_PASS_REGISTRATION
#include "compiler/Conversion/LLMPToLinalg/Passes.h.inc"
} // namespace mlir::llmp
