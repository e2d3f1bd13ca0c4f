// SPDX-License-Identifier: Apache-2.0
/// In-process compilation of an LLVM-dialect module to host code (ORC JIT at -O3 for the
/// host CPU), with the kernels/cpu symbols registered, and lookup of the step functions.
/// Each step function is compiled as its own LLVM module, the modules on several threads.
#pragma once

#include "runtime/StepABI.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Support/Timing.h"
#include "llvm/Support/Error.h"

#include <memory>
#include <vector>

namespace mlir {
class ExecutionEngine;
} // namespace mlir

namespace mlir::llmp {

/// How JitModule::create compiles.
struct JitOptions {
  /// Threads that run LLVM's -O3 pipeline and code generation, one LLVM module (a step
  /// function with its `_mlir_ciface_` wrapper) at a time; 0: the hardware threads.
  /// 1 compiles the whole module as one, as mlir::ExecutionEngine alone does.
  unsigned threads = 0;
  /// With a scope, the phases' wall times are recorded under it: translation to LLVM IR,
  /// and per module the -O3 pipeline ("opt") and instruction selection to machine code
  /// ("codegen"); the modules' scopes overlap in time when compiled in parallel.
  mlir::TimingScope *timing = nullptr;
};

/// A JIT-compiled module. Owns the generated code; function pointers stay valid while it lives.
class JitModule {
public:
  /// Compiles `module`, which must be in the LLVM dialect (Phase::LLVM) and whose context
  /// has the LLVM IR translations registered (registerLLMPDialects). With one thread its
  /// `omp.parallel` regions are moved into functions of their own in place (see JIT.cpp:
  /// translation cost); the module may be destroyed afterwards. Returns an error if translation or code generation fails.
  /// Sets flush-to-zero / denormals-are-zero on the calling thread and the OpenMP pool
  /// (kernels/cpu/FloatEnv.h): call the step functions from this thread. The generated
  /// loops and GEMMs use OMP_NUM_THREADS threads (default: the cores).
  /// All functions are compiled before it returns (`options.threads` at a time).
  static llvm::Expected<std::unique_ptr<JitModule>> create(mlir::ModuleOp module,
                                                           const JitOptions &options = {});
  /// Compiles several such modules (e.g. a stage's training functions and its KV-cache
  /// inference functions, emitted separately) into one JitModule, their step functions
  /// scheduled on the threads together. Their public function names must be distinct.
  static llvm::Expected<std::unique_ptr<JitModule>>
  create(llvm::ArrayRef<mlir::ModuleOp> modules, const JitOptions &options = {});

  ~JitModule();
  JitModule(const JitModule &) = delete;
  JitModule &operator=(const JitModule &) = delete;

  /// The address of the symbol `name` (e.g. "_mlir_ciface_grad_step") in the first of the
  /// compiled modules that defines it, or an error if none does.
  llvm::Expected<void *> lookup(llvm::StringRef name) const;

  /// `_mlir_ciface_grad_step`, `_mlir_ciface_apply_step`, `_mlir_ciface_eval_step` and
  /// `_mlir_ciface_logits_step`;
  /// a function the module lacks is left null.
  lrt::StepFunctions stepFunctions() const;

private:
  JitModule() = default;
  /// One engine per compiled module (a step function each, or the whole module).
  std::vector<std::unique_ptr<mlir::ExecutionEngine>> engines;
};

} // namespace mlir::llmp
