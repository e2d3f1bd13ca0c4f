// SPDX-License-Identifier: Apache-2.0
/// `llmp-static-arena`: the temporaries of each public function (the step functions) in one
/// arena whose size is fixed at compile time, with buffers of disjoint lifetimes sharing
/// bytes. Runs on bufferized IR after `llmp-dealloc-at-last-use` (each temporary's
/// memref.dealloc right after its last use) and before `llmp-step-heap-peak`. Algorithm,
/// for each public function whose entry block ends in func.return:
///   1. Candidates: every `memref.alloc` of the entry block with a static shape, the
///      identity layout, no memory space, an int/float element of whole bytes and an
///      alignment (if any) dividing 64, freed by a `memref.dealloc` of the entry block
///      whose every other use (through views) lies in that block before the dealloc and
///      cannot let it escape (`lastUse`, the rules of llmp-dealloc-at-last-use: no call,
///      terminator, second dealloc or non-view op with memref results sees it). Its live
///      interval is [position of the alloc, position of the dealloc] in the entry block's
///      op order (an op with nested regions is one position). Anything else (dynamic
///      shapes, buffers returned or freed in another block, allocs inside loops and
///      branches) stays a heap allocation, unchanged.
///   2. Size of a buffer: numel x element bytes rounded up to a multiple of 64 (at least
///      64), as lrt_alloc rounds it (kernels/cpu/Alloc.cpp; StepHeapPeak.cpp `allocated`).
///   3. Offsets by the greedy-by-size offline planner (TFLite's arena planner; Pisarchyk &
///      Lee 2020, "Efficient Memory Management for Deep Neural Net Inference",
///      arXiv:2001.03288, "Greedy by Size"): buffers sorted by size, largest first (ties:
///      earlier start first, then program order); each goes at the lowest offset at which
///      it overlaps no already placed buffer whose interval intersects its own. Offsets
///      are sums of sizes, so multiples of 64. The arena's size is the largest end.
///   4. Rewrite: `%arena = memref.alloc() {alignment = 64, llmp.arena} : memref<Nxi8>` at
///      the start of the entry block, its dealloc right before the return; each planned
///      alloc becomes `memref.view %arena[%offset][]` at the alloc's own place (so the
///      view dominates every use), its dealloc is erased. The views are plain pointers
///      into memory that the function's own thread allocated before any parallel region.
///   5. The module gets three dictionaries from function name to integer:
///      `llmp.step_arena_bytes` (the arena's size; 0 when nothing was planned),
///      `llmp.step_arena_buffers` (buffers placed) and `llmp.step_arena_live_peak` (the
///      peak of those buffers' live bytes, the lower bound that fragmentation keeps the
///      arena above).
/// llmp-step-heap-peak, after it, sees the arena as one alloc live for the whole function
/// plus the heap allocations that remain, which is what lrt_alloc measures.
#include "compiler/Dialect/LLMP/Transforms/StaticArena.h"
#include "compiler/Dialect/LLMP/Transforms/DeallocAtLastUse.h"
#include "compiler/Dialect/LLMP/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "llvm/ADT/DenseMap.h"

#include <algorithm>

namespace mlir::llmp {
#define GEN_PASS_DEF_LLMPSTATICARENA
#include "compiler/Dialect/LLMP/Transforms/Passes.h.inc"
} // namespace mlir::llmp

using namespace mlir;
using namespace mlir::llmp;

namespace {

constexpr int64_t kArenaAlign = 64;

/// A planned buffer: its alloc and dealloc, live interval (entry-block positions,
/// inclusive), size and offset in the arena.
struct Buffer {
  memref::AllocOp alloc;
  memref::DeallocOp dealloc;
  int64_t start = 0, end = 0, bytes = 0, offset = 0;
  size_t order = 0; ///< program order, the last tie-break
};

/// Bytes of `alloc`'s buffer in the arena (numel x element bytes up to a multiple of 64,
/// at least 64), or -1 when its type cannot be a view of an i8 arena.
int64_t arenaBytes(memref::AllocOp alloc) {
  MemRefType type = alloc.getType();
  Type elt = type.getElementType();
  if (!type.hasStaticShape() || !type.getLayout().isIdentity() || type.getMemorySpace() ||
      !elt.isIntOrFloat() || elt.getIntOrFloatBitWidth() % 8 != 0)
    return -1;
  if (std::optional<uint64_t> align = alloc.getAlignment();
      align && (*align == 0 || kArenaAlign % int64_t(*align) != 0))
    return -1;
  int64_t bytes = type.getNumElements() * (elt.getIntOrFloatBitWidth() / 8);
  bytes = (bytes + kArenaAlign - 1) / kArenaAlign * kArenaAlign;
  return bytes == 0 ? kArenaAlign : bytes;
}

/// The entry block's dealloc of `alloc` when its buffer may live in the arena (step 1 of
/// the algorithm); null otherwise.
memref::DeallocOp plannableDealloc(Block &entry, memref::AllocOp alloc) {
  memref::DeallocOp dealloc;
  for (Operation *user : alloc->getUsers())
    if (auto d = dyn_cast<memref::DeallocOp>(user)) {
      if (dealloc || d->getBlock() != &entry)
        return {};
      dealloc = d;
    }
  if (!dealloc)
    return {};
  Operation *last = lastUse(entry, alloc.getResult(), dealloc);
  if (!last || !last->isBeforeInBlock(dealloc))
    return {};
  return dealloc;
}

/// Greedy by size (step 3): sets every buffer's offset; returns the arena's size.
int64_t placeGreedyBySize(std::vector<Buffer> &buffers) {
  std::vector<Buffer *> bySize;
  for (Buffer &b : buffers)
    bySize.push_back(&b);
  std::sort(bySize.begin(), bySize.end(), [](const Buffer *x, const Buffer *y) {
    return std::make_tuple(-x->bytes, x->start, x->order) <
           std::make_tuple(-y->bytes, y->start, y->order);
  });
  std::vector<Buffer *> placed;
  int64_t arena = 0;
  for (Buffer *b : bySize) {
    std::vector<Buffer *> live; // placed buffers whose lifetime meets b's, by offset
    for (Buffer *p : placed)
      if (p->start <= b->end && b->start <= p->end)
        live.push_back(p);
    std::sort(live.begin(), live.end(),
              [](const Buffer *x, const Buffer *y) { return x->offset < y->offset; });
    int64_t offset = 0;
    for (Buffer *p : live) {
      if (offset + b->bytes <= p->offset)
        break; // fits in the gap before p
      offset = std::max(offset, p->offset + p->bytes);
    }
    b->offset = offset;
    arena = std::max(arena, offset + b->bytes);
    placed.push_back(b);
  }
  return arena;
}

/// The peak of the buffers' live bytes over their intervals.
int64_t livePeak(const std::vector<Buffer> &buffers) {
  std::vector<std::pair<int64_t, int64_t>> events; // (position, +bytes / -bytes)
  for (const Buffer &b : buffers) {
    events.push_back({b.start, b.bytes});
    events.push_back({b.end, -b.bytes});
  }
  // An alloc and a dealloc are different ops, so no two events share a position.
  std::sort(events.begin(), events.end());
  int64_t live = 0, peak = 0;
  for (auto [position, delta] : events)
    peak = std::max(peak, live += delta);
  return peak;
}

/// Plans and rewrites `fn` (steps 1-4); returns what it placed.
StepArena planFunction(func::FuncOp fn) {
  Block &entry = fn.getBody().front();
  if (!isa<func::ReturnOp>(entry.getTerminator()))
    return {};
  llvm::DenseMap<Operation *, int64_t> position;
  int64_t next = 0;
  for (Operation &op : entry)
    position[&op] = next++;
  std::vector<Buffer> buffers;
  for (auto alloc : entry.getOps<memref::AllocOp>()) {
    int64_t bytes = arenaBytes(alloc);
    if (bytes < 0)
      continue;
    if (memref::DeallocOp dealloc = plannableDealloc(entry, alloc))
      buffers.push_back({alloc, dealloc, position[alloc], position[dealloc], bytes, 0,
                         buffers.size()});
  }
  if (buffers.empty())
    return {};
  StepArena result;
  result.buffers = int64_t(buffers.size());
  result.livePeak = livePeak(buffers);
  result.bytes = placeGreedyBySize(buffers);

  OpBuilder b(fn.getContext());
  b.setInsertionPointToStart(&entry);
  Location loc = fn.getLoc();
  auto arena = memref::AllocOp::create(b, loc, MemRefType::get({result.bytes}, b.getI8Type()),
                                       b.getI64IntegerAttr(kArenaAlign));
  arena->setAttr(kArenaAttr, b.getUnitAttr());
  b.setInsertionPoint(entry.getTerminator());
  memref::DeallocOp::create(b, loc, arena);
  for (Buffer &buf : buffers) {
    b.setInsertionPoint(buf.alloc);
    Value offset = arith::ConstantIndexOp::create(b, buf.alloc.getLoc(), buf.offset);
    auto view = memref::ViewOp::create(b, buf.alloc.getLoc(), buf.alloc.getType(), arena,
                                       offset, ValueRange{});
    buf.dealloc->erase();
    buf.alloc.getResult().replaceAllUsesWith(view.getResult());
    buf.alloc->erase();
  }
  return result;
}

struct LLMPStaticArenaPass : mlir::llmp::impl::LLMPStaticArenaBase<LLMPStaticArenaPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    Builder b(module.getContext());
    NamedAttrList bytes, buffers, peaks;
    for (auto fn : module.getOps<func::FuncOp>()) {
      if (fn.isExternal() || !fn.isPublic())
        continue;
      StepArena arena = planFunction(fn);
      bytes.append(fn.getSymName(), b.getI64IntegerAttr(arena.bytes));
      buffers.append(fn.getSymName(), b.getI64IntegerAttr(arena.buffers));
      peaks.append(fn.getSymName(), b.getI64IntegerAttr(arena.livePeak));
    }
    module->setAttr("llmp.step_arena_bytes", bytes.getDictionary(module.getContext()));
    module->setAttr("llmp.step_arena_buffers", buffers.getDictionary(module.getContext()));
    module->setAttr("llmp.step_arena_live_peak", peaks.getDictionary(module.getContext()));
  }
};

/// `module`'s figure for `function` in the dictionary attribute `name`; 0 when absent.
int64_t figureOf(ModuleOp module, llvm::StringRef name, llvm::StringRef function) {
  auto dict = module->getAttrOfType<DictionaryAttr>(name);
  auto value = dict ? dict.getAs<IntegerAttr>(function) : IntegerAttr();
  return value ? value.getInt() : 0;
}

} // namespace

StepArena mlir::llmp::stepArenaOf(ModuleOp module, llvm::StringRef function) {
  return {figureOf(module, "llmp.step_arena_bytes", function),
          figureOf(module, "llmp.step_arena_buffers", function),
          figureOf(module, "llmp.step_arena_live_peak", function)};
}

StepArena mlir::llmp::arenaOfLargestStepHeap(ModuleOp module) {
  auto peaks = module->getAttrOfType<DictionaryAttr>("llmp.step_heap_peak");
  if (!peaks)
    return {};
  llvm::StringRef largest;
  int64_t bytes = -1;
  for (NamedAttribute peak : peaks)
    if (auto value = dyn_cast<IntegerAttr>(peak.getValue()); value && value.getInt() > bytes)
      bytes = value.getInt(), largest = peak.getName().getValue();
  return largest.empty() ? StepArena() : stepArenaOf(module, largest);
}
