// SPDX-License-Identifier: Apache-2.0
/// `llmp-finalize-memref-to-llvm`: finalize-memref-to-llvm{use-generic-functions} that
/// also gives the loads and stores of each OpenMP region LLVM alias scopes. Algorithm:
///   1. For each memref.load / memref.store inside an omp.parallel, find the buffer its
///      memref is a view of (`traceRoot`): through memref.view (plus its constant byte
///      shift), subview, reinterpret_cast, extract_strided_metadata, cast, expand_shape
///      and collapse_shape (which keep the aligned pointer) back to a memref.alloc /
///      alloca defined outside the region, or to an argument of the function. The bytes
///      it may touch are [shift + offset * e, shift + (offset + extent) * e) for a static
///      strided type (extent = 1 + sum (size_i - 1) * stride_i, e = element bytes), or
///      unknown.
///   2. Per region (one alias scope domain each), accesses with the same root and the
///      same byte interval form one class with one alias scope. Two classes are proven
///      disjoint when their roots are two different allocations, an allocation and a
///      function argument, or one root with non-overlapping known intervals (the static
///      arena's views). Two arguments are never claimed apart (the runtime may pass one
///      buffer twice); unknown roots get no scopes.
///   3. Each access gets `alias_scopes = [its class]` and `noalias_scopes = [the classes
///      proven disjoint from it]`, then the usual memref -> LLVM patterns run, with the
///      load/store lowering replaced by one that copies the scopes onto llvm.load/store.
/// Why: inside an outlined OpenMP function every base pointer is loaded from a memref
/// descriptor, so LLVM cannot tell inputs from outputs: reductions kept their
/// accumulator's store in the loop and small loops were unrolled instead of vectorised.
#include "compiler/Conversion/LinalgToLRT/Passes.h"

#include "mlir/Analysis/DataLayoutAnalysis.h"
#include "mlir/Conversion/LLVMCommon/ConversionTarget.h"
#include "mlir/Conversion/LLVMCommon/Pattern.h"
#include "mlir/Conversion/LLVMCommon/TypeConverter.h"
#include "mlir/Conversion/MemRefToLLVM/MemRefToLLVM.h"
#include "mlir/Dialect/OpenMP/OpenMPDialect.h"
#include "mlir/Interfaces/FunctionInterfaces.h"
#include "mlir/Transforms/DialectConversion.h"

namespace mlir::llmp {
#define GEN_PASS_DEF_LLMPFINALIZEMEMREFTOLLVM
#include "compiler/Conversion/LinalgToLRT/Passes.h.inc"
} // namespace mlir::llmp

using namespace mlir;

namespace {

constexpr llvm::StringLiteral kScopes = "llmp.alias_scopes";
constexpr llvm::StringLiteral kNoAlias = "llmp.noalias_scopes";
/// The GEP flags of upstream's load/store lowering (indices are in bounds, non-negative).
constexpr LLVM::GEPNoWrapFlags kNoWrap = LLVM::GEPNoWrapFlags::inbounds | LLVM::GEPNoWrapFlags::nuw;

/// The buffer an access reads or writes: `root` is a memref.alloc/alloca result or a
/// function argument (null: unknown); [lo, hi) the bytes from root's aligned pointer
/// that it may touch (hi == lo == -1: unknown, the whole buffer).
struct Place {
  Value root;
  bool isArg = false;
  int64_t lo = -1, hi = -1;
  bool known() const { return lo >= 0; }
};

/// Follows view-like ops from `v` back to its buffer; `shift` accumulates the byte
/// offset of v's aligned pointer from the root's (nullopt: not a constant).
Place traceRoot(Value v, Operation *region, std::optional<int64_t> &shift) {
  while (true) {
    if (auto arg = dyn_cast<BlockArgument>(v)) {
      Block *block = arg.getOwner();
      if (block->isEntryBlock() && isa<FunctionOpInterface>(block->getParentOp()))
        return {v, /*isArg=*/true};
      return {};
    }
    Operation *def = v.getDefiningOp();
    if (isa<memref::AllocOp, memref::AllocaOp>(def))
      return region->isAncestor(def) ? Place{} : Place{v, false};
    if (auto view = dyn_cast<memref::ViewOp>(def)) {
      std::optional<int64_t> bytes = getConstantIntValue(view.getByteShift());
      if (shift && bytes)
        *shift += *bytes;
      else
        shift.reset();
      v = view.getSource();
      continue;
    }
    // These keep the aligned pointer (they change offset, sizes and strides only).
    if (auto op = dyn_cast<memref::SubViewOp>(def)) { v = op.getSource(); continue; }
    if (auto op = dyn_cast<memref::ReinterpretCastOp>(def)) { v = op.getSource(); continue; }
    if (auto op = dyn_cast<memref::CastOp>(def)) { v = op.getSource(); continue; }
    if (auto op = dyn_cast<memref::ExpandShapeOp>(def)) { v = op.getSrc(); continue; }
    if (auto op = dyn_cast<memref::CollapseShapeOp>(def)) { v = op.getSrc(); continue; }
    if (auto op = dyn_cast<memref::ExtractStridedMetadataOp>(def)) {
      if (v != op.getBaseBuffer())
        return {};
      v = op.getSource();
      continue;
    }
    return {};
  }
}

/// Where the access through `memref` lands (see Place).
Place placeOf(Value memref, Operation *region) {
  std::optional<int64_t> shift = 0;
  Place p = traceRoot(memref, region, shift);
  if (!p.root || !shift)
    return p;
  auto type = cast<MemRefType>(memref.getType());
  SmallVector<int64_t> strides;
  int64_t offset;
  if (failed(type.getStridesAndOffset(strides, offset)) || !type.hasStaticShape() ||
      ShapedType::isDynamic(offset) || !type.getElementType().isIntOrFloat())
    return p;
  int64_t extent = 1;
  for (auto [size, stride] : llvm::zip(type.getShape(), strides)) {
    if (ShapedType::isDynamic(stride) || stride < 0)
      return p;
    if (size == 0)
      extent = 0;
    else if (extent > 0)
      extent += (size - 1) * stride;
  }
  int64_t bytes = type.getElementTypeBitWidth() / 8;
  if (bytes <= 0 || offset < 0)
    return p;
  p.lo = *shift + offset * bytes;
  p.hi = *shift + (offset + extent) * bytes;
  return p;
}

/// Whether no byte touched through `a` can be touched through `b`.
bool disjoint(const Place &a, const Place &b) {
  if (!a.root || !b.root)
    return false;
  if (a.root != b.root)
    return !(a.isArg && b.isArg); // distinct allocations, or an allocation and an argument
  return a.known() && b.known() && (a.hi <= b.lo || b.hi <= a.lo);
}

/// Step 1 and 2: sets kScopes / kNoAlias on the accesses of one omp.parallel.
void annotateRegion(omp::ParallelOp region) {
  MLIRContext *ctx = region.getContext();
  SmallVector<std::pair<Operation *, Place>> accesses;
  region.walk([&](Operation *op) {
    Value memref;
    if (auto load = dyn_cast<memref::LoadOp>(op))
      memref = load.getMemRef();
    else if (auto store = dyn_cast<memref::StoreOp>(op))
      memref = store.getMemRef();
    else
      return;
    Place p = placeOf(memref, region);
    if (p.root)
      accesses.push_back({op, p});
  });
  // Classes: one per distinct (root, interval).
  SmallVector<Place> classes;
  SmallVector<unsigned> classOf;
  for (auto &[op, p] : accesses) {
    auto *it = llvm::find_if(classes, [&](const Place &c) {
      return c.root == p.root && c.lo == p.lo && c.hi == p.hi;
    });
    classOf.push_back(it - classes.begin());
    if (it == classes.end())
      classes.push_back(p);
  }
  if (classes.size() < 2)
    return;
  auto domain = LLVM::AliasScopeDomainAttr::get(ctx, StringAttr::get(ctx, "llmp.omp.parallel"));
  SmallVector<Attribute> scopes;
  for (size_t i = 0; i < classes.size(); ++i)
    scopes.push_back(LLVM::AliasScopeAttr::get(domain));
  SmallVector<ArrayAttr> noalias;
  bool any = false;
  for (const Place &c : classes) {
    SmallVector<Attribute> list;
    for (auto [other, scope] : llvm::zip(classes, scopes))
      if (disjoint(c, other))
        list.push_back(scope);
    any |= !list.empty();
    noalias.push_back(ArrayAttr::get(ctx, list));
  }
  if (!any)
    return;
  for (auto [access, cls] : llvm::zip(accesses, classOf)) {
    access.first->setAttr(kScopes, ArrayAttr::get(ctx, {scopes[cls]}));
    if (!noalias[cls].empty())
      access.first->setAttr(kNoAlias, noalias[cls]);
  }
}

/// The LLVM access that replaces `op` at address `ptr`, as upstream's LoadOpLowering /
/// StoreOpLowering build it (alignment and nontemporal kept).
LLVM::AliasAnalysisOpInterface buildAccess(ConversionPatternRewriter &rewriter,
                                           const TypeConverter &converter, memref::LoadOp op,
                                           memref::LoadOp::Adaptor, Value ptr) {
  auto load = LLVM::LoadOp::create(rewriter, op.getLoc(),
                                   converter.convertType(op.getMemRefType().getElementType()),
                                   ptr, op.getAlignment().value_or(0), /*isVolatile=*/false,
                                   op.getNontemporal());
  rewriter.replaceOp(op, load.getResult());
  return load;
}
LLVM::AliasAnalysisOpInterface buildAccess(ConversionPatternRewriter &rewriter,
                                           const TypeConverter &, memref::StoreOp op,
                                           memref::StoreOp::Adaptor adaptor, Value ptr) {
  auto store = LLVM::StoreOp::create(rewriter, op.getLoc(), adaptor.getValue(), ptr,
                                     op.getAlignment().value_or(0), /*isVolatile=*/false,
                                     op.getNontemporal());
  rewriter.eraseOp(op);
  return store;
}

/// memref.load / memref.store that annotateRegion scoped -> llvm.load / llvm.store with
/// the scopes (others are left to upstream's patterns).
template <typename Op>
struct ScopedAccess : ConvertOpToLLVMPattern<Op> {
  using ConvertOpToLLVMPattern<Op>::ConvertOpToLLVMPattern;
  LogicalResult matchAndRewrite(Op op, typename Op::Adaptor adaptor,
                                ConversionPatternRewriter &rewriter) const override {
    if (!op->hasAttr(kScopes))
      return failure();
    Value ptr = this->getStridedElementPtr(rewriter, op.getLoc(), op.getMemRefType(),
                                           adaptor.getMemref(), adaptor.getIndices(), kNoWrap);
    ArrayAttr scopes = op->template getAttrOfType<ArrayAttr>(kScopes);
    ArrayAttr noalias = op->template getAttrOfType<ArrayAttr>(kNoAlias);
    LLVM::AliasAnalysisOpInterface access =
        buildAccess(rewriter, *this->getTypeConverter(), op, adaptor, ptr);
    access.setAliasScopes(scopes);
    if (noalias)
      access.setNoAliasScopes(noalias);
    return success();
  }
};

struct FinalizeMemRefToLLVM
    : llmp::impl::LLMPFinalizeMemRefToLLVMBase<FinalizeMemRefToLLVM> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    module.walk([](omp::ParallelOp op) {
      if (!op->getParentOfType<omp::ParallelOp>())
        annotateRegion(op);
    });
    // As finalize-memref-to-llvm{use-generic-functions}.
    const auto &dataLayout = getAnalysis<DataLayoutAnalysis>();
    LowerToLLVMOptions options(&getContext(), dataLayout.getAtOrAbove(module));
    options.useGenericFunctions = true;
    LLVMTypeConverter converter(&getContext(), options, &dataLayout);
    RewritePatternSet patterns(&getContext());
    SymbolTableCollection symbolTables;
    populateFinalizeMemRefToLLVMConversionPatterns(converter, patterns, &symbolTables);
    patterns.add<ScopedAccess<memref::LoadOp>, ScopedAccess<memref::StoreOp>>(converter,
                                                                          /*benefit=*/2);
    LLVMConversionTarget target(getContext());
    target.addLegalOp<func::FuncOp>();
    if (failed(applyPartialConversion(module, target, std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
