// SPDX-License-Identifier: Apache-2.0
/// A libFuzzer target over the .llmp front end: each input is the text of a main `.llmp`
/// file. It goes through what `llmpc check` does before any compilation (the text check,
/// the loader with its imports of the real stdlib and of test/lang/Inputs/, the parser,
/// Sema and the plan of every checked stage), with every diagnostic rendered through
/// MLIR's SourceMgrDiagnosticHandler into a null stream, so that source locations are
/// resolved against their buffers as they are for a user.
///
/// Besides crashes, hangs, leaks and UB (the sanitizers), it traps on two contract
/// violations that a user would see as silence or noise:
///   - a failed load or check that reported no error, and
///   - a successful check that reported an error.
/// Built by test/lang/fuzz/CMakeLists.txt; scripts/fuzz.sh runs it (docs/testing.md).
#include "lang/Loader.h"
#include "lang/Plan.h"
#include "lang/Sema.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>

#ifndef LLMP_FUZZ_INPUT_PATH
#define LLMP_FUZZ_INPUT_PATH "fuzz-input.llmp"
#endif

namespace {

/// Aborts with a message; libFuzzer records the input as a crash.
[[noreturn]] void contractViolation(const char *what) {
  std::fprintf(stderr, "LangFuzzer: %s\n", what);
  std::abort();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  llvm::StringRef text(reinterpret_cast<const char *>(data), size);
  // llmpc refuses input that is not text before parsing; so do we.
  if (!llmp::lang::checkText(text).empty())
    return 0;

  // A fresh context per input: diagnostics, locations and interned strings from one
  // input must not hide a bug in the next.
  mlir::MLIRContext ctx;
  ctx.disableMultithreading();
  llvm::SourceMgr sourceMgr;
  // The main file sits in test/lang/Inputs/ so that relative imports (`import tiny`)
  // reach real files; `import std.*` reaches the source tree's stdlib/.
  unsigned buffer = sourceMgr.AddNewSourceBuffer(
      llvm::MemoryBuffer::getMemBufferCopy(text, LLMP_FUZZ_INPUT_PATH), llvm::SMLoc());

  unsigned errors = 0;
  mlir::SourceMgrDiagnosticHandler printer(sourceMgr, &ctx, llvm::nulls());
  // Registered after the printer, so it runs first; returning failure passes the
  // diagnostic on to the printer.
  mlir::ScopedDiagnosticHandler counter(&ctx, [&](mlir::Diagnostic &diag) {
    if (diag.getSeverity() == mlir::DiagnosticSeverity::Error)
      ++errors;
    return mlir::failure();
  });

  llmp::lang::LoadOptions options;
  std::unique_ptr<llmp::lang::Program> program =
      llmp::lang::loadProgram(sourceMgr, ctx, buffer, options);
  if (!program) {
    if (errors == 0)
      contractViolation("the loader failed without reporting an error");
    return 0;
  }
  if (mlir::failed(llmp::lang::checkProgram(*program, ctx))) {
    if (errors == 0)
      contractViolation("Sema failed without reporting an error");
    return 0;
  }
  if (errors != 0)
    contractViolation("Sema succeeded but reported an error");

  // The plan is what `llmpc check` prints next; its figures are plain arithmetic over
  // the checked StageInfo, where UBSan finds overflows.
  for (const auto &[name, info] : program->stageInfo) {
    llmp::lang::StagePlanFigures figures = llmp::lang::planStage(info);
    (void)figures.totalBytes();
  }
  return 0;
}
