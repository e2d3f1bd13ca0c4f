// SPDX-License-Identifier: Apache-2.0
/// The compiler's phases, in order: each names the IR level a module is at.
#pragma once

#include "llvm/ADT/StringRef.h"

#include <optional>

namespace mlir::llmp {

/// Compiler phases, from the parsed source to the LLVM dialect.
enum class Phase {
  AST,    ///< the checked .llmp syntax tree (lang/)
  LLMP,   ///< llmp dialect: @loss / @logits as the frontend emits them
  Grad,   ///< after llmp-autodiff + llmp-build-steps: train/eval/logits steps on llmp ops
  Linalg, ///< linalg, tensor, arith, math on tensors, fused (before bufferization)
  LLVM,   ///< the LLVM dialect, ready for the JIT
};

/// The phase's flag name (`ast`, `llmp`, `grad`, `linalg`, `llvm`).
llvm::StringRef phaseName(Phase phase);
/// A one-line description of the phase.
llvm::StringRef phaseDescription(Phase phase);
/// The phase named `name`, or nothing for an unknown name.
std::optional<Phase> parsePhase(llvm::StringRef name);

} // namespace mlir::llmp
