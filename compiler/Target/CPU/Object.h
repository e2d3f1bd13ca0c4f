// SPDX-License-Identifier: Apache-2.0
/// Ahead-of-time compilation of an LLVM-dialect module to object files for the host
/// (`llmpc build`), with the same TargetMachine, units and -O3 pipeline as the JIT
/// (Codegen.h), so that the machine code, and the results, are the JIT's.
#pragma once

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/Error.h"

#include <string>
#include <vector>

namespace mlir::llmp {

/// Compiles `module`, which must be in the LLVM dialect (Phase::LLVM) with the LLVM IR
/// translations registered in its context, to ELF object files `<stem>.<i>.o`: one per
/// step function (its `_mlir_ciface_` wrapper beside it), as JitModule::create splits it
/// with more than one thread. The step heap's `_mlir_memref_to_llvm_*` calls are bound to
/// kernels/cpu's lrt_alloc, lrt_aligned_alloc and lrt_free (Codegen.h kernelSymbols); the
/// other kernel symbols keep their names, to be linked with kernels/cpu. The objects use
/// the static relocation model: link them into a non-PIE executable (`-no-pie`).
/// Modifies `module` (Codegen.h prepareCodegenUnits). Returns the paths written, or an
/// error if translation, code generation or writing fails.
llvm::Expected<std::vector<std::string>> writeObjectFiles(mlir::ModuleOp module,
                                                          llvm::StringRef stem);

/// Writes an ELF object file for the host to `path` that defines one read-only, global
/// symbol `symbol`: the bytes of `data` followed by a NUL (a C string when `data` has no
/// NUL). Returns an error if code generation or writing fails.
llvm::Error writeDataObject(llvm::StringRef path, llvm::StringRef symbol, llvm::StringRef data);

} // namespace mlir::llmp
