// SPDX-License-Identifier: Apache-2.0
/// `llmp-step-heap-peak`: the peak of live heap bytes of each function, computed from the
/// bufferized IR, after `buffer-deallocation-pipeline` (every memref.alloc has its
/// memref.dealloc). It is the step heap's peak (kernels/cpu/Alloc.h `peakBytes`) that a call
/// of the function reaches, so the plan's activations are a compile-time figure. Algorithm:
///   1. Walk each function body in program order with a running count of live bytes. A
///      memref.alloc adds its size as lrt_alloc allocates it: numel x element bytes rounded
///      up to max(64, alignment); memref.dealloc subtracts the size of the allocation its
///      operand views (through casts, subviews, reshapes, extract_strided_metadata).
///      Dynamic dimensions are taken as `rows` (the stage's micro-batch).
///   2. A region (loop body, branch) is walked once: allocations freed in the body count
///      once whatever the trip count; scf.if takes the larger branch.
///   3. func.call of a function with a body: the callee's own peak on top of the caller's
///      live bytes; the buffers it returns stay live in the caller.
///   4. In a `llmp.precision = "bf16"` module, a 2-D f32 linalg.matmul that the bf16 kernel
///      runs in bf16 (lrt::matmulBf16Shape) also holds its operands' bf16 copies, 2 MK and
///      2 KN bytes from the step heap, for the duration of the product (a batched one,
///      linalg.batch_matmul, 2 Bt MK and 2 Bt KN bytes)
///      (kernels/cpu/MatmulBf16.h); counted as the kernel allocates them, on a CPU with bf16
///      dot products (without, the kernel takes none and the figure is that much high).
///      A linalg.matmul whose B is bf16 already (llmp-bf16-base; lrt_matmul_bf16_b) holds
///      2 MK bytes when it runs in bf16, and 4 KN bytes (B widened to fp32) when not.
///   5. The peak is the largest running count; the module gets `llmp.step_heap_peak`, a
///      dictionary from function name to bytes.
/// The figure is exact for straight-line code; a loop that later becomes an OpenMP parallel
/// loop and allocates in its body holds one body's buffers per thread at once.
#include "compiler/Dialect/LLMP/Transforms/StepHeapPeak.h"
#include "compiler/Dialect/LLMP/Transforms/Passes.h"

#include "kernels/cpu/MatmulBf16.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Interfaces/ViewLikeInterface.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"

namespace mlir::llmp {
#define GEN_PASS_DEF_LLMPSTEPHEAPPEAK
#include "compiler/Dialect/LLMP/Transforms/Passes.h.inc"
} // namespace mlir::llmp

using namespace mlir;
using namespace mlir::llmp;

namespace {

struct Walker {
  ModuleOp module;
  int64_t rows;
  llvm::DenseMap<Value, int64_t> size; // live allocation -> bytes
  int64_t live = 0, peak = 0;
  bool bf16; ///< `llmp.precision = "bf16"`: products take bf16 scratch

  Walker(ModuleOp module, int64_t rows) : module(module), rows(rows) {
    auto precision = module->getAttrOfType<StringAttr>("llmp.precision");
    bf16 = precision && precision.getValue() == "bf16";
  }

  /// The allocation `v` is a view of (itself if none).
  static Value rootOf(Value v) {
    while (Operation *def = v.getDefiningOp()) {
      if (auto meta = dyn_cast<memref::ExtractStridedMetadataOp>(def))
        v = meta.getSource();
      else if (auto view = dyn_cast<ViewLikeOpInterface>(def))
        v = view.getViewSource();
      else if (auto cast = dyn_cast<memref::CastOp>(def))
        v = cast.getSource();
      else
        break;
    }
    return v;
  }

  /// Bytes lrt_alloc takes for a request of `bytes`: a multiple of 64, at least 64
  /// (kernels/cpu/Alloc.cpp).
  static int64_t allocated(int64_t bytes) {
    bytes = (bytes + 63) / 64 * 64;
    return bytes == 0 ? 64 : bytes;
  }

  /// Bytes lrt_alloc takes for `type`. finalize-memref-to-llvm asks for the size plus
  /// `alignment - 1` when the alloc has an alignment (it aligns the pointer itself).
  int64_t bytesOf(MemRefType type, std::optional<uint64_t> alignment) {
    int64_t numel = 1;
    for (int64_t d : type.getShape())
      numel *= ShapedType::isDynamic(d) ? rows : d;
    unsigned bits = type.getElementTypeBitWidth();
    int64_t bytes = numel * std::max<int64_t>(1, (bits + 7) / 8);
    if (alignment && *alignment > 1)
      bytes += int64_t(*alignment) - 1;
    return allocated(bytes);
  }

  /// The bf16 scratch of a 2-D (`rank` 2) or batched (`rank` 3, attention's) product.
  /// A batch of Bt products C (M,N) = op(A) op(B) takes 2 Bt MK + 2 Bt KN bytes in a bf16
  /// module when lrt::matmulBf16Shape(M, N, K), 0 otherwise (the fp32 kernel runs); a 2-D
  /// product whose B is stored bf16 takes 2 MK bytes, or 4 KN (B widened) when narrow.
  int64_t bf16Scratch(linalg::LinalgOp op, int64_t rank) {
    if (!op.hasPureBufferSemantics())
      return 0;
    auto a = dyn_cast<MemRefType>(op.getDpsInputs()[0].getType());
    auto bm = dyn_cast<MemRefType>(op.getDpsInputs()[1].getType());
    auto c = dyn_cast<MemRefType>(op.getDpsInits()[0].getType());
    if (!a || !bm || !c || !a.getElementType().isF32() || a.getRank() != rank ||
        c.getRank() != rank)
      return 0;
    bool storedB = rank == 2 && bm.getElementType().isBF16();
    if (!storedB && (!bf16 || !bm.getElementType().isF32()))
      return 0;
    auto dim = [&](int64_t d) { return ShapedType::isDynamic(d) ? rows : d; };
    int64_t batch = rank == 3 ? dim(c.getDimSize(0)) : 1;
    int64_t m = dim(c.getDimSize(rank - 2)), n = dim(c.getDimSize(rank - 1));
    // op(A) is (M, K) whichever way A is stored.
    int64_t numelA = 1;
    for (int64_t d : a.getShape())
      numelA *= dim(d);
    int64_t k = batch * m == 0 ? 0 : numelA / (batch * m);
    if (storedB)
      return lrt::matmulBf16Shape(m, n, k) ? allocated(2 * m * k) : allocated(4 * k * n);
    if (!lrt::matmulBf16Shape(m, n, k))
      return 0;
    return allocated(2 * batch * m * k) + allocated(2 * batch * k * n);
  }

  void add(Value v, int64_t bytes) {
    size[v] = bytes;
    live += bytes;
    peak = std::max(peak, live);
  }

  void free(Value v) {
    auto it = size.find(rootOf(v));
    if (it == size.end())
      return; // not allocated here (an argument, a buffer freed already)
    live -= it->second;
    size.erase(it);
  }

  void walk(Region &region) {
    for (Block &block : region)
      for (Operation &op : block)
        visit(&op);
  }

  void visit(Operation *op) {
    if (auto alloc = dyn_cast<memref::AllocOp>(op)) {
      add(alloc.getResult(), bytesOf(alloc.getType(), alloc.getAlignment()));
    } else if (auto realloc = dyn_cast<memref::ReallocOp>(op)) {
      free(realloc.getSource());
      add(realloc.getResult(), bytesOf(realloc.getType(), realloc.getAlignment()));
    } else if (auto dealloc = dyn_cast<memref::DeallocOp>(op)) {
      free(dealloc.getMemref());
    } else if (isa<linalg::MatmulOp, linalg::BatchMatmulOp>(op)) {
      peak = std::max(peak, live + bf16Scratch(cast<linalg::LinalgOp>(op),
                                               isa<linalg::MatmulOp>(op) ? 2 : 3));
    } else if (auto call = dyn_cast<func::CallOp>(op)) {
      auto callee = module.lookupSymbol<func::FuncOp>(call.getCallee());
      if (!callee || callee.isExternal())
        return;
      Walker inner(module, rows);
      inner.walk(callee.getBody());
      peak = std::max(peak, live + inner.peak);
      // Returned buffers stay live in the caller.
      callee.walk([&](func::ReturnOp ret) {
        for (auto [operand, result] : llvm::zip(ret.getOperands(), call.getResults()))
          if (auto it = inner.size.find(rootOf(operand)); it != inner.size.end())
            add(result, it->second);
      });
    } else if (op->getNumRegions() > 0) {
      // Each region walked once from the same live bytes; the largest result continues.
      const int64_t before = live;
      int64_t after = before;
      for (Region &region : op->getRegions()) {
        if (region.empty())
          continue;
        live = before;
        walk(region);
        after = std::max(after, live);
      }
      live = after;
    }
  }
};

struct StepHeapPeakPass : mlir::llmp::impl::LLMPStepHeapPeakBase<StepHeapPeakPass> {
  using LLMPStepHeapPeakBase::LLMPStepHeapPeakBase;
  void runOnOperation() override {
    ModuleOp module = getOperation();
    NamedAttrList peaks;
    Builder b(module.getContext());
    for (auto fn : module.getOps<func::FuncOp>())
      if (!fn.isExternal() && fn.isPublic())
        peaks.append(fn.getSymName(), b.getI64IntegerAttr(stepHeapPeak(fn, rows)));
    module->setAttr("llmp.step_heap_peak", peaks.getDictionary(module.getContext()));
  }
};

} // namespace

int64_t mlir::llmp::stepHeapPeak(func::FuncOp fn, int64_t rows) {
  Walker w(fn->getParentOfType<ModuleOp>(), rows);
  w.walk(fn.getBody());
  return w.peak;
}

int64_t mlir::llmp::stepHeapPeakOf(ModuleOp module, llvm::StringRef function) {
  auto peaks = module->getAttrOfType<DictionaryAttr>("llmp.step_heap_peak");
  if (!peaks)
    return -1;
  auto value = peaks.getAs<IntegerAttr>(function);
  return value ? value.getInt() : -1;
}

int64_t mlir::llmp::largestStepHeapPeak(ModuleOp module) {
  int64_t largest = 0;
  if (auto peaks = module->getAttrOfType<DictionaryAttr>("llmp.step_heap_peak"))
    for (NamedAttribute peak : peaks)
      if (auto bytes = dyn_cast<IntegerAttr>(peak.getValue()))
        largest = std::max(largest, bytes.getInt());
  return largest;
}
