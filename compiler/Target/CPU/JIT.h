// SPDX-License-Identifier: Apache-2.0
/// In-process compilation of an LLVM-dialect module to host code (ORC JIT at -O3 for the
/// host CPU), with the kernels/cpu symbols registered, and lookup of the step functions.
#pragma once

#include "runtime/StepABI.h"

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/Error.h"

#include <memory>

namespace mlir {
class ExecutionEngine;
} // namespace mlir

namespace mlir::llmp {

/// A JIT-compiled module. Owns the generated code; function pointers stay valid while it lives.
class JitModule {
public:
  /// Compiles `module`, which must be in the LLVM dialect (Phase::LLVM) and whose context
  /// has the LLVM IR translations registered (registerLLMPDialects). The module may be
  /// destroyed afterwards. Returns an error if translation or code generation fails.
  /// Sets flush-to-zero / denormals-are-zero on the calling thread and the OpenMP pool
  /// (kernels/cpu/FloatEnv.h): call the step functions from this thread. The generated
  /// loops and GEMMs use OMP_NUM_THREADS threads (default: the cores).
  static llvm::Expected<std::unique_ptr<JitModule>> create(mlir::ModuleOp module);

  ~JitModule();
  JitModule(const JitModule &) = delete;
  JitModule &operator=(const JitModule &) = delete;

  /// The address of the symbol `name` (e.g. "_mlir_ciface_grad_step"), or an error if it
  /// is not defined.
  llvm::Expected<void *> lookup(llvm::StringRef name) const;

  /// `_mlir_ciface_grad_step`, `_mlir_ciface_apply_step`, `_mlir_ciface_eval_step` and
  /// `_mlir_ciface_logits_step`;
  /// a function the module lacks is left null.
  lrt::StepFunctions stepFunctions() const;

private:
  explicit JitModule(std::unique_ptr<mlir::ExecutionEngine> engine);
  std::unique_ptr<mlir::ExecutionEngine> engine;
};

} // namespace mlir::llmp
