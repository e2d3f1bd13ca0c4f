// SPDX-License-Identifier: Apache-2.0
/// Lowers one checked `pretrain` stage of a .llmp program to the llmp dialect: the stage's
/// model is specialised to static shapes (model arguments evaluated, `for b in layers`
/// unrolled) and emitted as `@loss` (batch B x T) and `@logits` (1 x context), with the
/// parameters as leading arguments in flat-buffer order, as docs/internals.md specifies.
/// Every op carries the FileLineColLoc of the .llmp expression it comes from (the stdlib
/// file for ops of a stdlib model). Also fills the runtime's lrt::StagePlan.
#pragma once

#include "lang/AST.h"
#include "runtime/KVCache.h"
#include "runtime/Plan.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "mlir/Support/LLVM.h"

namespace mlir {
class DialectRegistry;
}

namespace llmp {

/// Adds the dialects the frontend emits (func, llmp) to `registry`.
void registerFrontendDialects(mlir::DialectRegistry &registry);

/// Fills `plan` from the checked stage `stageName` of `program` (parameter layout with
/// initialisers, dims, batch, optimizer, schedule, data, tokenizer). Returns failure when
/// the stage does not exist or did not pass Sema; reports nothing.
mlir::LogicalResult fillStagePlan(const lang::Program &program, llvm::StringRef stageName,
                                  lrt::StagePlan &plan);

/// Emits the module of stage `stageName` (see the file comment) and fills `plan`. The
/// program must have passed lang::checkProgram. Returns failure after reporting a
/// diagnostic (e.g. `heads` does not divide the model dimension, or no such stage).
mlir::FailureOr<mlir::OwningOpRef<mlir::ModuleOp>>
emitStage(mlir::MLIRContext &ctx, const lang::Program &program, llvm::StringRef stageName,
          lrt::StagePlan &plan);

/// Emits only `@logits` (tokens 1 x context) of the model of stage `stageName`, of any
/// kind (e.g. a `deploy` stage serving a pretrained `from_gguf` model), and fills the
/// model part of `plan` (names, parameter layout, vocab/context/dim/layers). For
/// inference: `llmpc logits` and `llmpc chat`. Returns failure after reporting (no such
/// stage, no model, no context length).
mlir::FailureOr<mlir::OwningOpRef<mlir::ModuleOp>>
emitLogits(mlir::MLIRContext &ctx, const lang::Program &program, llvm::StringRef stageName,
           lrt::StagePlan &plan);

/// Emits `@logits` as emitLogits does, and for generation with a KV cache (docs/internals.md)
///   @prefill(params, tokens i32[batch, prefillLen], lengths i32[batch], k_cache, v_cache)
///       -> (logits f32[batch, vocab] of each row's last prompt token, k_cache, v_cache)
///   @decode(params, tokens i32[batch], positions i32[batch], k_cache, v_cache)
///       -> (logits f32[batch, vocab] of the new tokens, k_cache, v_cache)
/// with caches f32[layers, batch, kv_heads, context, dim / heads] (runtime/KVCache.h),
/// whose shape goes to `cache`. `prefillLen` must lie in [1, context]. Returns failure
/// after reporting (those of emitLogits; a model without `layers`, `heads`, `dim` or one
/// causal attention per layer).
mlir::FailureOr<mlir::OwningOpRef<mlir::ModuleOp>>
emitInference(mlir::MLIRContext &ctx, const lang::Program &program, llvm::StringRef stageName,
              int64_t batch, int64_t prefillLen, lrt::StagePlan &plan,
              lrt::KVCacheShape &cache);

/// emitInference without the stage's `adapter:` (and `base: nf4(...)`): the functions of
/// the plain model over its own fp32 parameter layout, as for a full fine-tuning stage, which
/// go to `plan`. They run a LoRA or QLoRA stage on its merged weights (runtime/Lora.h
/// mergedStageParams): the samples of `llmpc run`, `llmpc chat` and `llmpc logits --greedy`
/// with a KV cache. For a stage without adapter the same as emitInference. Same errors.
mlir::FailureOr<mlir::OwningOpRef<mlir::ModuleOp>>
emitBaseInference(mlir::MLIRContext &ctx, const lang::Program &program,
                  llvm::StringRef stageName, int64_t batch, int64_t prefillLen,
                  lrt::StagePlan &plan, lrt::KVCacheShape &cache);

} // namespace llmp
