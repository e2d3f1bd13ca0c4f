// SPDX-License-Identifier: Apache-2.0
/// The last use of a buffer in a block, as `llmp-dealloc-at-last-use` finds it (the
/// algorithm is at the top of DeallocAtLastUse.cpp); `llmp-static-arena` reads lifetimes
/// with the same rules.
#pragma once

#include "mlir/IR/Block.h"
#include "mlir/IR/Value.h"

namespace mlir::llmp {

/// The last op of `block` that uses `root` or a view of it (views followed through
/// view-like ops, memref.cast and memref.extract_strided_metadata; a use nested in a
/// region counts at its ancestor op in `block`; `dealloc` itself, which may be null, is
/// not counted), starting from `root`'s defining op. Null when some use may let the
/// buffer escape or alias it in a way this walk does not follow: another memref.dealloc,
/// a func.call, a terminator (return, scf.yield), a non-view op with memref results, or a
/// use outside `block`.
Operation *lastUse(Block &block, Value root, Operation *dealloc);

} // namespace mlir::llmp
