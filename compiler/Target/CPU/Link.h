// SPDX-License-Identifier: Apache-2.0
/// Linking a standalone trainer binary (`llmpc build`): the link command CMake ran for
/// `llmp-aot-trainer` (runtime/aot: the trainer's main, the static runtime and kernels, and
/// the system libraries they need, with the C++ compiler driver CMake found), recorded at
/// build time by cmake/record-link.sh, replayed with a stage's object files added.
#pragma once

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"

#include <string>

namespace mlir::llmp {

/// The recorded link command's file (aot-link.txt in the build tree of runtime/aot).
llvm::StringRef trainerLinkCommandFile();

/// Links `objects` (Object.h; absolute or relative to the working directory) with the
/// trainer's main and the runtime into the executable `output`. Returns an error naming
/// the recorded command's file if it is missing or malformed, or with the linker's
/// messages if the link fails.
llvm::Error linkTrainer(llvm::ArrayRef<std::string> objects, llvm::StringRef output);

} // namespace mlir::llmp
