// SPDX-License-Identifier: Apache-2.0
/// Passes of the linalg -> kernel-call conversion (`llmp-linalg-to-lrt`) and of CPU code
/// preparation (`llmp-duplicate-fills`, `llmp-fills-to-memset`, `llmp-approximate-math`,
/// `llmp-reassociate-reductions`, `llmp-parallelize-loops`, `llmp-finalize-memref-to-llvm`).
#pragma once

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace mlir::llmp {
#define GEN_PASS_DECL
#include "compiler/Conversion/LinalgToLRT/Passes.h.inc"
#define GEN_PASS_REGISTRATION
#include "compiler/Conversion/LinalgToLRT/Passes.h.inc"
} // namespace mlir::llmp
