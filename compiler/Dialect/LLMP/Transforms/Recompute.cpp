// SPDX-License-Identifier: Apache-2.0
/// `llmp-recompute`: activation recomputation (checkpointing) in the `_grad` functions of
/// llmp-autodiff, for a module with `llmp.recompute = "layers" | "attention"` (Chen et al.
/// 2016, "Training Deep Nets with Sublinear Memory Cost"; PyTorch
/// torch.utils.checkpoint). Algorithm, per function with an op marked `llmp.seed`:
///   1. The forward is the ops before the seed. Layer i spans its first to its last op
///      tagged `llmp.layer = i` (LLMPGen tags each `for` iteration of @loss); untagged ops
///      in between (LoRA adapters, NF4 products added by later rewrites) belong to it.
///   2. The segment to recompute: the whole layer, or with "attention" its ops up to and
///      including its first llmp.attention and the reshapes of its output.
///   3. Saved values: the segment's results that no forward op outside the layer uses
///      (those that one does are the checkpoints: the layer's output).
///   4. Insertion point: the first backward op (after the seed) using a saved value.
///   5. Clone the segment's non-constant ops in order at that point (marked
///      `llmp.recompute = i`); an operand defined outside the segment by a non-constant op
///      is read through `bufferization.alloc_tensor() copy(...)`, which has memory effects:
///      `cse` after the lowering to linalg (when the marks are gone) cannot merge the
///      clones into the originals through it.
///   6. Backward uses of saved values from the insertion point on read the clones.
/// The clones repeat the originals' computation on the same inputs, so the gradients are
/// the same bit for bit; the originals' buffers die at the end of the forward.
#include "compiler/Dialect/LLMP/Transforms/Passes.h"

#include "mlir/IR/IRMapping.h"
#include "mlir/IR/Matchers.h"
#include "llvm/ADT/MapVector.h"

namespace mlir::llmp {
#define GEN_PASS_DEF_LLMPRECOMPUTE
#include "compiler/Dialect/LLMP/Transforms/Passes.h.inc"
} // namespace mlir::llmp

using namespace mlir;
using namespace mlir::llmp;

namespace {

enum class Mode { Layers, Attention };

/// Recomputes the segments of one function's layers (steps 1-6 above).
void recomputeFunction(func::FuncOp f, Mode mode) {
  if (!f.getBody().hasOneBlock())
    return;
  Block &body = f.getBody().front();
  // 1. Program order, the seed, the layers' spans.
  DenseMap<Operation *, int64_t> index;
  int64_t seed = -1, n = 0;
  llvm::MapVector<int64_t, std::pair<int64_t, int64_t>> spans; // layer -> [first, last]
  for (Operation &op : body) {
    index[&op] = n;
    if (seed < 0 && op.hasAttr("llmp.seed"))
      seed = n;
    if (auto layer = op.getAttrOfType<IntegerAttr>("llmp.layer"); layer && seed < 0) {
      auto [it, fresh] = spans.insert({layer.getInt(), {n, n}});
      it->second.second = n;
    }
    ++n;
  }
  if (seed < 0)
    return;
  SmallVector<Operation *> ops;
  for (Operation &op : body)
    ops.push_back(&op);

  OpBuilder b(f.getContext());
  for (auto &[layer, span] : spans) {
    auto [first, last] = span;
    // 2. The segment.
    int64_t end = last;
    if (mode == Mode::Attention) {
      end = -1;
      for (int64_t i = first; i <= last && end < 0; ++i)
        if (isa<AttentionOp>(ops[i]))
          end = i;
      if (end < 0)
        continue;
      // With the reshapes of its output (the output projection's operand).
      while (end < last && isa<ReshapeOp>(ops[end + 1]) &&
             ops[end + 1]->getOperand(0).getDefiningOp() == ops[end])
        ++end;
    }
    auto inLayer = [&](Operation *op) {
      auto it = index.find(op);
      return it != index.end() && it->second >= first && it->second <= last;
    };
    auto isBackward = [&](Operation *op) {
      auto it = index.find(op);
      return it == index.end() || it->second > seed; // new ops are backward clones' users
    };
    // 3. Saved values.
    DenseSet<Value> saved;
    SmallVector<Operation *> segment;
    for (int64_t i = first; i <= end; ++i) {
      Operation *op = ops[i];
      if (matchPattern(op, m_Constant()))
        continue;
      segment.push_back(op);
      for (Value r : op->getResults()) {
        bool checkpoint = llvm::any_of(r.getUsers(), [&](Operation *u) {
          return !isBackward(u) && !inLayer(u);
        });
        if (!checkpoint)
          saved.insert(r);
      }
    }
    // 4. The first backward use.
    Operation *at = nullptr;
    for (Value v : saved)
      for (Operation *u : v.getUsers())
        if (isBackward(u) && index.count(u) && (!at || index[u] < index[at]))
          at = u;
    if (!at)
      continue;
    // 5. The clones.
    b.setInsertionPoint(at);
    IRMapping map;
    DenseSet<Operation *> inSegment(segment.begin(), segment.end());
    auto mark = b.getI64IntegerAttr(layer);
    for (Operation *op : segment) {
      for (Value operand : op->getOperands()) {
        Operation *def = operand.getDefiningOp();
        if (map.contains(operand) || !def || inSegment.contains(def) ||
            matchPattern(def, m_Constant()))
          continue;
        auto ty = dyn_cast<RankedTensorType>(operand.getType());
        if (!ty)
          continue;
        auto copy = bufferization::AllocTensorOp::create(b, op->getLoc(), ty, ValueRange{},
                                                         /*copy=*/operand);
        map.map(operand, copy.getResult());
      }
      Operation *clone = b.clone(*op, map);
      clone->setAttr("llmp.recompute", mark);
    }
    // 6. Backward uses from `at` on read the clones.
    for (Value v : saved) {
      Value c = map.lookupOrNull(v);
      if (!c)
        continue;
      v.replaceUsesWithIf(c, [&](OpOperand &use) {
        Operation *u = use.getOwner();
        auto it = index.find(u);
        return it != index.end() && it->second >= index[at];
      });
    }
  }
}

struct LLMPRecomputePass : mlir::llmp::impl::LLMPRecomputeBase<LLMPRecomputePass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto attr = module->getAttrOfType<StringAttr>("llmp.recompute");
    if (!attr || attr.getValue() == "none")
      return;
    Mode mode;
    if (attr.getValue() == "layers")
      mode = Mode::Layers;
    else if (attr.getValue() == "attention")
      mode = Mode::Attention;
    else {
      module.emitError() << "unknown llmp.recompute '" << attr.getValue()
                         << "'; expected 'none', 'attention' or 'layers'";
      return signalPassFailure();
    }
    for (auto f : module.getOps<func::FuncOp>())
      recomputeFunction(f, mode);
  }
};

} // namespace
