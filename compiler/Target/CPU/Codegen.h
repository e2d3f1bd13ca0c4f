// SPDX-License-Identifier: Apache-2.0
/// What the JIT (JIT.h) and the ahead-of-time object writer (Object.h) share, so that both
/// produce the same machine code for a stage: the host TargetMachine, the split of an
/// LLVM-dialect module into one unit per step function, the IR rewrites before translation,
/// translation to LLVM IR with LLVM's -O3 pipeline, and the kernel symbols that generated
/// code calls.
#pragma once

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/Support/Error.h"

#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace llvm {
class LLVMContext;
class Module;
class TargetMachine;
} // namespace llvm

namespace mlir::llmp {

/// The TargetMachine both paths generate code with: the host's triple, CPU name and
/// features (llvm::orc::JITTargetMachineBuilder::detectHost), its default options and
/// code generation level (CodeGenOptLevel::Default, llc -O2), as JIT code: the large code
/// model and the static relocation model (an object file of it links into a non-PIE
/// executable).
/// Initialises the native target once. Returns an error if the host has no LLVM target.
llvm::Expected<std::unique_ptr<llvm::TargetMachine>> createHostTargetMachine();

/// One LLVM module to compile: a step function with its `_mlir_ciface_` wrapper (the
/// other entry functions only declared), or a whole module.
struct CodegenUnit {
  std::string name;               ///< the step function, or empty for a whole module
  mlir::ModuleOp source;          ///< the module it comes from
  mlir::OwningOpRef<mlir::ModuleOp> module; ///< its own module (null: all of `source`)
  size_t ops = 0;                 ///< its size in operations, to start the largest first

  /// The module to translate: `module`, else `source`.
  mlir::ModuleOp op() const { return module ? *module : source; }
};

/// The public functions with a body that are not `_mlir_ciface_` wrappers (the step
/// functions) of an LLVM-dialect module, in module order.
llvm::SmallVector<mlir::StringRef> entryFunctionNames(mlir::ModuleOp module);

/// Prepares LLVM-dialect `modules` (Phase::LLVM) for translation and returns the units to
/// compile: with `split` (and more than one step function in all) one unit per step
/// function, largest first, else one per module. Marks the step heap's allocation
/// functions `noalias` (they return fresh blocks, as malloc does) and moves each outermost
/// `omp.parallel` into a function of its own (see Codegen.cpp). Modifies `modules`.
std::vector<CodegenUnit> prepareCodegenUnits(llvm::ArrayRef<mlir::ModuleOp> modules, bool split);

/// Translates `unit` to LLVM IR in `context` (under `translateMutex`: translation reads the
/// MLIR context, which is not thread-safe), sets `tm`'s triple and data layout and runs
/// LLVM's -O3 pipeline for `tm`. `enterPhase` (may be empty) is called with
/// "translate to LLVM IR" and "opt -O3" as each starts. Returns an error if translation
/// or optimisation fails.
llvm::Expected<std::unique_ptr<llvm::Module>>
translateAndOptimize(mlir::ModuleOp unit, llvm::LLVMContext &context, llvm::TargetMachine &tm,
                     std::mutex &translateMutex,
                     llvm::function_ref<void(const char *)> enterPhase = {});

/// A symbol that generated code calls and the kernels/cpu function that defines it.
struct KernelSymbol {
  const char *name;       ///< the name generated code calls
  void *address;          ///< the function in this process (the JIT binds `name` to it)
  const char *definition; ///< its own symbol name (an object file calls it by this name)
};

/// The kernels/cpu functions that generated code calls: the GEMMs and the step heap
/// (memref.alloc / dealloc lower to `_mlir_memref_to_llvm_*`, which are lrt_alloc,
/// lrt_aligned_alloc and lrt_free).
llvm::ArrayRef<KernelSymbol> kernelSymbols();

} // namespace mlir::llmp
