// SPDX-License-Identifier: Apache-2.0
/// Semantic checks of a loaded program: names and imports, model family bodies with
/// symbolic shapes and dtypes through every forward and loss, model instances (arguments
/// evaluated, parameters laid out), stage fields (known names, types, ranges) and the fit
/// between a stage's model, loss, tokenizer and batch. Every problem is reported once
/// through the MLIR diagnostic engine, with notes at related declarations and "did you
/// mean" suggestions for misspelled names.
#pragma once

#include "lang/AST.h"

#include "mlir/Support/LogicalResult.h"
#include "llvm/ADT/ArrayRef.h"

namespace llmp::lang {

/// Checks `program` and fills `Program::globals`, `Program::models` and
/// `Program::stageInfo`. Returns failure after reporting at least one error.
mlir::LogicalResult checkProgram(Program &program, mlir::MLIRContext &ctx);

/// Returns the candidate closest to `name` by edit distance when it is close enough to be a
/// plausible misspelling, or an empty string.
std::string closestMatch(llvm::StringRef name, llvm::ArrayRef<std::string> candidates);

/// The fields a stage may have, in the order docs/language.md lists them.
llvm::ArrayRef<std::string> stageFieldNames();

/// The stage kinds: pretrain, sft, reward_model, dpo, ppo, grpo, deploy.
llvm::ArrayRef<std::string> stageKinds();

} // namespace llmp::lang
