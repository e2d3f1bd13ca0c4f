// SPDX-License-Identifier: Apache-2.0
/// What the compiler GoogleTests share to JIT-compile a hand-written llmp module: the
/// context it lives in, parsing with the llmp dialects registered, and the JIT with its
/// step functions (runtime/StepABI.h).
#pragma once

#include "compiler/Pipelines/Pipelines.h"
#include "compiler/Target/CPU/JIT.h"
#include "runtime/StepABI.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"

#include "llvm/Support/raw_ostream.h"

#include <memory>
#include <string>

namespace llmp_test {

/// A module compiled to native code. `ctx` outlives the JIT built from modules parsed in it.
struct Compiled {
  mlir::MLIRContext ctx;
  std::unique_ptr<mlir::llmp::JitModule> jit;
  lrt::StepFunctions fns;
};

/// Parses `src` in `c.ctx` after registering the llmp dialects; null after MLIR has
/// reported the parse error.
inline mlir::OwningOpRef<mlir::ModuleOp> parseModule(Compiled &c, const std::string &src) {
  mlir::DialectRegistry registry;
  mlir::llmp::registerLLMPDialects(registry);
  c.ctx.appendDialectRegistry(registry);
  return mlir::parseSourceString<mlir::ModuleOp>(src, &c.ctx);
}

/// JIT-compiles `module` (lowered to the LLVM phase) into `c.jit` and fills `c.fns`;
/// false after printing the JIT's error.
inline bool jitCompile(Compiled &c, mlir::ModuleOp module) {
  auto jit = mlir::llmp::JitModule::create(module);
  if (!jit) {
    llvm::errs() << llvm::toString(jit.takeError()) << "\n";
    return false;
  }
  c.jit = std::move(*jit);
  c.fns = c.jit->stepFunctions();
  return true;
}

} // namespace llmp_test
