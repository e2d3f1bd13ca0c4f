// SPDX-License-Identifier: Apache-2.0
/// Loads a .llmp program: reads the main file, parses it, and follows its `import`s into
/// the standard library (`import std.models.llama` -> `<stdlib>/models/llama.llmp`, or
/// `<stdlib>/losses/losses.llmp` for `import std.losses`) or into files next to the
/// importing one. Every file is added to the given SourceMgr so that diagnostics in
/// imported files print their own name and source line.
#pragma once

#include "lang/AST.h"

#include <memory>
#include <string>

namespace llvm {
class SourceMgr;
}

namespace llmp::lang {

/// Where to find `std.*` modules.
struct LoadOptions {
  std::string stdlibDir; ///< empty: defaultStdlibDir()
};

/// Returns the stdlib/ folder of the source tree this library was built from.
llvm::StringRef defaultStdlibDir();

/// Reads `path` into `sourceMgr`. Returns the buffer id, or 0 with a one-line reason in
/// `toolError` when the file cannot be read, is empty or is not text.
unsigned readSourceFile(llvm::SourceMgr &sourceMgr, llvm::StringRef path,
                        std::string &toolError);

/// Parses buffer `mainBuffer` of `sourceMgr` and everything it imports (adding those files
/// to `sourceMgr`). Returns null after reporting a diagnostic.
std::unique_ptr<Program> loadProgram(llvm::SourceMgr &sourceMgr, mlir::MLIRContext &ctx,
                                     unsigned mainBuffer, const LoadOptions &options);

/// Checks that `buffer` looks like source text. Returns an empty string when it does,
/// otherwise why not ("it is empty", "it contains a NUL byte at offset 3", ...).
std::string checkText(llvm::StringRef buffer);

} // namespace llmp::lang
