// SPDX-License-Identifier: Apache-2.0
/// Prints a Program as an indented tree, one node per line, each with its `@file:line:col`
/// (`llmpc emit --compile-to=ast`).
#pragma once

#include "lang/AST.h"

namespace llvm {
class raw_ostream;
}

namespace llmp::lang {

/// Prints every module of `program` (imports first) to `os`. With `mainOnly`, prints only
/// the main file.
void dumpAST(const Program &program, llvm::raw_ostream &os, bool mainOnly = true);

} // namespace llmp::lang
