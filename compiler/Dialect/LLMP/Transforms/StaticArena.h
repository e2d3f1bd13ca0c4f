// SPDX-License-Identifier: Apache-2.0
/// The static arena of a step function (`llmp-static-arena`; the algorithm is at the top of
/// StaticArena.cpp): the figures the pass records on the module.
#pragma once

#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/BuiltinOps.h"

namespace mlir::llmp {

/// The unit attribute that marks the arena's `memref.alloc`.
inline constexpr llvm::StringLiteral kArenaAttr = "llmp.arena";

/// Whether `v` is a buffer that `llmp-static-arena` placed in an arena: a `memref.view` of
/// an alloc marked `llmp.arena`. Two different such views that are both live at an op
/// never share a byte (the planner only lets buffers with disjoint lifetimes overlap), so
/// passes after it may treat each as a buffer of its own, like a `memref.alloc`.
inline bool isArenaView(Value v) {
  auto view = v.getDefiningOp<memref::ViewOp>();
  auto arena = view ? view.getSource().getDefiningOp<memref::AllocOp>() : memref::AllocOp();
  return arena && arena->hasAttr(kArenaAttr);
}

/// What `llmp-static-arena` planned for one function, all in bytes.
struct StepArena {
  int64_t bytes = 0;    ///< the arena's size (`llmp.step_arena_bytes`), a multiple of 64
  int64_t buffers = 0;  ///< buffers placed in it (`llmp.step_arena_buffers`)
  int64_t livePeak = 0; ///< their peak of live bytes (`llmp.step_arena_live_peak`), <= bytes
};

/// The arena `llmp-static-arena` recorded for `function`; all zeros when the pass has not
/// run or planned no buffer of that function.
StepArena stepArenaOf(ModuleOp module, llvm::StringRef function);

/// The arena of the function with the largest `llmp.step_heap_peak` (the function whose
/// step heap `largestStepHeapPeak` reports); all zeros when either pass has not run.
StepArena arenaOfLargestStepHeap(ModuleOp module);

} // namespace mlir::llmp
