// SPDX-License-Identifier: Apache-2.0
/// The llmp dialect: op verifiers (shape checks with expected-vs-found messages), the
/// gradient rules of DifferentiableOpInterface, and the matmul/transpose canonicalisation.
#include "compiler/Dialect/LLMP/IR/LLMPOps.h"
#include "kernels/cpu/Quant.h"

#include "mlir/IR/OpImplementation.h"
#include "mlir/IR/PatternMatch.h"
#include "llvm/ADT/STLExtras.h"

using namespace mlir;
using namespace mlir::llmp;

#include "compiler/Dialect/LLMP/IR/LLMPOpsDialect.cpp.inc"
#include "compiler/Dialect/LLMP/IR/LLMPInterfaces.cpp.inc"

void LLMPDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "compiler/Dialect/LLMP/IR/LLMPOps.cpp.inc"
      >();
}

//===----------------------------------------------------------------------===//
// Verifier helpers
//===----------------------------------------------------------------------===//

namespace {

/// Formats a shape as `2x8x16` (`scalar` for rank 0).
std::string shapeStr(ArrayRef<int64_t> shape) {
  if (shape.empty())
    return "scalar";
  std::string s;
  for (auto [i, d] : llvm::enumerate(shape)) {
    if (i)
      s += "x";
    s += std::to_string(d);
  }
  return s;
}

ArrayRef<int64_t> shapeOf(Value v) { return cast<RankedTensorType>(v.getType()).getShape(); }

/// Checks that `found` has shape `expected`; `what` names the operand or result.
LogicalResult checkShape(Operation *op, StringRef what, ArrayRef<int64_t> expected,
                         Value found) {
  if (shapeOf(found) == expected)
    return success();
  return op->emitOpError() << "expected " << what << " of shape " << shapeStr(expected)
                           << " but found " << shapeStr(shapeOf(found));
}

/// Checks that `v` has rank `rank`.
LogicalResult checkRank(Operation *op, StringRef what, int64_t rank, Value v) {
  if (static_cast<int64_t>(shapeOf(v).size()) == rank)
    return success();
  return op->emitOpError() << "expected " << what << " of rank " << rank << " but found rank "
                           << shapeOf(v).size();
}

/// Checks that `heads` divides the model width `d` (and, for rope, that the head is even).
LogicalResult checkHeads(Operation *op, int64_t heads, int64_t d, bool evenHead) {
  if (heads <= 0 || d % heads != 0)
    return op->emitOpError() << "expected heads to divide the model width " << d
                             << " but found heads = " << heads;
  if (evenHead && (d / heads) % 2 != 0)
    return op->emitOpError() << "expected an even head size but found " << d / heads;
  return success();
}

} // namespace

//===----------------------------------------------------------------------===//
// Verifiers
//===----------------------------------------------------------------------===//

LogicalResult EmbeddingOp::verify() {
  if (failed(checkRank(*this, "table", 2, getTable())) ||
      failed(checkRank(*this, "ids", 2, getIds())))
    return failure();
  auto ids = shapeOf(getIds());
  return checkShape(*this, "result", {ids[0], ids[1], shapeOf(getTable())[1]}, getResult());
}

LogicalResult MatmulOp::verify() {
  if (failed(checkRank(*this, "lhs", 2, getLhs())) ||
      failed(checkRank(*this, "rhs", 2, getRhs())))
    return failure();
  auto a = shapeOf(getLhs()), b = shapeOf(getRhs());
  int64_t m = getTransposeA() ? a[1] : a[0], ka = getTransposeA() ? a[0] : a[1];
  int64_t kb = getTransposeB() ? b[1] : b[0], n = getTransposeB() ? b[0] : b[1];
  if (ka != kb)
    return emitOpError() << "expected the contraction sizes to match but found " << ka
                         << " (lhs) and " << kb << " (rhs)";
  return checkShape(*this, "result", {m, n}, getResult());
}

LogicalResult MatmulNf4Op::verify() {
  if (failed(checkRank(*this, "input", 2, getInput())) ||
      failed(checkRank(*this, "weight", 1, getWeight())))
    return failure();
  int64_t rows = static_cast<int64_t>(getRows()), cols = static_cast<int64_t>(getCols());
  int64_t block = static_cast<int64_t>(getBlock());
  if (rows < 1 || cols < 1 || block < 1)
    return emitOpError() << "expected rows, cols and block >= 1 but found rows = " << rows
                         << ", cols = " << cols << ", block = " << block;
  int64_t bytes = lrt::quant::nf4Layout(rows * cols, block, getDoubleQuant()).byteSize;
  if (failed(checkShape(*this, "weight", {bytes}, getWeight())))
    return failure();
  auto x = shapeOf(getInput());
  bool tb = getTransposeB();
  int64_t k = tb ? cols : rows, n = tb ? rows : cols;
  if (x[1] != k)
    return emitOpError() << "expected the contraction sizes to match but found " << x[1]
                         << " (input) and " << k << " (weight)";
  return checkShape(*this, "result", {x[0], n}, getResult());
}

LogicalResult ReshapeOp::verify() {
  auto in = cast<RankedTensorType>(getInput().getType());
  auto out = cast<RankedTensorType>(getResult().getType());
  if (in.getElementType() != out.getElementType())
    return emitOpError() << "expected result element type " << in.getElementType()
                         << " but found " << out.getElementType();
  if (in.getNumElements() != out.getNumElements())
    return emitOpError() << "expected result with " << in.getNumElements()
                         << " elements but found " << out.getNumElements();
  return success();
}

LogicalResult TransposeOp::verify() {
  if (failed(checkRank(*this, "input", 2, getInput())))
    return failure();
  auto s = shapeOf(getInput());
  return checkShape(*this, "result", {s[1], s[0]}, getResult());
}

LogicalResult AddOp::verify() {
  if (failed(checkShape(*this, "rhs", shapeOf(getLhs()), getRhs())))
    return failure();
  return checkShape(*this, "result", shapeOf(getLhs()), getResult());
}

LogicalResult MulOp::verify() {
  if (failed(checkShape(*this, "rhs", shapeOf(getLhs()), getRhs())))
    return failure();
  return checkShape(*this, "result", shapeOf(getLhs()), getResult());
}

LogicalResult SiluOp::verify() {
  return checkShape(*this, "result", shapeOf(getInput()), getResult());
}

LogicalResult RMSNormOp::verify() {
  auto x = shapeOf(getInput());
  if (x.empty())
    return emitOpError() << "expected an input of rank >= 1 but found a scalar";
  if (failed(checkShape(*this, "weight", {x.back()}, getWeight())))
    return failure();
  return checkShape(*this, "result", x, getResult());
}

LogicalResult RopeOp::verify() {
  if (failed(checkRank(*this, "input", 3, getInput())))
    return failure();
  auto x = shapeOf(getInput());
  if (failed(checkHeads(*this, getHeads(), x[2], /*evenHead=*/true)))
    return failure();
  if (getPositions() && failed(checkShape(*this, "positions", x.take_front(2), getPositions())))
    return failure();
  return checkShape(*this, "result", x, getResult());
}

/// Checks the operands of attention and attention_grad: q (B,T,H*d), k and v (B,T,KV*d)
/// with KV dividing H, segments (B,T); `kvShape` receives k's expected shape.
static LogicalResult checkAttention(Operation *op, Value q, Value k, Value v, Value segments,
                                    int64_t heads, int64_t kvHeads,
                                    SmallVectorImpl<int64_t> &kvShape) {
  if (failed(checkRank(op, "q", 3, q)))
    return failure();
  auto qs = shapeOf(q);
  if (failed(checkHeads(op, heads, qs[2], /*evenHead=*/false)))
    return failure();
  if (kvHeads <= 0 || heads % kvHeads != 0)
    return op->emitOpError() << "expected kv_heads to divide heads = " << heads
                             << " but found kv_heads = " << kvHeads;
  kvShape.assign({qs[0], qs[1], qs[2] / heads * kvHeads});
  if (failed(checkShape(op, "k", kvShape, k)) || failed(checkShape(op, "v", kvShape, v)))
    return failure();
  if (segments && failed(checkShape(op, "segments", qs.take_front(2), segments)))
    return failure();
  return success();
}

LogicalResult AttentionOp::verify() {
  SmallVector<int64_t> kvShape;
  if (failed(checkAttention(*this, getQ(), getK(), getV(), getSegments(), getHeads(),
                            getNumKVHeads(), kvShape)))
    return failure();
  return checkShape(*this, "result", shapeOf(getQ()), getResult());
}

LogicalResult DropoutOp::verify() {
  double p = getP().convertToDouble();
  if (!(p >= 0.0 && p < 1.0))
    return emitOpError() << "expected a drop probability p in [0, 1) but found " << p;
  if (failed(checkShape(*this, "key", {2}, getKey())))
    return failure();
  return checkShape(*this, "result", shapeOf(getInput()), getResult());
}

LogicalResult PositionsOp::verify() {
  if (failed(checkRank(*this, "segments", 2, getSegments())))
    return failure();
  return checkShape(*this, "result", shapeOf(getSegments()), getResult());
}

/// Checks a KV cache operand: rank 5 (L, B, KV, C, d) with `layer` < L.
static LogicalResult checkCache(Operation *op, StringRef what, Value cache, int64_t layer) {
  if (failed(checkRank(op, what, 5, cache)))
    return failure();
  int64_t layers = shapeOf(cache)[0];
  if (layer < 0 || layer >= layers)
    return op->emitOpError() << "expected layer in [0, " << layers << ") but found " << layer;
  return success();
}

LogicalResult KVCacheWriteOp::verify() {
  if (failed(checkCache(*this, "cache", getCache(), getLayer())) ||
      failed(checkRank(*this, "x", 3, getX())))
    return failure();
  auto c = shapeOf(getCache());
  auto x = shapeOf(getX());
  if (failed(checkShape(*this, "x", {c[1], x[1], c[2] * c[4]}, getX())))
    return failure();
  if (x[1] > c[3])
    return emitOpError() << "expected at most " << c[3] << " tokens (the cache's positions) but found "
                         << x[1];
  if (getStart() && failed(checkShape(*this, "start", {c[1]}, getStart())))
    return failure();
  return checkShape(*this, "result", c, getResult());
}

LogicalResult CacheAttentionOp::verify() {
  if (failed(checkRank(*this, "q", 3, getQ())) ||
      failed(checkCache(*this, "k_cache", getKCache(), getLayer())))
    return failure();
  auto q = shapeOf(getQ());
  auto c = shapeOf(getKCache());
  int64_t heads = getHeads(), kv = getNumKVHeads();
  if (failed(checkHeads(*this, heads, q[2], /*evenHead=*/false)))
    return failure();
  if (kv <= 0 || heads % kv != 0)
    return emitOpError() << "expected kv_heads to divide heads = " << heads
                         << " but found kv_heads = " << kv;
  SmallVector<int64_t> cacheShape = {c[0], q[0], kv, c[3], q[2] / heads};
  if (failed(checkShape(*this, "k_cache", cacheShape, getKCache())) ||
      failed(checkShape(*this, "v_cache", cacheShape, getVCache())) ||
      failed(checkShape(*this, "start", {q[0]}, getStart())))
    return failure();
  return checkShape(*this, "result", q, getResult());
}

LogicalResult LastTokenOp::verify() {
  if (failed(checkRank(*this, "input", 3, getInput())))
    return failure();
  auto x = shapeOf(getInput());
  if (failed(checkShape(*this, "lengths", {x[0]}, getLengths())))
    return failure();
  return checkShape(*this, "result", {x[0], x[2]}, getResult());
}

LogicalResult CrossEntropyOp::verify() {
  if (failed(checkRank(*this, "logits", 3, getLogits())))
    return failure();
  auto l = shapeOf(getLogits());
  if (failed(checkShape(*this, "targets", {l[0], l[1]}, getTargets())))
    return failure();
  return checkShape(*this, "result", {l[0], l[1]}, getResult());
}

LogicalResult MeanOp::verify() { return success(); }

LogicalResult TargetMeanOp::verify() {
  return checkShape(*this, "targets", shapeOf(getInput()), getTargets());
}

LogicalResult TargetMeanGradOp::verify() {
  return checkShape(*this, "result", shapeOf(getTargets()), getResult());
}

LogicalResult SplatOp::verify() { return success(); }

LogicalResult EmbeddingGradOp::verify() {
  if (failed(checkRank(*this, "ids", 2, getIds())) ||
      failed(checkRank(*this, "dy", 3, getDy())))
    return failure();
  auto ids = shapeOf(getIds()), dy = shapeOf(getDy());
  if (dy.take_front(2) != ids)
    return emitOpError() << "expected dy of shape " << shapeStr(ids) << "xD but found "
                         << shapeStr(dy);
  return checkShape(*this, "result", {static_cast<int64_t>(getVocab()), dy[2]}, getResult());
}

LogicalResult SiluGradOp::verify() {
  if (failed(checkShape(*this, "dy", shapeOf(getInput()), getDy())))
    return failure();
  return checkShape(*this, "result", shapeOf(getInput()), getResult());
}

LogicalResult RMSNormGradOp::verify() {
  auto x = shapeOf(getInput());
  if (x.empty())
    return emitOpError() << "expected an input of rank >= 1 but found a scalar";
  if (failed(checkShape(*this, "weight", {x.back()}, getWeight())) ||
      failed(checkShape(*this, "dy", x, getDy())) ||
      failed(checkShape(*this, "dinput", x, getDinput())))
    return failure();
  return checkShape(*this, "dweight", {x.back()}, getDweight());
}

LogicalResult AttentionGradOp::verify() {
  SmallVector<int64_t> kvShape;
  if (failed(checkAttention(*this, getQ(), getK(), getV(), getSegments(), getHeads(),
                            getNumKVHeads(), kvShape)))
    return failure();
  auto q = shapeOf(getQ());
  if (failed(checkShape(*this, "dy", q, getDy())) ||
      failed(checkShape(*this, "gradient", q, getDq())) ||
      failed(checkShape(*this, "gradient", kvShape, getDk())))
    return failure();
  return checkShape(*this, "gradient", kvShape, getDv());
}

LogicalResult CrossEntropyGradOp::verify() {
  if (failed(checkRank(*this, "logits", 3, getLogits())))
    return failure();
  auto l = shapeOf(getLogits());
  if (failed(checkShape(*this, "targets", {l[0], l[1]}, getTargets())) ||
      failed(checkShape(*this, "dy", {l[0], l[1]}, getDy())))
    return failure();
  return checkShape(*this, "result", l, getResult());
}

//===----------------------------------------------------------------------===//
// Gradient rules
//===----------------------------------------------------------------------===//

/// The incoming gradient of a single-result op, or zeros-free failure when it is missing.
static Value soleGrad(ArrayRef<Value> resultGrads) {
  return resultGrads.empty() ? Value() : resultGrads.front();
}

LogicalResult EmbeddingOp::buildGradients(OpBuilder &b, ArrayRef<Value> resultGrads,
                                          SmallVectorImpl<Value> &operandGrads) {
  Value dy = soleGrad(resultGrads);
  auto tableTy = getTable().getType();
  operandGrads.push_back(EmbeddingGradOp::create(b, getLoc(), tableTy, getIds(), dy,
                                                 b.getI64IntegerAttr(tableTy.getDimSize(0))));
  operandGrads.push_back(Value());
  return success();
}

LogicalResult MatmulOp::buildGradients(OpBuilder &b, ArrayRef<Value> resultGrads,
                                       SmallVectorImpl<Value> &operandGrads) {
  Value dc = soleGrad(resultGrads), a = getLhs(), bb = getRhs();
  Location loc = getLoc();
  auto mm = [&](Value x, Value y, bool ta, bool tb, Type ty) -> Value {
    auto op = MatmulOp::create(b, loc, ty, x, y);
    op.setTransposeA(ta);
    op.setTransposeB(tb);
    return op;
  };
  Type aTy = a.getType(), bTy = bb.getType();
  bool ta = getTransposeA(), tb = getTransposeB();
  if (!cast<RankedTensorType>(bTy).getElementType().isF32()) {
    // A bf16 rhs (a frozen base weight, llmp-bf16-base): dA only, with B kept the rhs:
    // dC op(B)^T is op(A)'s gradient, transposed back when A is stored transposed.
    auto sa = cast<RankedTensorType>(aTy).getShape();
    Type opATy = RankedTensorType::get(ta ? ArrayRef<int64_t>{sa[1], sa[0]} : sa, b.getF32Type());
    Value dOpA = mm(dc, bb, false, !tb, opATy);
    operandGrads.push_back(ta ? Value(TransposeOp::create(b, loc, aTy, dOpA)) : dOpA);
    operandGrads.push_back(Value());
    return success();
  }
  // C = op(A) op(B); each case writes dA, dB as one matmul in A's and B's own layout.
  if (!ta && !tb) {
    operandGrads.push_back(mm(dc, bb, false, true, aTy)); // dA = dC B^T
    operandGrads.push_back(mm(a, dc, true, false, bTy));  // dB = A^T dC
  } else if (!ta && tb) {
    operandGrads.push_back(mm(dc, bb, false, false, aTy)); // dA = dC B
    operandGrads.push_back(mm(dc, a, true, false, bTy));   // dB = dC^T A
  } else if (ta && !tb) {
    operandGrads.push_back(mm(bb, dc, false, true, aTy)); // dA = B dC^T
    operandGrads.push_back(mm(a, dc, false, false, bTy)); // dB = A dC
  } else {
    operandGrads.push_back(mm(bb, dc, true, true, aTy)); // dA = B^T dC^T
    operandGrads.push_back(mm(dc, a, true, true, bTy));  // dB = dC^T A^T
  }
  return success();
}

LogicalResult MatmulNf4Op::buildGradients(OpBuilder &b, ArrayRef<Value> resultGrads,
                                          SmallVectorImpl<Value> &operandGrads) {
  // y = x op(W): dx = dy op(W)^T, the same product with transpose_b flipped; W is frozen.
  auto dx = MatmulNf4Op::create(b, getLoc(), getInput().getType(), soleGrad(resultGrads),
                                getWeight(), getRowsAttr(), getColsAttr(), getBlockAttr(),
                                getDoubleQuantAttr(), /*transpose_b=*/nullptr);
  dx.setTransposeB(!getTransposeB());
  operandGrads.push_back(dx);
  operandGrads.push_back(Value());
  return success();
}

LogicalResult ReshapeOp::buildGradients(OpBuilder &b, ArrayRef<Value> resultGrads,
                                        SmallVectorImpl<Value> &operandGrads) {
  if (!isa<FloatType>(getInput().getType().getElementType())) {
    operandGrads.push_back(Value());
    return success();
  }
  operandGrads.push_back(
      ReshapeOp::create(b, getLoc(), getInput().getType(), soleGrad(resultGrads)));
  return success();
}

LogicalResult TransposeOp::buildGradients(OpBuilder &b, ArrayRef<Value> resultGrads,
                                          SmallVectorImpl<Value> &operandGrads) {
  operandGrads.push_back(
      TransposeOp::create(b, getLoc(), getInput().getType(), soleGrad(resultGrads)));
  return success();
}

LogicalResult AddOp::buildGradients(OpBuilder &b, ArrayRef<Value> resultGrads,
                                    SmallVectorImpl<Value> &operandGrads) {
  operandGrads.push_back(soleGrad(resultGrads));
  operandGrads.push_back(soleGrad(resultGrads));
  return success();
}

LogicalResult MulOp::buildGradients(OpBuilder &b, ArrayRef<Value> resultGrads,
                                    SmallVectorImpl<Value> &operandGrads) {
  Value dy = soleGrad(resultGrads);
  Type ty = getType();
  operandGrads.push_back(MulOp::create(b, getLoc(), ty, dy, getRhs()));
  operandGrads.push_back(MulOp::create(b, getLoc(), ty, dy, getLhs()));
  return success();
}

LogicalResult DropoutOp::buildGradients(OpBuilder &b, ArrayRef<Value> resultGrads,
                                        SmallVectorImpl<Value> &operandGrads) {
  // y = x * mask / (1 - p) is linear in x: dx = dy * mask / (1 - p), the same mask
  // recomputed from the same seed and key.
  operandGrads.push_back(DropoutOp::create(b, getLoc(), getType(), soleGrad(resultGrads),
                                           getKey(), getPAttr(), getSeedAttr()));
  operandGrads.push_back(Value());
  return success();
}

LogicalResult SiluOp::buildGradients(OpBuilder &b, ArrayRef<Value> resultGrads,
                                     SmallVectorImpl<Value> &operandGrads) {
  operandGrads.push_back(
      SiluGradOp::create(b, getLoc(), getType(), getInput(), soleGrad(resultGrads)));
  return success();
}

LogicalResult RMSNormOp::buildGradients(OpBuilder &b, ArrayRef<Value> resultGrads,
                                        SmallVectorImpl<Value> &operandGrads) {
  auto g = RMSNormGradOp::create(b, getLoc(), getInput().getType(), getWeight().getType(),
                                 getInput(), getWeight(), soleGrad(resultGrads), getEpsAttr());
  operandGrads.push_back(g.getDinput());
  operandGrads.push_back(g.getDweight());
  return success();
}

LogicalResult RopeOp::buildGradients(OpBuilder &b, ArrayRef<Value> resultGrads,
                                     SmallVectorImpl<Value> &operandGrads) {
  // A rotation's transpose is the rotation by the opposite angle (same positions).
  auto g = RopeOp::create(b, getLoc(), getType(), soleGrad(resultGrads), getPositions(),
                          getHeadsAttr(), getThetaAttr(), /*inverse=*/nullptr);
  g.setInverse(!getInverse());
  operandGrads.push_back(g);
  if (getPositions())
    operandGrads.push_back(Value());
  return success();
}

LogicalResult AttentionOp::buildGradients(OpBuilder &b, ArrayRef<Value> resultGrads,
                                          SmallVectorImpl<Value> &operandGrads) {
  auto g = AttentionGradOp::create(
      b, getLoc(), TypeRange{getQ().getType(), getK().getType(), getV().getType()}, getQ(),
      getK(), getV(), soleGrad(resultGrads), getSegments(), getHeadsAttr(), getKvHeadsAttr(),
      getCausalAttr());
  operandGrads.append({g.getDq(), g.getDk(), g.getDv()});
  if (getSegments())
    operandGrads.push_back(Value());
  return success();
}

LogicalResult CrossEntropyOp::buildGradients(OpBuilder &b, ArrayRef<Value> resultGrads,
                                             SmallVectorImpl<Value> &operandGrads) {
  operandGrads.push_back(CrossEntropyGradOp::create(b, getLoc(), getLogits().getType(),
                                                    getLogits(), getTargets(),
                                                    soleGrad(resultGrads)));
  operandGrads.push_back(Value());
  return success();
}

LogicalResult TargetMeanOp::buildGradients(OpBuilder &b, ArrayRef<Value> resultGrads,
                                           SmallVectorImpl<Value> &operandGrads) {
  operandGrads.push_back(TargetMeanGradOp::create(b, getLoc(), getInput().getType(),
                                                  getTargets(), soleGrad(resultGrads)));
  operandGrads.push_back(Value());
  return success();
}

LogicalResult MeanOp::buildGradients(OpBuilder &b, ArrayRef<Value> resultGrads,
                                     SmallVectorImpl<Value> &operandGrads) {
  auto ty = getInput().getType();
  float scale = 1.0f / static_cast<float>(ty.getNumElements());
  operandGrads.push_back(SplatOp::create(b, getLoc(), ty, soleGrad(resultGrads),
                                         b.getF32FloatAttr(scale)));
  return success();
}

//===----------------------------------------------------------------------===//
// Canonicalisation
//===----------------------------------------------------------------------===//

namespace {

/// matmul(transpose(a), b) -> matmul(a, b) {transpose_a flipped}; likewise for b.
struct FoldTransposeIntoMatmul : OpRewritePattern<MatmulOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(MatmulOp op, PatternRewriter &rewriter) const override {
    auto ta = op.getLhs().getDefiningOp<TransposeOp>();
    auto tb = op.getRhs().getDefiningOp<TransposeOp>();
    if (!ta && !tb)
      return failure();
    Value lhs = ta ? ta.getInput() : op.getLhs();
    Value rhs = tb ? tb.getInput() : op.getRhs();
    bool newTa = ta ? !op.getTransposeA() : op.getTransposeA();
    bool newTb = tb ? !op.getTransposeB() : op.getTransposeB();
    auto mm = MatmulOp::create(rewriter, op.getLoc(), op.getType(), lhs, rhs);
    mm.setTransposeA(newTa);
    mm.setTransposeB(newTb);
    rewriter.replaceOp(op, mm.getResult());
    return success();
  }
};

} // namespace

void MatmulOp::getCanonicalizationPatterns(RewritePatternSet &results, MLIRContext *context) {
  results.add<FoldTransposeIntoMatmul>(context);
}

#define GET_OP_CLASSES
#include "compiler/Dialect/LLMP/IR/LLMPOps.cpp.inc"
