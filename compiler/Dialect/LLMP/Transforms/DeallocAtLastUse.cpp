// SPDX-License-Identifier: Apache-2.0
/// `llmp-dealloc-at-last-use`: buffer-deallocation-pipeline (ownership-based) frees a
/// function's buffers at the end of their block; this pass moves each free to just after
/// the buffer's last use, so that the step heap holds only live buffers. Algorithm, for
/// each `memref.dealloc %a` in a function's entry block:
///   1. `%a` must be the result of a `memref.alloc` in the same block; else skip.
///   2. Follow the uses of `%a` and of its views transitively: results of view-like ops
///      (ViewLikeOpInterface: subview, expand/collapse_shape, reinterpret_cast, view, ...),
///      memref.cast and memref.extract_strided_metadata's base buffer are views. Any other
///      op with a memref result, a call or a terminator (return, scf.yield) may keep the
///      buffer alive by a path this walk does not see: skip.
///   3. The last use is the latest op of the entry block that is or contains a use; move
///      the dealloc right after it (never later than where it was).
#include "compiler/Dialect/LLMP/Transforms/DeallocAtLastUse.h"
#include "compiler/Dialect/LLMP/Transforms/Passes.h"

#include "mlir/Interfaces/ViewLikeInterface.h"

namespace mlir::llmp {
#define GEN_PASS_DEF_LLMPDEALLOCATLASTUSE
#include "compiler/Dialect/LLMP/Transforms/Passes.h.inc"
} // namespace mlir::llmp

using namespace mlir;
using namespace mlir::llmp;

Operation *mlir::llmp::lastUse(Block &block, Value root, Operation *dealloc) {
  SmallVector<Value> work = {root};
  Operation *last = root.getDefiningOp();
  while (!work.empty()) {
    Value v = work.pop_back_val();
    for (OpOperand &use : v.getUses()) {
      Operation *user = use.getOwner();
      if (user == dealloc)
        continue;
      // Yielded out of a region (scf.yield, ...), returned, passed to a call, freed twice.
      if (isa<memref::DeallocOp, func::CallOp>(user) || user->hasTrait<OpTrait::IsTerminator>())
        return nullptr;
      bool view = false;
      if (auto like = dyn_cast<ViewLikeOpInterface>(user))
        view = like.getViewSource() == v;
      view |= isa<memref::CastOp, memref::ExtractStridedMetadataOp>(user);
      if (view) {
        for (Value r : user->getResults())
          if (isa<BaseMemRefType>(r.getType()))
            work.push_back(r);
      } else if (llvm::any_of(user->getResultTypes(),
                              [](Type t) { return isa<BaseMemRefType>(t); })) {
        return nullptr;
      }
      Operation *at = block.findAncestorOpInBlock(*user);
      if (!at)
        return nullptr;
      if (at->isBeforeInBlock(last) == false)
        last = at;
    }
  }
  return last;
}

namespace {

struct LLMPDeallocAtLastUsePass
    : mlir::llmp::impl::LLMPDeallocAtLastUseBase<LLMPDeallocAtLastUsePass> {
  void runOnOperation() override {
    for (auto f : getOperation().getOps<func::FuncOp>()) {
      if (f.isExternal())
        continue;
      Block &entry = f.getBody().front();
      SmallVector<memref::DeallocOp> deallocs(entry.getOps<memref::DeallocOp>());
      for (memref::DeallocOp d : deallocs) {
        Value root = d.getMemref();
        auto alloc = root.getDefiningOp<memref::AllocOp>();
        if (!alloc || alloc->getBlock() != &entry)
          continue;
        Operation *last = lastUse(entry, root, d);
        if (last && last->isBeforeInBlock(d))
          d->moveAfter(last);
      }
    }
  }
};

} // namespace
