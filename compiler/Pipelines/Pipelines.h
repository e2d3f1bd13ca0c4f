// SPDX-License-Identifier: Apache-2.0
/// Pass pipelines that take a module from one phase (Phases.h) to the next, and the
/// registration of everything they need.
#pragma once

#include "compiler/Pipelines/Phases.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Pass/PassManager.h"

namespace mlir::llmp {

/// Adds the llmp dialect and every upstream dialect, extension (bufferization models,
/// ...) and LLVM IR translation the pipelines and the JIT need.
void registerLLMPDialects(mlir::DialectRegistry &registry);

/// Registers the llmp passes, the upstream passes and the phase pipelines
/// `llmp-grad-phase`, `llmp-linalg-phase`, `llmp-llvm-phase` (idempotent, thread-safe).
void registerLLMPPasses();

/// llmp -> grad: autodiff, step functions, canonicalisation.
void buildGradPhase(mlir::OpPassManager &pm);
/// grad -> linalg: lowering to linalg on tensors, elementwise fusion.
void buildLinalgPhase(mlir::OpPassManager &pm);
/// linalg -> llvm: bufferization, deallocation, BLAS calls, loops, LLVM dialect.
void buildLLVMPhase(mlir::OpPassManager &pm);

/// Runs the phase builders after `from` up to and including `target` on `module`
/// (`from` must precede `target`; both at least Phase::LLMP). Fails with diagnostics
/// on the module's context when a pass fails or the phases are out of order. With
/// `timing`, each pass's wall time is recorded under it (PassManager::enableTiming; the
/// timing manager prints the report, e.g. `llmpc run --timing`).
mlir::LogicalResult lowerToPhase(mlir::ModuleOp module, Phase target,
                                 Phase from = Phase::LLMP,
                                 mlir::TimingScope *timing = nullptr);

/// Takes a module of phase `llmp` as far as the step heap's peak needs: the grad and
/// linalg phases and the LLVM phase's bufferization, up to and including
/// `llmp-step-heap-peak`, which sets `llmp.step_heap_peak` (the figures a full lowering
/// gives, without the loops, OpenMP and LLVM conversions after it; `llmpc check`). Leaves
/// the module bufferized, at no phase. Fails as lowerToPhase.
mlir::LogicalResult computeStepHeapPeaks(mlir::ModuleOp module);

} // namespace mlir::llmp
