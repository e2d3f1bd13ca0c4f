// SPDX-License-Identifier: Apache-2.0
/// The step heap's peak computed from bufferized IR (`llmp-step-heap-peak`; the algorithm is
/// at the top of StepHeapPeak.cpp).
#pragma once

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"

namespace mlir::llmp {

/// The peak of live bytes that a call of `fn` allocates with memref.alloc (bufferized IR
/// with its memref.dealloc ops, i.e. after buffer-deallocation-pipeline), as the step heap
/// (kernels/cpu/Alloc.h) rounds them: numel x element bytes up to a multiple of max(64,
/// alignment). Dynamic dimensions count as `rows`. Arguments (parameters, gradients,
/// tokens) are not on the heap and not counted.
int64_t stepHeapPeak(func::FuncOp fn, int64_t rows = 1);

/// The figure `llmp-step-heap-peak` stored for `function` in the module's
/// `llmp.step_heap_peak` dictionary; -1 when the pass has not run or the function has none.
int64_t stepHeapPeakOf(ModuleOp module, llvm::StringRef function);

/// The largest figure in the module's `llmp.step_heap_peak` (the step functions run one at
/// a time); 0 when the pass has not run.
int64_t largestStepHeapPeak(ModuleOp module);

} // namespace mlir::llmp
