// SPDX-License-Identifier: Apache-2.0
/// `llmp-lower-to-linalg`: rewrites every llmp op into linalg/tensor/arith/math/scf on
/// tensors. Algorithm:
///   1. Collect the llmp ops of the module in program order.
///   2. For each, build its lowering right before it (helpers below: elementwise generics,
///      last-dim reductions, head reshapes, batch matmuls with indexing maps) and replace
///      its results.
///   3. Fail with a diagnostic on an llmp op without a lowering.
#include "compiler/Conversion/LLMPToLinalg/Passes.h"
#include "compiler/Dialect/LLMP/IR/LLMPOps.h"
#include "kernels/cpu/Quant.h"

#include "mlir/IR/PatternMatch.h"
#include "llvm/ADT/TypeSwitch.h"

#include <cmath>
#include <limits>

namespace mlir::llmp {
#define GEN_PASS_DEF_LLMPLOWERTOLINALG
#include "compiler/Conversion/LLMPToLinalg/Passes.h.inc"
} // namespace mlir::llmp

using namespace mlir;
using namespace mlir::llmp;

namespace {

using utils::IteratorType;
using BodyFn = function_ref<Value(OpBuilder &, Location, ValueRange)>;

/// Builds linalg on tensors at one insertion point.
struct Lowerer {
  OpBuilder &b;
  Location loc;

  Type f32() { return b.getF32Type(); }
  Value cst(double v) { return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(v)); }
  Value idx(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }
  /// An empty tensor of `shape`; `dyn` gives the sizes of its dynamic dimensions in order.
  Value empty(ArrayRef<int64_t> shape, Type elt, ValueRange dyn = {}) {
    return tensor::EmptyOp::create(b, loc, shape, elt, dyn);
  }
  Value fill(ArrayRef<int64_t> shape, double v, ValueRange dyn = {}) {
    Value e = empty(shape, f32(), dyn);
    return linalg::FillOp::create(b, loc, ValueRange{cst(v)}, ValueRange{e}).getResult(0);
  }
  /// The map (d0..d{rank-1}) -> (d_i for i in dims).
  AffineMap map(unsigned rank, ArrayRef<unsigned> dims) {
    SmallVector<AffineExpr> exprs;
    for (unsigned d : dims)
      exprs.push_back(b.getAffineDimExpr(d));
    return AffineMap::get(rank, 0, exprs, b.getContext());
  }
  AffineMap id(unsigned rank) { return b.getMultiDimIdentityMap(rank); }
  /// The map dropping the last dimension.
  AffineMap dropLast(unsigned rank) {
    SmallVector<unsigned> dims;
    for (unsigned i = 0; i + 1 < rank; ++i)
      dims.push_back(i);
    return map(rank, dims);
  }

  /// A linalg.generic with one result; `body` gets the block arguments (ins, then out).
  Value generic(Value init, ValueRange ins, ArrayRef<AffineMap> maps,
                ArrayRef<IteratorType> iters, BodyFn body) {
    auto op = linalg::GenericOp::create(
        b, loc, TypeRange{init.getType()}, ins, ValueRange{init}, maps, iters,
        [&](OpBuilder &nb, Location nl, ValueRange args) {
          linalg::YieldOp::create(nb, nl, body(nb, nl, args));
        });
    return op.getResult(0);
  }

  /// An elementwise generic over `ins` (all of shape `shape`).
  Value elementwise(ArrayRef<int64_t> shape, ValueRange ins, BodyFn body) {
    unsigned rank = shape.size();
    SmallVector<AffineMap> maps(ins.size() + 1, id(rank));
    SmallVector<IteratorType> iters(rank, IteratorType::parallel);
    return generic(empty(shape, f32()), ins, maps, iters, body);
  }

  /// Reduces over the last dimension: out[..] = combine(out[..], body(ins at [.., j])).
  /// `ins` have the full shape unless `insMaps` says otherwise.
  Value reduceLast(ArrayRef<int64_t> shape, ValueRange ins, ArrayRef<AffineMap> insMaps,
                   double init, BodyFn body) {
    unsigned rank = shape.size();
    SmallVector<AffineMap> maps(insMaps);
    maps.push_back(dropLast(rank));
    SmallVector<IteratorType> iters(rank, IteratorType::parallel);
    iters.back() = IteratorType::reduction;
    return generic(fill(shape.drop_back(), init), ins, maps, iters, body);
  }

  Value index(OpBuilder &nb, Location nl, int64_t dim) {
    return linalg::IndexOp::create(nb, nl, dim);
  }
  static Value toF32(OpBuilder &nb, Location nl, Value index) {
    Value i = arith::IndexCastOp::create(nb, nl, nb.getI64Type(), index);
    return arith::SIToFPOp::create(nb, nl, nb.getF32Type(), i);
  }
  static Value toIndex(OpBuilder &nb, Location nl, Value i32) {
    return arith::IndexCastOp::create(nb, nl, nb.getIndexType(), i32);
  }

  /// A contraction; `batched` selects linalg.batch_matmul. Shapes: op(a) is ([Bt,]M,K),
  /// op(b) is ([Bt,]K,N); the result is ([Bt,]M,N): init + op(a) op(b), with `init` zeros
  /// unless given (an accumulator of that shape).
  Value matmul(Value a, Value bm, bool ta, bool tb, ArrayRef<int64_t> outShape,
               Value init = {}) {
    bool batched = outShape.size() == 3;
    if (!init)
      init = fill(outShape, 0.0);
    // Dims: (m, n, k) or (bt, m, n, k).
    unsigned o = batched ? 1 : 0, r = o + 3;
    unsigned m = o, n = o + 1, k = o + 2;
    auto pre = [&](unsigned x, unsigned y) {
      return batched ? map(r, {0, x, y}) : map(r, {x, y});
    };
    SmallVector<AffineMap> maps = {ta ? pre(k, m) : pre(m, k), tb ? pre(n, k) : pre(k, n),
                                   pre(m, n)};
    ArrayAttr mapsAttr = b.getAffineMapArrayAttr(maps);
    if (batched) {
      auto op = linalg::BatchMatmulOp::create(b, loc, TypeRange{init.getType()},
                                              ValueRange{a, bm}, ValueRange{init});
      op.setIndexingMapsAttr(mapsAttr);
      return op.getResult(0);
    }
    auto op = linalg::MatmulOp::create(b, loc, TypeRange{init.getType()}, ValueRange{a, bm},
                                       ValueRange{init});
    op.setIndexingMapsAttr(mapsAttr);
    return op.getResult(0);
  }

  /// Rows [row, row + count) of the middle dimension of rank-3 `x` (Bt, M, N): `x` itself
  /// when that is all of it.
  Value rows(Value x, int64_t row, int64_t count) {
    auto s = cast<RankedTensorType>(x.getType()).getShape();
    if (row == 0 && count == s[1])
      return x;
    return tensor::ExtractSliceOp::create(
        b, loc, x, SmallVector<OpFoldResult>{b.getIndexAttr(0), b.getIndexAttr(row), b.getIndexAttr(0)},
        SmallVector<OpFoldResult>{b.getIndexAttr(s[0]), b.getIndexAttr(count), b.getIndexAttr(s[2])},
        SmallVector<OpFoldResult>(3, b.getIndexAttr(1)));
  }

  /// `into` (Bt, M, N) with rows [row, row + blk's M) replaced by `blk`: `blk` itself when
  /// it covers all of them.
  Value insertRows(Value blk, Value into, int64_t row) {
    auto s = cast<RankedTensorType>(blk.getType()).getShape();
    if (row == 0 && s == cast<RankedTensorType>(into.getType()).getShape())
      return blk;
    return tensor::InsertSliceOp::create(
        b, loc, blk, into,
        SmallVector<OpFoldResult>{b.getIndexAttr(0), b.getIndexAttr(row), b.getIndexAttr(0)},
        SmallVector<OpFoldResult>{b.getIndexAttr(s[0]), b.getIndexAttr(s[1]), b.getIndexAttr(s[2])},
        SmallVector<OpFoldResult>(3, b.getIndexAttr(1)));
  }

  /// The rows of queries [q0, q0 + count) of each of the `group` query heads of grouped `x`
  /// (B*KV, G*T, w) (groupHeads' layout: row g*T + i is query i of head g): (B*KV, G*count,
  /// w) in the same layout. A slice when G = 1, else a copy; `x` itself when count = T.
  Value queryRows(Value x, int64_t group, int64_t q0, int64_t count) {
    auto s = cast<RankedTensorType>(x.getType()).getShape();
    int64_t t = s[1] / group;
    if (count == t)
      return x;
    if (group == 1)
      return rows(x, q0, count);
    Value e = tensor::ExpandShapeOp::create(
        b, loc, RankedTensorType::get({s[0], group, t, s[2]}, f32()), x,
        SmallVector<ReassociationIndices>{{0}, {1, 2}, {3}});
    Value slice = tensor::ExtractSliceOp::create(
        b, loc, e,
        SmallVector<OpFoldResult>{b.getIndexAttr(0), b.getIndexAttr(0), b.getIndexAttr(q0),
                                  b.getIndexAttr(0)},
        SmallVector<OpFoldResult>{b.getIndexAttr(s[0]), b.getIndexAttr(group),
                                  b.getIndexAttr(count), b.getIndexAttr(s[2])},
        SmallVector<OpFoldResult>(4, b.getIndexAttr(1)));
    return tensor::CollapseShapeOp::create(
        b, loc, RankedTensorType::get({s[0], group * count, s[2]}, f32()), slice,
        SmallVector<ReassociationIndices>{{0}, {1, 2}, {3}});
  }

  /// `into` (B*KV, G*T, w) with the rows of queries [q0, q0 + count) of each group replaced
  /// by `blk` (B*KV, G*count, w), the inverse of queryRows (a slice insert when G = 1);
  /// `blk` when it covers all rows.
  Value insertQueryRows(Value blk, Value into, int64_t group, int64_t q0) {
    auto s = cast<RankedTensorType>(into.getType()).getShape();
    int64_t t = s[1] / group, count = cast<RankedTensorType>(blk.getType()).getShape()[1] / group;
    if (count == t)
      return blk;
    if (group == 1)
      return insertRows(blk, into, q0);
    auto sizes = [&](int64_t n) {
      return SmallVector<OpFoldResult>{b.getIndexAttr(s[0]), b.getIndexAttr(group),
                                       b.getIndexAttr(n), b.getIndexAttr(s[2])};
    };
    auto expand = [&](Value x, int64_t n) -> Value {
      return tensor::ExpandShapeOp::create(
          b, loc, RankedTensorType::get({s[0], group, n, s[2]}, f32()), x,
          SmallVector<ReassociationIndices>{{0}, {1, 2}, {3}});
    };
    Value ins = tensor::InsertSliceOp::create(
        b, loc, expand(blk, count), expand(into, t),
        SmallVector<OpFoldResult>{b.getIndexAttr(0), b.getIndexAttr(0), b.getIndexAttr(q0),
                                  b.getIndexAttr(0)},
        sizes(count), SmallVector<OpFoldResult>(4, b.getIndexAttr(1)));
    return tensor::CollapseShapeOp::create(b, loc, cast<RankedTensorType>(into.getType()), ins,
                                           SmallVector<ReassociationIndices>{{0}, {1, 2}, {3}});
  }

  Value reshape(Value x, RankedTensorType to) {
    auto from = cast<RankedTensorType>(x.getType());
    if (from.getShape() == to.getShape())
      return x;
    auto all = [](int64_t rank) {
      ReassociationIndices r;
      for (int64_t i = 0; i < rank; ++i)
        r.push_back(i);
      return SmallVector<ReassociationIndices>{r};
    };
    auto flatTy = RankedTensorType::get({from.getNumElements()}, from.getElementType());
    Value flat = x;
    if (from.getRank() == 0)
      flat = tensor::ExpandShapeOp::create(b, loc, flatTy, x, SmallVector<ReassociationIndices>{});
    else if (from.getRank() > 1)
      flat = tensor::CollapseShapeOp::create(b, loc, flatTy, x, all(from.getRank()));
    if (to.getRank() == 1)
      return flat;
    if (to.getRank() == 0)
      return tensor::CollapseShapeOp::create(b, loc, to, flat, SmallVector<ReassociationIndices>{});
    return tensor::ExpandShapeOp::create(b, loc, to, flat, all(to.getRank()));
  }

  /// (B,T,D) -> (B*H, T, D/H): split heads and move them next to the batch.
  Value toHeads(Value x, int64_t heads) {
    auto s = cast<RankedTensorType>(x.getType()).getShape();
    int64_t bs = s[0], t = s[1], hd = s[2] / heads;
    auto t4 = RankedTensorType::get({bs, t, heads, hd}, f32());
    Value e = tensor::ExpandShapeOp::create(b, loc, t4, x,
                                            SmallVector<ReassociationIndices>{{0}, {1}, {2, 3}});
    Value tr = linalg::TransposeOp::create(b, loc, e, empty({bs, heads, t, hd}, f32()),
                                           ArrayRef<int64_t>{0, 2, 1, 3})
                   .getResult()[0];
    return tensor::CollapseShapeOp::create(
        b, loc, RankedTensorType::get({bs * heads, t, hd}, f32()), tr,
        SmallVector<ReassociationIndices>{{0, 1}, {2}, {3}});
  }

  /// (B*H, T, D/H) -> (B,T,D), the inverse of toHeads.
  Value fromHeads(Value x, int64_t bs, int64_t heads) {
    auto s = cast<RankedTensorType>(x.getType()).getShape();
    int64_t t = s[1], hd = s[2];
    Value e = tensor::ExpandShapeOp::create(
        b, loc, RankedTensorType::get({bs, heads, t, hd}, f32()), x,
        SmallVector<ReassociationIndices>{{0, 1}, {2}, {3}});
    Value tr = linalg::TransposeOp::create(b, loc, e, empty({bs, t, heads, hd}, f32()),
                                           ArrayRef<int64_t>{0, 2, 1, 3})
                   .getResult()[0];
    return tensor::CollapseShapeOp::create(
        b, loc, RankedTensorType::get({bs, t, heads * hd}, f32()), tr,
        SmallVector<ReassociationIndices>{{0}, {1}, {2, 3}});
  }

  /// (B*H, T, d) -> (B*KV, (H/KV)*T, d) for `groups` = B*KV: the query heads of one
  /// key/value group become consecutive rows (H = KV * G, head h = kv * G + g), so one
  /// batch matmul per group computes all their scores against the shared key head.
  Value groupHeads(Value x, int64_t groups) {
    auto s = cast<RankedTensorType>(x.getType()).getShape();
    int64_t g = s[0] / groups;
    return regroup(x, {groups, g, s[1], s[2]}, {{0, 1}, {2}, {3}}, {{0}, {1, 2}, {3}});
  }

  /// (B*KV, G*T, d) -> (B*KV*G, T, d), the inverse of groupHeads.
  Value ungroupHeads(Value x, int64_t t) {
    auto s = cast<RankedTensorType>(x.getType()).getShape();
    return regroup(x, {s[0], s[1] / t, t, s[2]}, {{0}, {1, 2}, {3}}, {{0, 1}, {2}, {3}});
  }

  /// Expands rank-3 `x` to the rank-4 `mid` by `expand`, then collapses it by `collapse`;
  /// `x` itself when the group size mid[1] is 1.
  Value regroup(Value x, ArrayRef<int64_t> mid, ArrayRef<ReassociationIndices> expand,
                ArrayRef<ReassociationIndices> collapse) {
    if (mid[1] == 1)
      return x;
    Value e = tensor::ExpandShapeOp::create(b, loc, RankedTensorType::get(mid, f32()), x, expand);
    SmallVector<int64_t> out;
    for (const ReassociationIndices &r : collapse) {
      int64_t n = 1;
      for (int64_t i : r)
        n *= mid[i];
      out.push_back(n);
    }
    return tensor::CollapseShapeOp::create(b, loc, RankedTensorType::get(out, f32()), e,
                                           collapse);
  }

  /// Which scores of the (B*KV, G*T, T) score tensor are masked.
  struct Mask {
    double scale;     ///< 1/sqrt(head dim)
    bool causal;      ///< mask j > i
    int64_t t;        ///< sequence length: row r is query position r mod t
    int64_t group;    ///< query heads per key/value head (H / KV): rows are G*T
    int64_t kvHeads;  ///< KV: the batch index of score row block n is n / KV
    Value segments;   ///< (B, T) i32 document ids, or null: mask seg[b,j] != seg[b,i]
    Value keyOffset;  ///< index of the first key of a key block (blockwise forward), or null
    /// (B) i32 position of each row's first query (attention over a KV cache), or null:
    /// query i of batch b is then at position queryStart[b] + i.
    Value queryStart = {};
    int64_t keys = 0; ///< number of keys when it is not `t` (the cache's positions), else 0
    /// Query position of the first query when the rows are one block of queries (causal
    /// row blocks: `t` is then the block's length and row r is query rowOffset + r mod t).
    int64_t rowOffset = 0;
  };

  /// Scaled, masked score at (n, r, j) of a (B*KV, G*T, T) score tensor: -inf where
  /// causal and j > i, or where token j lies in another document than i (i = r mod T).
  static Value maskedScore(OpBuilder &nb, Location nl, Value s, const Mask &m) {
    Value v = arith::MulFOp::create(
        nb, nl, s, arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(m.scale)));
    if (!m.causal && !m.segments)
      return v;
    auto ci = [&](int64_t c) { return arith::ConstantIndexOp::create(nb, nl, c); };
    Value r = linalg::IndexOp::create(nb, nl, 1), j = linalg::IndexOp::create(nb, nl, 2);
    if (m.keyOffset)
      j = arith::AddIOp::create(nb, nl, j, m.keyOffset);
    Value i = m.group == 1 ? r : arith::RemUIOp::create(nb, nl, r, ci(m.t)).getResult();
    if (m.rowOffset)
      i = arith::AddIOp::create(nb, nl, i, ci(m.rowOffset));
    if (m.queryStart) {
      Value bi = arith::DivUIOp::create(nb, nl, linalg::IndexOp::create(nb, nl, 0), ci(m.kvHeads));
      Value s0 = tensor::ExtractOp::create(nb, nl, m.queryStart, ValueRange{bi});
      i = arith::AddIOp::create(nb, nl, i, toIndex(nb, nl, s0));
    }
    Value masked;
    if (m.causal)
      masked = arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::ugt, j, i);
    if (m.segments) {
      Value bi = arith::DivUIOp::create(nb, nl, linalg::IndexOp::create(nb, nl, 0), ci(m.kvHeads));
      Value si = tensor::ExtractOp::create(nb, nl, m.segments, ValueRange{bi, i});
      Value sj = tensor::ExtractOp::create(nb, nl, m.segments, ValueRange{bi, j});
      Value other = arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::ne, si, sj);
      masked = masked ? arith::OrIOp::create(nb, nl, masked, other).getResult() : other;
    }
    Value ninf = arith::ConstantOp::create(
        nb, nl, nb.getF32FloatAttr(-std::numeric_limits<float>::infinity()));
    return arith::SelectOp::create(nb, nl, masked, ninf, v);
  }

  /// Attention probabilities P (B*KV, G*T, T) from grouped q (B*KV, G*T, d) and k (B*KV, T, d).
  /// With `keyCount` (an index), k holds that many keys, (B*KV, ?, d), and P is (B*KV, G*T, ?).
  Value probs(Value q, Value k, const Mask &mask, Value keyCount = {}) {
    auto s = cast<RankedTensorType>(q.getType()).getShape();
    SmallVector<int64_t> sh = {s[0], s[1],
                               keyCount ? ShapedType::kDynamic : (mask.keys ? mask.keys : mask.t)};
    SmallVector<Value> dyn;
    if (keyCount)
      dyn.push_back(keyCount);
    Value scores = matmul(q, k, false, true, sh, fill(sh, 0.0, dyn));
    AffineMap i3 = id(3), d3 = dropLast(3);
    Value mx = reduceLast(sh, scores, {i3}, -std::numeric_limits<float>::infinity(),
                          [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                            Value v = maskedScore(nb, nl, a[0], mask);
                            // maxnumf, not maximumf: LLVM's loop vectoriser does not
                            // recognise maximum(acc, select(mask, -inf, x)) as a reduction
                            // (InstCombine turns it into select(mask, acc, maximum(..))),
                            // maxnum it does. Same probabilities: a NaN score still makes
                            // its row's sum, hence the whole row, NaN.
                            return arith::MaxNumFOp::create(nb, nl, a[1], v);
                          });
    Value sum = reduceLast(sh, ValueRange{scores, mx}, {i3, d3}, 0.0,
                           [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                             Value v = maskedScore(nb, nl, a[0], mask);
                             Value e = math::ExpOp::create(
                                 nb, nl, arith::SubFOp::create(nb, nl, v, a[1]));
                             return arith::AddFOp::create(nb, nl, a[2], e);
                           });
    return generic(empty(sh, f32(), dyn), ValueRange{scores, mx, sum}, {i3, d3, d3, i3},
                   SmallVector<IteratorType>(3, IteratorType::parallel),
                   [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                     Value v = maskedScore(nb, nl, a[0], mask);
                     Value e =
                         math::ExpOp::create(nb, nl, arith::SubFOp::create(nb, nl, v, a[1]));
                     return arith::DivFOp::create(nb, nl, e, a[2]);
                   });
  }

  /// Attention output (B*KV, G*T, d) from grouped q (B*KV, G*T, d), k and v (B*KV, T, d),
  /// blockwise over `block` keys at a time (block divides T) with an online softmax (flash
  /// attention, Dao et al. 2022, Algorithm 1). Per key block [kb, kb + block):
  ///   s = q k_blk^T (masked, scaled); m' = max(m, rowmax s); c = (m' = -inf ? 0 : m')
  ///   p = exp(s - c); a = exp(m - c); l' = l a + rowsum p; o' = o a + p v_blk
  /// and finally out = o / l. `c` keeps rows whose keys so far are all masked (a document
  /// that starts after the block) at p = 0, a = 0 instead of exp(-inf + inf) = NaN.
  /// With `lse`, also sets it to each row's log-sum-exp of the scores, m + log l
  /// (B*KV, G*T), which the blockwise backward reuses.
  Value blockwiseAttention(Value q, Value k, Value v, const Mask &mask, int64_t block,
                           Value *lse = nullptr) {
    auto s = cast<RankedTensorType>(q.getType()).getShape();
    int64_t n = s[0], rows = s[1], hd = s[2];
    double ninf = -std::numeric_limits<float>::infinity();
    Value m0 = fill({n, rows}, ninf), l0 = fill({n, rows}, 0.0), o0 = fill({n, rows, hd}, 0.0);
    auto loop = scf::ForOp::create(
        b, loc, idx(0), idx(mask.t), idx(block), ValueRange{m0, l0, o0},
        [&](OpBuilder &nb, Location nl, Value kb, ValueRange it) {
          Lowerer I{nb, nl};
          auto slice = [&](Value x) -> Value {
            SmallVector<OpFoldResult> offsets = {nb.getIndexAttr(0), kb, nb.getIndexAttr(0)};
            SmallVector<OpFoldResult> sizes = {nb.getIndexAttr(n), nb.getIndexAttr(block),
                                               nb.getIndexAttr(hd)};
            SmallVector<OpFoldResult> strides(3, nb.getIndexAttr(1));
            return tensor::ExtractSliceOp::create(nb, nl, x, offsets, sizes, strides);
          };
          Mask bm = mask;
          bm.keyOffset = kb;
          SmallVector<int64_t> sh = {n, rows, block};
          AffineMap i3 = I.id(3), d3 = I.dropLast(3);
          auto par3 = SmallVector<IteratorType>(3, IteratorType::parallel);
          Value sc = I.matmul(q, slice(k), false, true, sh);
          Value rmax = I.reduceLast(sh, sc, {i3}, -std::numeric_limits<float>::infinity(),
                                    [&](OpBuilder &ib, Location il, ValueRange a) -> Value {
                                      Value x = maskedScore(ib, il, a[0], bm);
                                      // maxnumf so that it vectorises, as in probs().
                                      return arith::MaxNumFOp::create(ib, il, a[1], x);
                                    });
          // c = m' unless m' = -inf, with m' = max(m, rowmax).
          auto shift = [](OpBuilder &ib, Location il, Value m, Value r) -> Value {
            Value mx = arith::MaximumFOp::create(ib, il, m, r);
            Value ni = arith::ConstantOp::create(
                ib, il, ib.getF32FloatAttr(-std::numeric_limits<float>::infinity()));
            Value isNinf = arith::CmpFOp::create(ib, il, arith::CmpFPredicate::OEQ, mx, ni);
            Value zero = arith::ConstantOp::create(ib, il, ib.getF32FloatAttr(0.0f));
            return arith::SelectOp::create(ib, il, isNinf, zero, mx);
          };
          Value p = I.generic(I.empty(sh, I.f32()), ValueRange{sc, it[0], rmax}, {i3, d3, d3, i3},
                              par3, [&](OpBuilder &ib, Location il, ValueRange a) -> Value {
                                Value x = maskedScore(ib, il, a[0], bm);
                                Value e = arith::SubFOp::create(ib, il, x, shift(ib, il, a[1], a[2]));
                                return math::ExpOp::create(ib, il, e);
                              });
          Value rs = I.reduceLast(sh, p, {i3}, 0.0,
                                  [](OpBuilder &ib, Location il, ValueRange a) -> Value {
                                    return arith::AddFOp::create(ib, il, a[1], a[0]);
                                  });
          Value alpha = I.elementwise({n, rows}, ValueRange{it[0], rmax},
                                      [&](OpBuilder &ib, Location il, ValueRange a) -> Value {
                                        Value e = arith::SubFOp::create(ib, il, a[0],
                                                                        shift(ib, il, a[0], a[1]));
                                        return math::ExpOp::create(ib, il, e);
                                      });
          // The new running values are written into the loop's own tensors (l, o, and m
          // last, after every read of the old max), so bufferization keeps them in place.
          AffineMap i2 = I.id(2);
          auto par2 = SmallVector<IteratorType>(2, IteratorType::parallel);
          Value lNew = I.generic(it[1], ValueRange{alpha, rs}, {i2, i2, i2}, par2,
                                 [](OpBuilder &ib, Location il, ValueRange a) -> Value {
                                   Value la = arith::MulFOp::create(ib, il, a[2], a[0]);
                                   return arith::AddFOp::create(ib, il, la, a[1]);
                                 });
          Value pv = I.matmul(p, slice(v), false, false, {n, rows, hd});
          Value oNew = I.generic(it[2], ValueRange{alpha, pv}, {d3, i3, i3}, par3,
                                 [](OpBuilder &ib, Location il, ValueRange a) -> Value {
                                   Value oa = arith::MulFOp::create(ib, il, a[2], a[0]);
                                   return arith::AddFOp::create(ib, il, oa, a[1]);
                                 });
          Value mNew = I.generic(it[0], rmax, {i2, i2}, par2,
                                 [](OpBuilder &ib, Location il, ValueRange a) -> Value {
                                   return arith::MaximumFOp::create(ib, il, a[1], a[0]);
                                 });
          scf::YieldOp::create(nb, nl, ValueRange{mNew, lNew, oNew});
        });
    if (lse)
      *lse = elementwise({n, rows}, ValueRange{loop.getResult(0), loop.getResult(1)},
                         [](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                           return arith::AddFOp::create(nb, nl, a[0],
                                                        math::LogOp::create(nb, nl, a[1]));
                         });
    AffineMap i3 = id(3), d3 = dropLast(3);
    return generic(empty({n, rows, hd}, f32()),
                   ValueRange{loop.getResult(2), loop.getResult(1)}, {i3, d3, i3},
                   SmallVector<IteratorType>(3, IteratorType::parallel),
                   [](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                     return arith::DivFOp::create(nb, nl, a[0], a[1]);
                   });
  }

  /// Row max and sum of exp(x - max) over the last dim of logits (B,T,V): two passes.
  std::pair<Value, Value> logSumExpParts(Value logits) {
    auto sh = cast<RankedTensorType>(logits.getType()).getShape();
    AffineMap i3 = id(3), d3 = dropLast(3);
    Value mx = reduceLast(sh, logits, {i3}, -std::numeric_limits<float>::infinity(),
                          [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                            return arith::MaximumFOp::create(nb, nl, a[1], a[0]);
                          });
    Value se = reduceLast(sh, ValueRange{logits, mx}, {i3, d3}, 0.0,
                          [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                            Value e = math::ExpOp::create(
                                nb, nl, arith::SubFOp::create(nb, nl, a[0], a[1]));
                            return arith::AddFOp::create(nb, nl, a[2], e);
                          });
    return {mx, se};
  }

  /// Vector lanes of the one-pass log-sum-exp: 16 f32 fill an AVX-512 register (two AVX2).
  static constexpr int64_t kLseLanes = 16;

  /// Row max and sum of exp(x - max) of logits (B,T,V) over V in one pass over the logits
  /// when V is a multiple of kLseLanes (else logSumExpParts' two passes). The pass views
  /// the row as (V/L, L) and keeps an online softmax's running max m and sum s per lane
  /// (Milakov & Gimelshein 2018, "Online normalizer calculation for softmax", Algorithm 3):
  ///   m' = max(m, x); s' = s e + 1 if x > m, else s + e, with e = exp(min(m, x) - m'),
  /// one exp per element and no loop-carried dependence across lanes, so the inner loop
  /// over the L lanes vectorises. The L partial results are then merged per row:
  ///   M = max_l m_l, S = sum_l s_l exp(m_l - M).
  std::pair<Value, Value> logSumExpOnePass(Value logits) {
    auto sh = cast<RankedTensorType>(logits.getType()).getShape();
    int64_t bs = sh[0], t = sh[1], v = sh[2], lanes = kLseLanes;
    if (v % lanes != 0)
      return logSumExpParts(logits);
    Value x4 = tensor::ExpandShapeOp::create(
        b, loc, RankedTensorType::get({bs, t, v / lanes, lanes}, f32()), logits,
        SmallVector<ReassociationIndices>{{0}, {1}, {2, 3}});
    double ninf = -std::numeric_limits<float>::infinity();
    Value m0 = fill({bs, t, lanes}, ninf), s0 = fill({bs, t, lanes}, 0.0);
    AffineMap lane = map(4, {0, 1, 3});
    auto online = linalg::GenericOp::create(
        b, loc, TypeRange{m0.getType(), s0.getType()}, ValueRange{x4}, ValueRange{m0, s0},
        ArrayRef<AffineMap>{id(4), lane, lane},
        ArrayRef<IteratorType>{IteratorType::parallel, IteratorType::parallel,
                               IteratorType::reduction, IteratorType::parallel},
        [](OpBuilder &nb, Location nl, ValueRange a) {
          Value x = a[0], m = a[1], s = a[2];
          Value hi = arith::MaximumFOp::create(nb, nl, m, x);
          Value lo = arith::MinimumFOp::create(nb, nl, m, x);
          Value e = math::ExpOp::create(nb, nl, arith::SubFOp::create(nb, nl, lo, hi));
          Value one = arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(1.0f));
          Value grew = arith::CmpFOp::create(nb, nl, arith::CmpFPredicate::OGT, x, m);
          Value rescaled = arith::AddFOp::create(nb, nl, arith::MulFOp::create(nb, nl, s, e), one);
          Value added = arith::AddFOp::create(nb, nl, s, e);
          Value sNew = arith::SelectOp::create(nb, nl, grew, rescaled, added);
          linalg::YieldOp::create(nb, nl, ValueRange{hi, sNew});
        });
    SmallVector<int64_t> lanesShape = {bs, t, lanes};
    AffineMap i3 = id(3), d3 = dropLast(3);
    Value mx = reduceLast(lanesShape, online.getResult(0), {i3}, ninf,
                          [](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                            return arith::MaximumFOp::create(nb, nl, a[1], a[0]);
                          });
    Value se = reduceLast(lanesShape, ValueRange{online.getResult(0), online.getResult(1), mx},
                          {i3, i3, d3}, 0.0,
                          [](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                            Value e = math::ExpOp::create(
                                nb, nl, arith::SubFOp::create(nb, nl, a[0], a[2]));
                            Value se = arith::MulFOp::create(nb, nl, a[1], e);
                            return arith::AddFOp::create(nb, nl, a[3], se);
                          });
    return {mx, se};
  }

  /// log(sum(exp(logits))) over the last dim of logits (B,T,V), (B,T): max + log(sum
  /// exp(x - max)), one pass over the logits (logSumExpOnePass). The forward and the
  /// gradient of cross_entropy build identical ops here, so CSE leaves one.
  Value logSumExp(Value logits) {
    auto [mx, se] = logSumExpOnePass(logits);
    SmallVector<int64_t> rows(cast<RankedTensorType>(logits.getType()).getShape().drop_back());
    return elementwise(rows, ValueRange{mx, se},
                       [](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                         return arith::AddFOp::create(nb, nl, a[0],
                                                      math::LogOp::create(nb, nl, a[1]));
                       });
  }

  /// Sum of squares of x (.., D) over the last dim, as rsqrt(ss / D + eps) per row.
  Value invRms(Value x, float eps) {
    auto sh = cast<RankedTensorType>(x.getType()).getShape();
    unsigned rank = sh.size();
    Value ss = reduceLast(sh, x, {id(rank)}, 0.0,
                          [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                            Value sq = arith::MulFOp::create(nb, nl, a[0], a[0]);
                            return arith::AddFOp::create(nb, nl, a[1], sq);
                          });
    double invD = 1.0 / static_cast<double>(sh.back());
    SmallVector<int64_t> rows(sh.drop_back());
    return elementwise(rows, ss, [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
      Value m = arith::MulFOp::create(nb, nl, a[0],
                                      arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(invD)));
      Value me = arith::AddFOp::create(nb, nl, m,
                                       arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(eps)));
      return math::RsqrtOp::create(nb, nl, me);
    });
  }
};

ArrayRef<int64_t> shapeOf(Value v) { return cast<RankedTensorType>(v.getType()).getShape(); }

//===----------------------------------------------------------------------===//
// Per-op lowerings
//===----------------------------------------------------------------------===//

Value lower(Lowerer &L, EmbeddingOp op) {
  auto sh = shapeOf(op.getResult());
  Value table = op.getTable();
  return L.generic(L.empty(sh, L.f32()), op.getIds(), {L.map(3, {0, 1}), L.id(3)},
                   SmallVector<IteratorType>(3, IteratorType::parallel),
                   [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                     Value row = Lowerer::toIndex(nb, nl, a[0]);
                     Value col = linalg::IndexOp::create(nb, nl, 2);
                     return tensor::ExtractOp::create(nb, nl, table, ValueRange{row, col});
                   });
}

Value lower(Lowerer &L, EmbeddingGradOp op) {
  // result (V,D) = 0; for b, t: result[ids[b,t], :] += dy[b,t,:]
  auto ds = shapeOf(op.getDy());
  Value init = L.fill(shapeOf(op.getResult()), 0.0);
  Value ids = op.getIds(), dy = op.getDy();
  Value c0 = L.idx(0), c1 = L.idx(1);
  OpBuilder &b = L.b;
  auto loopB = scf::ForOp::create(
      b, L.loc, c0, L.idx(ds[0]), c1, ValueRange{init},
      [&](OpBuilder &b1, Location l1, Value ib, ValueRange accB) {
        auto loopT = scf::ForOp::create(
            b1, l1, c0, arith::ConstantIndexOp::create(b1, l1, ds[1]), c1, accB,
            [&](OpBuilder &b2, Location l2, Value it, ValueRange accT) {
              Value row = Lowerer::toIndex(
                  b2, l2, tensor::ExtractOp::create(b2, l2, ids, ValueRange{ib, it}));
              auto loopD = scf::ForOp::create(
                  b2, l2, c0, arith::ConstantIndexOp::create(b2, l2, ds[2]), c1, accT,
                  [&](OpBuilder &b3, Location l3, Value id, ValueRange acc) {
                    Value g = tensor::ExtractOp::create(b3, l3, dy, ValueRange{ib, it, id});
                    Value old = tensor::ExtractOp::create(b3, l3, acc[0], ValueRange{row, id});
                    Value sum = arith::AddFOp::create(b3, l3, old, g);
                    Value upd =
                        tensor::InsertOp::create(b3, l3, sum, acc[0], ValueRange{row, id});
                    scf::YieldOp::create(b3, l3, upd);
                  });
              scf::YieldOp::create(b2, l2, loopD.getResults());
            });
        scf::YieldOp::create(b1, l1, loopT.getResults());
      });
  return loopB.getResult(0);
}

Value lower(Lowerer &L, MatmulOp op) {
  return L.matmul(op.getLhs(), op.getRhs(), op.getTransposeA(), op.getTransposeB(),
                  shapeOf(op.getResult()));
}

/// llmp.matmul_nf4 as one linalg.generic (m, n, k) that dequantizes W[k][n] (or W[n][k]
/// with transpose_b) from the blob in its body, as kernels/cpu/Quant.cpp
/// dequantizeNf4Range: code value * (code8[absmax code] * scale + offset), each step one
/// fp32 rounding. The blob enters as an input indexed by the byte of the weight's code
/// ((row * cols + col) floordiv 2) and, for the absmax statistics, through tensor.extract.
/// The generic carries `llmp.matmul_nf4` = {rows, cols, block, double_quant, transpose_b}:
/// llmp-linalg-to-lrt replaces it by the fused kernel; without that pass it runs as loops.
Value lower(Lowerer &L, MatmulNf4Op op) {
  OpBuilder &b = L.b;
  MLIRContext *ctx = b.getContext();
  auto sh = shapeOf(op.getResult());
  int64_t rows = static_cast<int64_t>(op.getRows()), cols = static_cast<int64_t>(op.getCols());
  int64_t block = static_cast<int64_t>(op.getBlock());
  bool tb = op.getTransposeB(), dq = op.getDoubleQuant();
  lrt::quant::Nf4Layout lay = lrt::quant::nf4Layout(rows * cols, block, dq);
  // Loops (m, n, k): W's row is k (n with transpose_b), its column n (k).
  AffineExpr m = b.getAffineDimExpr(0), n = b.getAffineDimExpr(1), k = b.getAffineDimExpr(2);
  AffineExpr flat = tb ? n * cols + k : k * cols + n;
  SmallVector<AffineMap> maps = {AffineMap::get(3, 0, {m, k}, ctx),
                                 AffineMap::get(3, 0, {flat.floorDiv(2)}, ctx),
                                 AffineMap::get(3, 0, {m, n}, ctx)};
  SmallVector<IteratorType> iters = {IteratorType::parallel, IteratorType::parallel,
                                     IteratorType::reduction};
  auto table = [&](ArrayRef<float> values) -> Value {
    auto ty = RankedTensorType::get({static_cast<int64_t>(values.size())}, L.f32());
    return arith::ConstantOp::create(b, L.loc, DenseElementsAttr::get(ty, values));
  };
  Value nf4 = table(lrt::quant::kNf4Code);
  Value code8 = dq ? table(lrt::quant::dynamicCode8()) : Value();
  Value blob = op.getWeight();
  Value out = L.generic(
      L.fill(sh, 0.0), ValueRange{op.getInput(), blob}, maps, iters,
      [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
        auto ci = [&](int64_t v) { return arith::ConstantIndexOp::create(nb, nl, v); };
        auto i32c = [&](int64_t v) {
          return arith::ConstantOp::create(nb, nl, nb.getI32IntegerAttr(static_cast<int32_t>(v)));
        };
        auto byteAt = [&](Value i) -> Value { // blob[i] as an unsigned i32
          Value v = tensor::ExtractOp::create(nb, nl, blob, ValueRange{i});
          return arith::ExtUIOp::create(nb, nl, nb.getI32Type(), v);
        };
        auto f32At = [&](Value i) -> Value { // little-endian fp32 at byte i
          Value word = byteAt(i);
          for (int64_t j = 1; j < 4; ++j) {
            Value bj = byteAt(arith::AddIOp::create(nb, nl, i, ci(j)));
            word = arith::OrIOp::create(nb, nl, word,
                                        arith::ShLIOp::create(nb, nl, bj, i32c(8 * j)));
          }
          return arith::BitcastOp::create(nb, nl, nb.getF32Type(), word);
        };
        Value row = linalg::IndexOp::create(nb, nl, tb ? 1 : 2);
        Value col = linalg::IndexOp::create(nb, nl, tb ? 2 : 1);
        Value e = arith::AddIOp::create(nb, nl, arith::MulIOp::create(nb, nl, row, ci(cols)), col);
        // The code: high nibble for even e, low nibble for odd e.
        Value byte = arith::ExtUIOp::create(nb, nl, nb.getI32Type(), a[1]);
        Value odd = arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::eq,
                                          arith::RemUIOp::create(nb, nl, e, ci(2)), ci(1));
        Value nibble = arith::SelectOp::create(
            nb, nl, odd, arith::AndIOp::create(nb, nl, byte, i32c(15)),
            arith::ShRUIOp::create(nb, nl, byte, i32c(4)));
        Value code = tensor::ExtractOp::create(nb, nl, nf4, ValueRange{Lowerer::toIndex(nb, nl, nibble)});
        Value blk = arith::DivUIOp::create(nb, nl, e, ci(block));
        Value absmax;
        if (dq) {
          Value c8 = byteAt(arith::AddIOp::create(nb, nl, blk, ci(lay.absmaxAt)));
          Value c8v = tensor::ExtractOp::create(nb, nl, code8, ValueRange{Lowerer::toIndex(nb, nl, c8)});
          Value si = arith::AddIOp::create(
              nb, nl, ci(lay.scalesAt),
              arith::MulIOp::create(nb, nl, arith::DivUIOp::create(nb, nl, blk, ci(lay.absmaxBlockSize)), ci(4)));
          Value scaled = arith::MulFOp::create(nb, nl, c8v, f32At(si));
          absmax = arith::AddFOp::create(nb, nl, scaled, f32At(ci(lay.offsetAt)));
        } else {
          absmax = f32At(arith::AddIOp::create(nb, nl, ci(lay.absmaxAt),
                                               arith::MulIOp::create(nb, nl, blk, ci(4))));
        }
        Value w = arith::MulFOp::create(nb, nl, code, absmax);
        return arith::AddFOp::create(nb, nl, a[2], arith::MulFOp::create(nb, nl, a[0], w));
      });
  auto generic = out.getDefiningOp();
  NamedAttrList tag;
  tag.append("rows", b.getI64IntegerAttr(rows));
  tag.append("cols", b.getI64IntegerAttr(cols));
  tag.append("block", b.getI64IntegerAttr(block));
  tag.append("double_quant", b.getBoolAttr(dq));
  tag.append("transpose_b", b.getBoolAttr(tb));
  generic->setAttr("llmp.matmul_nf4", tag.getDictionary(ctx));
  return out;
}

Value lower(Lowerer &L, ReshapeOp op) {
  return L.reshape(op.getInput(), cast<RankedTensorType>(op.getResult().getType()));
}

Value lower(Lowerer &L, TransposeOp op) {
  return linalg::TransposeOp::create(L.b, L.loc, op.getInput(),
                                     L.empty(shapeOf(op.getResult()), L.f32()),
                                     ArrayRef<int64_t>{1, 0})
      .getResult()[0];
}

Value lower(Lowerer &L, AddOp op) {
  return L.elementwise(shapeOf(op.getResult()), ValueRange{op.getLhs(), op.getRhs()},
                       [](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                         return arith::AddFOp::create(nb, nl, a[0], a[1]);
                       });
}

Value lower(Lowerer &L, MulOp op) {
  return L.elementwise(shapeOf(op.getResult()), ValueRange{op.getLhs(), op.getRhs()},
                       [](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                         return arith::MulFOp::create(nb, nl, a[0], a[1]);
                       });
}

/// sigmoid(x) = 1 / (1 + exp(-x)).
Value sigmoid(OpBuilder &nb, Location nl, Value x) {
  Value one = arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(1.0f));
  Value e = math::ExpOp::create(nb, nl, arith::NegFOp::create(nb, nl, x));
  return arith::DivFOp::create(nb, nl, one, arith::AddFOp::create(nb, nl, one, e));
}

Value lower(Lowerer &L, SiluOp op) {
  return L.elementwise(shapeOf(op.getResult()), op.getInput(),
                       [](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                         return arith::MulFOp::create(nb, nl, a[0], sigmoid(nb, nl, a[0]));
                       });
}

/// SplitMix64's output function on an i64 value (llmp.dropout documents the formula).
Value mix64(OpBuilder &nb, Location nl, Value z) {
  auto c = [&](uint64_t v) {
    return arith::ConstantOp::create(nb, nl, nb.getI64IntegerAttr(static_cast<int64_t>(v)));
  };
  auto xorShift = [&](Value x, uint64_t s) {
    return arith::XOrIOp::create(nb, nl, x, arith::ShRUIOp::create(nb, nl, x, c(s)));
  };
  z = arith::MulIOp::create(nb, nl, xorShift(z, 30), c(0xBF58476D1CE4E5B9ull));
  z = arith::MulIOp::create(nb, nl, xorShift(z, 27), c(0x94D049BB133111EBull));
  return xorShift(z, 31);
}

Value lower(Lowerer &L, DropoutOp op) {
  OpBuilder &b = L.b;
  Location loc = L.loc;
  auto sh = shapeOf(op.getResult());
  unsigned rank = sh.size();
  auto i64c = [&](OpBuilder &nb, Location nl, uint64_t v) -> Value {
    return arith::ConstantOp::create(nb, nl, nb.getI64IntegerAttr(static_cast<int64_t>(v)));
  };
  // base = mix64(seed ^ mix64(u64(step) << 32 | u32(micro))), once per call.
  auto ext = [&](int64_t i) -> Value {
    Value v = tensor::ExtractOp::create(b, loc, op.getKey(), ValueRange{L.idx(i)});
    return arith::ExtUIOp::create(b, loc, b.getI64Type(), v);
  };
  Value counter = arith::OrIOp::create(
      b, loc, arith::ShLIOp::create(b, loc, ext(0), i64c(b, loc, 32)), ext(1));
  Value base = mix64(b, loc, arith::XOrIOp::create(b, loc, i64c(b, loc, op.getSeed()),
                                                   mix64(b, loc, counter)));
  double p = op.getP().convertToDouble();
  uint64_t threshold = static_cast<uint64_t>(std::llround(p * 16777216.0));
  float keepScale = static_cast<float>(1.0 / (1.0 - p));
  SmallVector<int64_t> strides(rank, 1);
  for (int i = static_cast<int>(rank) - 2; i >= 0; --i)
    strides[i] = strides[i + 1] * sh[i + 1];
  AffineMap scalar = AffineMap::get(rank, 0, {}, b.getContext());
  Value baseT = tensor::FromElementsOp::create(
      b, loc, RankedTensorType::get({}, b.getI64Type()), ValueRange{base});
  return L.generic(L.empty(sh, L.f32()), ValueRange{op.getInput(), baseT},
                   {L.id(rank), scalar, L.id(rank)},
                   SmallVector<IteratorType>(rank, IteratorType::parallel),
                   [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                     // i = row-major element index.
                     Value i = i64c(nb, nl, 0);
                     for (unsigned d = 0; d < rank; ++d) {
                       Value id = arith::IndexCastOp::create(nb, nl, nb.getI64Type(),
                                                             linalg::IndexOp::create(nb, nl, d));
                       i = arith::AddIOp::create(
                           nb, nl, i, arith::MulIOp::create(nb, nl, id, i64c(nb, nl, strides[d])));
                     }
                     Value ctr = arith::MulIOp::create(
                         nb, nl, arith::AddIOp::create(nb, nl, i, i64c(nb, nl, 1)),
                         i64c(nb, nl, 0x9E3779B97F4A7C15ull));
                     Value r = mix64(nb, nl, arith::AddIOp::create(nb, nl, a[1], ctr));
                     Value u = arith::ShRUIOp::create(nb, nl, r, i64c(nb, nl, 40));
                     Value keep = arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::uge, u,
                                                        i64c(nb, nl, threshold));
                     Value scaled = arith::MulFOp::create(
                         nb, nl, a[0],
                         arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(keepScale)));
                     Value zero = arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(0.0f));
                     return arith::SelectOp::create(nb, nl, keep, scaled, zero);
                   });
}

Value lower(Lowerer &L, SiluGradOp op) {
  // dx = dy * s * (1 + x (1 - s))
  return L.elementwise(shapeOf(op.getResult()), ValueRange{op.getInput(), op.getDy()},
                       [](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                         Value s = sigmoid(nb, nl, a[0]);
                         Value one = arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(1.0f));
                         Value oms = arith::SubFOp::create(nb, nl, one, s);
                         Value t = arith::AddFOp::create(
                             nb, nl, one, arith::MulFOp::create(nb, nl, a[0], oms));
                         return arith::MulFOp::create(nb, nl, a[1],
                                                      arith::MulFOp::create(nb, nl, s, t));
                       });
}

Value lower(Lowerer &L, RMSNormOp op) {
  auto sh = shapeOf(op.getInput());
  unsigned rank = sh.size();
  Value r = L.invRms(op.getInput(), op.getEps().convertToFloat());
  return L.generic(L.empty(sh, L.f32()), ValueRange{op.getInput(), r, op.getWeight()},
                   {L.id(rank), L.dropLast(rank), L.map(rank, {rank - 1}), L.id(rank)},
                   SmallVector<IteratorType>(rank, IteratorType::parallel),
                   [](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                     Value xn = arith::MulFOp::create(nb, nl, a[0], a[1]);
                     return arith::MulFOp::create(nb, nl, xn, a[2]);
                   });
}

SmallVector<Value> lower(Lowerer &L, RMSNormGradOp op) {
  // r = rsqrt(mean(x^2) + eps); s2 = sum_d dy w x;
  // dx = r dy w - x r^3 s2 / D; dw = sum_rows dy x r.
  auto sh = shapeOf(op.getInput());
  unsigned rank = sh.size();
  double invD = 1.0 / static_cast<double>(sh.back());
  Value x = op.getInput(), w = op.getWeight(), dy = op.getDy();
  Value r = L.invRms(x, op.getEps().convertToFloat());
  AffineMap idm = L.id(rank), rowm = L.dropLast(rank), colm = L.map(rank, {rank - 1});
  Value s2 = L.reduceLast(sh, ValueRange{x, w, dy}, {idm, colm, idm}, 0.0,
                          [](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                            Value p = arith::MulFOp::create(
                                nb, nl, arith::MulFOp::create(nb, nl, a[0], a[1]), a[2]);
                            return arith::AddFOp::create(nb, nl, a[3], p);
                          });
  Value dx = L.generic(
      L.empty(sh, L.f32()), ValueRange{x, w, dy, r, s2}, {idm, colm, idm, rowm, rowm, idm},
      SmallVector<IteratorType>(rank, IteratorType::parallel),
      [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
        Value rr = a[3];
        Value t1 = arith::MulFOp::create(nb, nl, rr, arith::MulFOp::create(nb, nl, a[2], a[1]));
        Value r3 = arith::MulFOp::create(nb, nl, rr, arith::MulFOp::create(nb, nl, rr, rr));
        Value c = arith::MulFOp::create(
            nb, nl, a[4], arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(invD)));
        Value t2 = arith::MulFOp::create(nb, nl, a[0], arith::MulFOp::create(nb, nl, r3, c));
        return arith::SubFOp::create(nb, nl, t1, t2);
      });
  SmallVector<IteratorType> iters(rank, IteratorType::reduction);
  iters.back() = IteratorType::parallel;
  Value dw = L.generic(L.fill({sh.back()}, 0.0), ValueRange{x, dy, r}, {idm, idm, rowm, colm},
                       iters, [](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                         Value p = arith::MulFOp::create(
                             nb, nl, arith::MulFOp::create(nb, nl, a[0], a[1]), a[2]);
                         return arith::AddFOp::create(nb, nl, a[3], p);
                       });
  return {dx, dw};
}

Value lower(Lowerer &L, RopeOp op) {
  auto sh = shapeOf(op.getResult());
  int64_t hd = sh[2] / static_cast<int64_t>(op.getHeads()), half = hd / 2;
  double logTheta = std::log(static_cast<double>(op.getTheta().convertToFloat()));
  bool inverse = op.getInverse();
  Value x = op.getInput(), positions = op.getPositions();
  // cos / sin of the angles as (T, hd) tables, computed once and shared by the batch and the
  // heads (B*heads times fewer sin/cos calls than evaluating them per element). With
  // per-token positions the tables are (B, T, hd), still shared by the heads.
  SmallVector<int64_t> tableShape = {sh[1], hd};
  if (positions)
    tableShape.insert(tableShape.begin(), sh[0]);
  unsigned tr = tableShape.size();
  auto table = [&](bool sine) {
    return L.generic(
        L.empty(tableShape, L.f32()), ValueRange{}, {L.id(tr)},
        SmallVector<IteratorType>(tr, IteratorType::parallel),
        [&](OpBuilder &nb, Location nl, ValueRange) -> Value {
          auto ci = [&](int64_t v) { return arith::ConstantIndexOp::create(nb, nl, v); };
          auto cf = [&](double v) {
            return arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(v));
          };
          Value j = linalg::IndexOp::create(nb, nl, tr - 1);
          Value pos;
          if (positions) {
            Value p = tensor::ExtractOp::create(
                nb, nl, positions,
                ValueRange{linalg::IndexOp::create(nb, nl, 0), linalg::IndexOp::create(nb, nl, 1)});
            pos = arith::SIToFPOp::create(nb, nl, nb.getF32Type(), p);
          } else {
            pos = Lowerer::toF32(nb, nl, linalg::IndexOp::create(nb, nl, 0));
          }
          Value lo = arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::ult, j, ci(half));
          Value i =
              arith::SelectOp::create(nb, nl, lo, j, arith::SubIOp::create(nb, nl, j, ci(half)));
          // freq = theta^(-2i/h) = exp(-(2i/h) ln theta); angle = position * freq.
          Value fi = Lowerer::toF32(nb, nl, i);
          Value expo =
              arith::MulFOp::create(nb, nl, fi, cf(-2.0 * logTheta / static_cast<double>(hd)));
          Value ang = arith::MulFOp::create(nb, nl, pos, math::ExpOp::create(nb, nl, expo));
          if (!sine)
            return math::CosOp::create(nb, nl, ang);
          Value sn = math::SinOp::create(nb, nl, ang);
          return inverse ? arith::NegFOp::create(nb, nl, sn).getResult() : sn;
        });
  };
  Value cosT = table(false), sinT = table(true);
  return L.generic(
      L.empty(sh, L.f32()), x, {L.id(3), L.id(3)},
      SmallVector<IteratorType>(3, IteratorType::parallel),
      [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
        auto ci = [&](int64_t v) { return arith::ConstantIndexOp::create(nb, nl, v); };
        Value ib = linalg::IndexOp::create(nb, nl, 0), it = linalg::IndexOp::create(nb, nl, 1),
              id = linalg::IndexOp::create(nb, nl, 2);
        Value j = arith::RemUIOp::create(nb, nl, id, ci(hd));
        Value lo = arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::ult, j, ci(half));
        Value partner = arith::SelectOp::create(nb, nl, lo, arith::AddIOp::create(nb, nl, id, ci(half)),
                                                arith::SubIOp::create(nb, nl, id, ci(half)));
        Value xp = tensor::ExtractOp::create(nb, nl, x, ValueRange{ib, it, partner});
        SmallVector<Value> at = {it, j};
        if (positions)
          at.insert(at.begin(), ib);
        Value c = tensor::ExtractOp::create(nb, nl, cosT, at);
        Value s = tensor::ExtractOp::create(nb, nl, sinT, at);
        Value xc = arith::MulFOp::create(nb, nl, a[0], c);
        Value ps = arith::MulFOp::create(nb, nl, xp, s);
        return arith::SelectOp::create(nb, nl, lo, arith::SubFOp::create(nb, nl, xc, ps),
                                       arith::AddFOp::create(nb, nl, xc, ps));
      });
}

Value lower(Lowerer &L, PositionsOp op) {
  // result[b, t] = #{t' < t : seg[b, t'] == seg[b, t]}: a reduction over t' (no scan), which
  // for contiguous documents is the position inside the token's own document.
  auto sh = shapeOf(op.getResult());
  Type i32 = L.b.getI32Type();
  Value zero = arith::ConstantOp::create(L.b, L.loc, L.b.getI32IntegerAttr(0));
  Value init = linalg::FillOp::create(L.b, L.loc, ValueRange{zero},
                                      ValueRange{L.empty(sh, i32)})
                   .getResult(0);
  Value seg = op.getSegments();
  return L.generic(init, ValueRange{seg, seg}, {L.map(3, {0, 1}), L.map(3, {0, 2}), L.map(3, {0, 1})},
                   {IteratorType::parallel, IteratorType::parallel, IteratorType::reduction},
                   [](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                     Value t = linalg::IndexOp::create(nb, nl, 1);
                     Value u = linalg::IndexOp::create(nb, nl, 2);
                     Value before = arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::ult, u, t);
                     Value same = arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::eq, a[0], a[1]);
                     Value hit = arith::AndIOp::create(nb, nl, before, same);
                     Value inc = arith::ExtUIOp::create(nb, nl, nb.getI32Type(), hit);
                     return arith::AddIOp::create(nb, nl, a[2], inc);
                   });
}

/// The mask of an attention or attention_grad op.
template <typename OpT>
Lowerer::Mask maskOf(OpT op) {
  auto sh = shapeOf(op.getQ());
  int64_t heads = op.getHeads(), kv = op.getNumKVHeads();
  return {1.0 / std::sqrt(static_cast<double>(sh[2] / heads)), op.getCausal(), sh[1],
          heads / kv, kv, op.getSegments()};
}

/// Keys per block of the blockwise attention forward for `t` keys: the largest divisor of
/// `t` not above `limit`, or 0 (not blocked) when t <= limit or that divisor is below
/// min(8, limit) (a prime `t` would otherwise run one key per iteration).
int64_t attentionBlockFor(int64_t t, int64_t limit) {
  if (limit <= 0 || t <= limit)
    return 0;
  int64_t b = limit;
  while (t % b != 0)
    --b;
  return b >= std::min<int64_t>(8, limit) ? b : 0;
}

/// The pass options that choose how attention is lowered.
struct AttentionLimits {
  int64_t block;       ///< `attention-block`: keys per block of the blockwise path
  int64_t causalRows;  ///< `causal-row-block`: query rows per block of the direct path
};

/// One block of queries of the direct (not blockwise) attention path: queries
/// [query, query + count) of every query head of a group (G * count grouped rows) against
/// the first `keys` keys, with the mask of those rows.
struct QueryBlock {
  int64_t query, count, keys;
  Lowerer::Mask mask;
};

/// The query blocks of the direct attention path with `mask`. Causal attention over its
/// own T keys (no KV cache) whose T has a block size R = attentionBlockFor(T, causalRows)
/// runs per block b on the queries [bR, (b+1)R) of all G heads of a group against the keys
/// [0, (b+1)R) only: every later key lies after every query of the block, so its score is
/// masked, its probability exactly 0, and neither the softmax nor P V changes without it
/// (the causal block skipping of FlashAttention, Dao et al. 2022, sec. 3.1, here on query
/// blocks). The products and the softmax then cover (R/T)(1 + 2 + ... + T/R) of the T x T
/// scores: 5/8 at 4 blocks, 3/4 at 2. Otherwise one block: all queries against all keys
/// with `mask` as is.
SmallVector<QueryBlock> queryBlocks(const Lowerer::Mask &mask, int64_t causalRows) {
  int64_t r = mask.causal && !mask.queryStart && !mask.keys && !mask.keyOffset
                  ? attentionBlockFor(mask.t, causalRows)
                  : 0;
  if (!r)
    return {{0, mask.t, mask.keys ? mask.keys : mask.t, mask}};
  SmallVector<QueryBlock> blocks;
  for (int64_t q0 = 0; q0 < mask.t; q0 += r) {
    // Grouped row j of the block is query q0 + (j mod R) of head j / R.
    Lowerer::Mask m = mask;
    m.t = r;
    m.rowOffset = q0;
    m.keys = q0 + r;
    blocks.push_back({q0, r, q0 + r, m});
  }
  return blocks;
}

/// With `lse` (only set when the forward runs blockwise): the per-row log-sum-exp of the
/// blockwise forward (Lowerer::blockwiseAttention), for the blockwise backward.
Value lower(Lowerer &L, AttentionOp op, AttentionLimits limits, Value *lse = nullptr) {
  // Heads split next to the batch: q (B*KV, G*T, d), k and v (B*KV, T, d) with G = H/KV,
  // so query head h = kv*G + g meets key/value head kv (Hugging Face repeat_kv) without
  // copying k and v G times.
  auto sh = shapeOf(op.getQ());
  int64_t heads = op.getHeads(), kv = op.getNumKVHeads(), hd = sh[2] / heads;
  Lowerer::Mask mask = maskOf(op);
  Value q = L.groupHeads(L.toHeads(op.getQ(), heads), sh[0] * kv),
        k = L.toHeads(op.getK(), kv), v = L.toHeads(op.getV(), kv);
  Value o;
  if (int64_t block = attentionBlockFor(sh[1], limits.block)) {
    o = L.blockwiseAttention(q, k, v, mask, block, lse);
  } else {
    int64_t n = sh[0] * kv;
    o = L.empty({n, mask.group * sh[1], hd}, L.f32());
    for (const QueryBlock &qb : queryBlocks(mask, limits.causalRows)) {
      Value p = L.probs(L.queryRows(q, mask.group, qb.query, qb.count), L.rows(k, 0, qb.keys),
                        qb.mask);
      Value ob = L.matmul(p, L.rows(v, 0, qb.keys), false, false, {n, mask.group * qb.count, hd});
      o = L.insertQueryRows(ob, o, mask.group, qb.query);
    }
  }
  return L.fromHeads(L.ungroupHeads(o, sh[1]), sh[0], heads);
}

/// attention_grad's operands with the heads split next to the batch and grouped (as the
/// forward): q and dO (B*KV, G*T, d), k and v (B*KV, T, d).
struct GroupedGrad {
  Lowerer::Mask mask;
  ArrayRef<int64_t> sh; ///< q's shape (B, T, H*d)
  int64_t heads, kv, hd, t, n, rows; ///< H, KV, d, T, B*KV, G*T
  double scale;
  Value q, k, v, dO;
};

GroupedGrad groupGrad(Lowerer &L, AttentionGradOp op) {
  GroupedGrad g;
  g.sh = shapeOf(op.getQ());
  g.heads = op.getHeads(), g.kv = op.getNumKVHeads(), g.hd = g.sh[2] / g.heads, g.t = g.sh[1];
  g.mask = maskOf(op);
  g.n = g.sh[0] * g.kv, g.rows = g.mask.group * g.t;
  g.scale = g.mask.scale;
  g.q = L.groupHeads(L.toHeads(op.getQ(), g.heads), g.n);
  g.k = L.toHeads(op.getK(), g.kv);
  g.v = L.toHeads(op.getV(), g.kv);
  g.dO = L.groupHeads(L.toHeads(op.getDy(), g.heads), g.n);
  return g;
}

/// attention_grad on the direct path, one query block at a time (queryBlocks: all rows at
/// once, or causal row blocks against their key prefixes). Per block, from its rows q_b,
/// dO_b and its keys k_p, v_p:
///   P = softmax(q_b k_p^T scaled, masked); dV_p += P^T dO_b; dP = dO_b v_p^T;
///   dS = P (dP - rowsum(dP o P)) scale; dQ_b = dS k_p; dK_p += dS^T q_b
/// The contractions over rows sum dK and dV over the query heads of a group.
SmallVector<Value> lower(Lowerer &L, AttentionGradOp op, AttentionLimits limits) {
  GroupedGrad g = groupGrad(L, op);
  int64_t hd = g.hd, n = g.n;
  double scale = g.scale;
  SmallVector<QueryBlock> blocks = queryBlocks(g.mask, limits.causalRows);
  SmallVector<int64_t> kvs = {n, g.t, hd};
  Value dq = L.empty({n, g.rows, hd}, L.f32());
  // One block: dK and dV start as zeros inside their products (no accumulation).
  Value dk = blocks.size() > 1 ? L.fill(kvs, 0.0) : Value(),
        dv = blocks.size() > 1 ? L.fill(kvs, 0.0) : Value();
  AffineMap i3 = L.id(3), d3 = L.dropLast(3);
  for (const QueryBlock &qb : blocks) {
    int64_t rows = g.mask.group * qb.count;
    Value q = L.queryRows(g.q, g.mask.group, qb.query, qb.count),
          dO = L.queryRows(g.dO, g.mask.group, qb.query, qb.count);
    Value k = L.rows(g.k, 0, qb.keys), v = L.rows(g.v, 0, qb.keys);
    SmallVector<int64_t> qs = {n, rows, hd}, ps = {n, qb.keys, hd}, ss = {n, rows, qb.keys};
    Value p = L.probs(q, k, qb.mask);
    Value dvp = L.matmul(p, dO, true, false, ps, dv ? L.rows(dv, 0, qb.keys) : Value());
    Value dp = L.matmul(dO, v, false, true, ss); // dP = dO V^T
    Value rs = L.reduceLast(ss, ValueRange{dp, p}, {i3, i3}, 0.0,
                            [](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                              return arith::AddFOp::create(
                                  nb, nl, a[2], arith::MulFOp::create(nb, nl, a[0], a[1]));
                            });
    // dS * scale, with dS = P (dP - rowsum(dP P)); the scale of the scores folds in here.
    Value ds = L.generic(L.empty(ss, L.f32()), ValueRange{dp, p, rs}, {i3, i3, d3, i3},
                         SmallVector<IteratorType>(3, IteratorType::parallel),
                         [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                           Value d = arith::SubFOp::create(nb, nl, a[0], a[2]);
                           Value g = arith::MulFOp::create(nb, nl, a[1], d);
                           return arith::MulFOp::create(
                               nb, nl, g,
                               arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(scale)));
                         });
    Value dqb = L.matmul(ds, k, false, false, qs); // dQ_b = dS K s
    Value dkp = L.matmul(ds, q, true, false, ps, dk ? L.rows(dk, 0, qb.keys) : Value());
    dq = L.insertQueryRows(dqb, dq, g.mask.group, qb.query);
    dk = dk ? L.insertRows(dkp, dk, 0) : dkp;
    dv = dv ? L.insertRows(dvp, dv, 0) : dvp;
  }
  return {L.fromHeads(L.ungroupHeads(dq, g.t), g.sh[0], g.heads), L.fromHeads(dk, g.sh[0], g.kv),
          L.fromHeads(dv, g.sh[0], g.kv)};
}

Value lower(Lowerer &L, KVCacheWriteOp op) {
  // x (B,T,KV*d) -> (B,KV,T,d), the cache's layout, then one insert_slice per row at
  // [layer, b, 0, s_b, 0] (one for all rows without `start`).
  OpBuilder &b = L.b;
  Location loc = L.loc;
  auto c = shapeOf(op.getCache());
  int64_t bs = c[1], kv = c[2], ctx = c[3], hd = c[4], t = shapeOf(op.getX())[1];
  Value e = tensor::ExpandShapeOp::create(
      b, loc, RankedTensorType::get({bs, t, kv, hd}, L.f32()), op.getX(),
      SmallVector<ReassociationIndices>{{0}, {1}, {2, 3}});
  Value xt = linalg::TransposeOp::create(b, loc, e, L.empty({bs, kv, t, hd}, L.f32()),
                                         ArrayRef<int64_t>{0, 2, 1, 3})
                 .getResult()[0];
  int64_t layer = static_cast<int64_t>(op.getLayer());
  auto insert = [&](OpBuilder &nb, Location nl, Value src, Value cache, OpFoldResult row,
                    OpFoldResult pos, int64_t rows) -> Value {
    SmallVector<OpFoldResult> offsets = {nb.getIndexAttr(layer), row, nb.getIndexAttr(0), pos,
                                         nb.getIndexAttr(0)};
    SmallVector<OpFoldResult> sizes = {nb.getIndexAttr(1), nb.getIndexAttr(rows),
                                       nb.getIndexAttr(kv), nb.getIndexAttr(t),
                                       nb.getIndexAttr(hd)};
    SmallVector<OpFoldResult> strides(5, nb.getIndexAttr(1));
    Value src5 = tensor::ExpandShapeOp::create(
        nb, nl, RankedTensorType::get({1, rows, kv, t, hd}, nb.getF32Type()), src,
        SmallVector<ReassociationIndices>{{0, 1}, {2}, {3}, {4}});
    return tensor::InsertSliceOp::create(nb, nl, src5, cache, offsets, sizes, strides);
  };
  if (!op.getStart())
    return insert(b, loc, xt, op.getCache(), b.getIndexAttr(0), b.getIndexAttr(0), bs);
  Value start = op.getStart();
  auto loop = scf::ForOp::create(
      b, loc, L.idx(0), L.idx(bs), L.idx(1), ValueRange{op.getCache()},
      [&](OpBuilder &nb, Location nl, Value ib, ValueRange acc) {
        auto ci = [&](int64_t v) { return arith::ConstantIndexOp::create(nb, nl, v); };
        // s_b = clamp(start[b], 0, C - T): writes stay inside the cache.
        Value s0 = Lowerer::toIndex(nb, nl, tensor::ExtractOp::create(nb, nl, start, ValueRange{ib}));
        Value s1 = arith::MaxSIOp::create(nb, nl, s0, ci(0));
        Value pos = arith::MinSIOp::create(nb, nl, s1, ci(ctx - t));
        SmallVector<OpFoldResult> offsets = {ib, nb.getIndexAttr(0), nb.getIndexAttr(0),
                                             nb.getIndexAttr(0)};
        SmallVector<OpFoldResult> sizes = {nb.getIndexAttr(1), nb.getIndexAttr(kv),
                                           nb.getIndexAttr(t), nb.getIndexAttr(hd)};
        SmallVector<OpFoldResult> strides(4, nb.getIndexAttr(1));
        Value row = tensor::ExtractSliceOp::create(nb, nl, xt, offsets, sizes, strides);
        Value upd = insert(nb, nl, row, acc[0], ib, pos, 1);
        scf::YieldOp::create(nb, nl, upd);
      });
  return loop.getResult(0);
}

/// Keys per step of the number of cached positions that attention over a KV cache reads:
/// the count is rounded up to a multiple of it, so that the products over the cache take
/// a few shapes (oneDNN keeps one plan per shape) rather than one per decode position.
constexpr int64_t kCacheKeyQuantum = 16;

Value lower(Lowerer &L, CacheAttentionOp op) {
  // As llmp.attention with the keys and values of layer `layer` of the caches: q grouped
  // (B*KV, G*T, d), keys (B*KV, N, d); query i of batch b is at start[b] + i and sees the
  // cached positions j <= start[b] + i. Only the first N = min(C, roundup(max_b start[b]
  // + T, kCacheKeyQuantum)) positions are read: every later one lies after every row's
  // last query (j >= N > start[b] + i), so it is masked for every row; its probability is
  // exactly 0 and leaving it out changes neither the softmax nor P V. N is dynamic, so a
  // decode step reads the filled part of the cache, not all C positions.
  OpBuilder &b = L.b;
  Location loc = L.loc;
  auto sh = shapeOf(op.getQ());
  auto c = shapeOf(op.getKCache());
  int64_t heads = op.getHeads(), kv = op.getNumKVHeads(), hd = sh[2] / heads, ctx = c[3];
  int64_t n = sh[0] * kv, group = heads / kv, t = sh[1];
  // max_b start[b] (at least 0), then N.
  auto maxLoop = scf::ForOp::create(
      b, loc, L.idx(0), L.idx(sh[0]), L.idx(1), ValueRange{L.idx(0)},
      [&](OpBuilder &nb, Location nl, Value ib, ValueRange acc) {
        Value s0 = Lowerer::toIndex(
            nb, nl, tensor::ExtractOp::create(nb, nl, op.getStart(), ValueRange{ib}));
        scf::YieldOp::create(nb, nl, ValueRange{arith::MaxSIOp::create(nb, nl, acc[0], s0)});
      });
  Value end = arith::AddIOp::create(b, loc, maxLoop.getResult(0), L.idx(t + kCacheKeyQuantum - 1));
  Value rounded = arith::MulIOp::create(
      b, loc, arith::DivUIOp::create(b, loc, end, L.idx(kCacheKeyQuantum)), L.idx(kCacheKeyQuantum));
  Value keys = arith::MinSIOp::create(b, loc, rounded, L.idx(ctx));
  auto layerOf = [&](Value cache) -> Value {
    SmallVector<OpFoldResult> offsets = {b.getIndexAttr(static_cast<int64_t>(op.getLayer())),
                                         b.getIndexAttr(0), b.getIndexAttr(0), b.getIndexAttr(0),
                                         b.getIndexAttr(0)};
    SmallVector<OpFoldResult> sizes = {b.getIndexAttr(1), b.getIndexAttr(sh[0]),
                                       b.getIndexAttr(kv), keys, b.getIndexAttr(hd)};
    SmallVector<OpFoldResult> strides(5, b.getIndexAttr(1));
    auto ty = RankedTensorType::get({1, sh[0], kv, ShapedType::kDynamic, hd}, L.f32());
    Value s = tensor::ExtractSliceOp::create(b, loc, ty, cache, offsets, sizes, strides);
    return tensor::CollapseShapeOp::create(
        b, loc, RankedTensorType::get({n, ShapedType::kDynamic, hd}, L.f32()), s,
        SmallVector<ReassociationIndices>{{0, 1, 2}, {3}, {4}});
  };
  Lowerer::Mask mask{1.0 / std::sqrt(static_cast<double>(hd)), /*causal=*/true, t, group,
                     kv, /*segments=*/Value(), /*keyOffset=*/Value(), op.getStart(), ctx};
  Value q = L.groupHeads(L.toHeads(op.getQ(), heads), n);
  Value p = L.probs(q, layerOf(op.getKCache()), mask, keys);
  Value o = L.matmul(p, layerOf(op.getVCache()), false, false, {n, group * t, hd});
  return L.fromHeads(L.ungroupHeads(o, t), sh[0], heads);
}

Value lower(Lowerer &L, LastTokenOp op) {
  // result[b, n] = input[b, clamp(lengths[b], 1, T) - 1, n]
  auto sh = shapeOf(op.getInput());
  Value input = op.getInput();
  return L.generic(L.empty({sh[0], sh[2]}, L.f32()), op.getLengths(),
                   {L.map(2, {0}), L.id(2)}, SmallVector<IteratorType>(2, IteratorType::parallel),
                   [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                     auto ci = [&](int64_t v) { return arith::ConstantIndexOp::create(nb, nl, v); };
                     Value len = Lowerer::toIndex(nb, nl, a[0]);
                     len = arith::MinSIOp::create(nb, nl, arith::MaxSIOp::create(nb, nl, len, ci(1)),
                                                  ci(sh[1]));
                     Value t = arith::SubIOp::create(nb, nl, len, ci(1));
                     return tensor::ExtractOp::create(
                         nb, nl, input,
                         ValueRange{linalg::IndexOp::create(nb, nl, 0), t,
                                    linalg::IndexOp::create(nb, nl, 1)});
                   });
}

/// attention_grad over more keys than `attention-block`, blockwise: the FlashAttention-2
/// backward (Dao 2023, Algorithm 2), with all query rows of one key block per iteration,
/// as the blockwise forward. From the forward's per-row log-sum-exp L of the scaled,
/// masked scores and D = rowsum(dO o O) (O the forward's output), per key block
/// [kb, kb + block):
///   S = q k_blk^T (scaled, masked); P = exp(S - L); dV_blk = P^T dO; dP = dO v_blk^T;
///   dS = P (dP - D) scale; dQ += dS k_blk; dK_blk = dS^T q
/// so only (B*KV, G*T, block) scores exist at a time, never (B*KV, G*T, T). The sum over
/// the G*T rows in dV_blk and dK_blk adds up the query heads of a group (grouped-query);
/// masked scores are -inf, so their P is 0. `lse` (B*KV, G*T) and `out` (B, T, H*d) are the
/// forward's when it ran blockwise in the same function; when null, a blockwise forward
/// recomputes them here (Algorithm 1).
SmallVector<Value> lowerBlockwise(Lowerer &L, AttentionGradOp op, int64_t block, Value lse,
                                  Value out) {
  GroupedGrad g = groupGrad(L, op);
  Value o = lse && out ? L.groupHeads(L.toHeads(out, g.heads), g.n)
                       : L.blockwiseAttention(g.q, g.k, g.v, g.mask, block, &lse);
  AffineMap i3 = L.id(3), d3 = L.dropLast(3);
  auto par3 = SmallVector<IteratorType>(3, IteratorType::parallel);
  Value dsum = L.reduceLast({g.n, g.rows, g.hd}, ValueRange{g.dO, o}, {i3, i3}, 0.0,
                            [](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                              return arith::AddFOp::create(
                                  nb, nl, a[2], arith::MulFOp::create(nb, nl, a[0], a[1]));
                            });
  SmallVector<int64_t> qs = {g.n, g.rows, g.hd}, kvs = {g.n, g.t, g.hd},
                       bks = {g.n, block, g.hd}, ss = {g.n, g.rows, block};
  auto loop = scf::ForOp::create(
      L.b, L.loc, L.idx(0), L.idx(g.t), L.idx(block),
      ValueRange{L.fill(qs, 0.0), L.fill(kvs, 0.0), L.fill(kvs, 0.0)},
      [&](OpBuilder &nb, Location nl, Value kb, ValueRange it) {
        Lowerer I{nb, nl};
        SmallVector<OpFoldResult> offsets = {nb.getIndexAttr(0), kb, nb.getIndexAttr(0)};
        SmallVector<OpFoldResult> sizes = {nb.getIndexAttr(g.n), nb.getIndexAttr(block),
                                           nb.getIndexAttr(g.hd)};
        SmallVector<OpFoldResult> strides(3, nb.getIndexAttr(1));
        auto slice = [&](Value x) -> Value {
          return tensor::ExtractSliceOp::create(nb, nl, x, offsets, sizes, strides);
        };
        auto insert = [&](Value blk, Value into) -> Value {
          return tensor::InsertSliceOp::create(nb, nl, blk, into, offsets, sizes, strides);
        };
        Lowerer::Mask bm = g.mask;
        bm.keyOffset = kb;
        Value kj = slice(g.k), vj = slice(g.v);
        Value sc = I.matmul(g.q, kj, false, true, ss);
        Value p = I.generic(I.empty(ss, I.f32()), ValueRange{sc, lse}, {i3, d3, i3}, par3,
                            [&](OpBuilder &ib, Location il, ValueRange a) -> Value {
                              Value x = Lowerer::maskedScore(ib, il, a[0], bm);
                              return math::ExpOp::create(ib, il,
                                                         arith::SubFOp::create(ib, il, x, a[1]));
                            });
        Value dvj = I.matmul(p, g.dO, true, false, bks); // dV_blk = P^T dO
        Value dp = I.matmul(g.dO, vj, false, true, ss);  // dP = dO V_blk^T
        Value ds = I.generic(I.empty(ss, I.f32()), ValueRange{dp, p, dsum}, {i3, i3, d3, i3},
                             par3, [&](OpBuilder &ib, Location il, ValueRange a) -> Value {
                               Value d = arith::SubFOp::create(ib, il, a[0], a[2]);
                               Value pd = arith::MulFOp::create(ib, il, a[1], d);
                               return arith::MulFOp::create(
                                   ib, il, pd,
                                   arith::ConstantOp::create(ib, il, ib.getF32FloatAttr(g.scale)));
                             });
        Value dq = I.matmul(ds, kj, false, false, qs, it[0]); // dQ += dS K_blk
        Value dkj = I.matmul(ds, g.q, true, false, bks);      // dK_blk = dS^T Q
        scf::YieldOp::create(nb, nl, ValueRange{dq, insert(dkj, it[1]), insert(dvj, it[2])});
      });
  return {L.fromHeads(L.ungroupHeads(loop.getResult(0), g.t), g.sh[0], g.heads),
          L.fromHeads(loop.getResult(1), g.sh[0], g.kv),
          L.fromHeads(loop.getResult(2), g.sh[0], g.kv)};
}

/// Blockwise attention forwards whose backward reuses their per-row log-sum-exp and
/// output (FlashAttention-2 saves L for the backward instead of recomputing it).
struct FlashForwards {
  /// Each attention_grad -> the attention op with the same q, k, v, segments and
  /// attributes earlier in its block (autodiff keeps the forward beside the backward).
  DenseMap<Operation *, Operation *> forwardOf;
  /// Lowered forwards -> (log-sum-exp (B*KV, G*T), output (B, T, H*d)).
  DenseMap<Operation *, std::pair<Value, Value>> saved;

  explicit FlashForwards(Operation *root) {
    root->walk([&](AttentionGradOp g) {
      for (Operation *user : g.getQ().getUsers()) {
        auto f = dyn_cast<AttentionOp>(user);
        if (f && f.getK() == g.getK() && f.getV() == g.getV() &&
            f.getSegments() == g.getSegments() && f.getHeads() == g.getHeads() &&
            f.getNumKVHeads() == g.getNumKVHeads() && f.getCausal() == g.getCausal() &&
            f->getBlock() == g->getBlock() && f->isBeforeInBlock(g)) {
          forwardOf[g] = f;
          break;
        }
      }
    });
  }

  bool isSaved(Operation *forward) const {
    return llvm::any_of(forwardOf, [&](auto &e) { return e.second == forward; });
  }
};

/// Lowers attention and attention_grad over more keys than `attentionBlock` blockwise,
/// passing the forward's log-sum-exp to the backward through `flash`; any other op by
/// lowerOp.
FailureOr<SmallVector<Value>> lowerOp(Lowerer &L, Operation *op, AttentionLimits limits);
FailureOr<SmallVector<Value>> lowerFlash(Lowerer &L, Operation *op, AttentionLimits limits,
                                         FlashForwards &flash) {
  if (auto f = dyn_cast<AttentionOp>(op)) {
    if (attentionBlockFor(shapeOf(f.getQ())[1], limits.block) && flash.isSaved(op)) {
      Value lse;
      Value out = lower(L, f, limits, &lse);
      flash.saved[op] = {lse, out};
      return SmallVector<Value>{out};
    }
  }
  if (auto g = dyn_cast<AttentionGradOp>(op)) {
    if (int64_t block = attentionBlockFor(shapeOf(g.getQ())[1], limits.block)) {
      std::pair<Value, Value> fwd = flash.saved.lookup(flash.forwardOf.lookup(op));
      return lowerBlockwise(L, g, block, fwd.first, fwd.second);
    }
  }
  return lowerOp(L, op, limits);
}

/// Whether the i32 target `t` is the ignore index -100 (runtime/StepABI.h kIgnoreIndex).
Value isIgnored(OpBuilder &nb, Location nl, Value t) {
  Value ignore = arith::ConstantOp::create(nb, nl, nb.getI32IntegerAttr(-100));
  return arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::eq, t, ignore);
}

/// Per-token loss lse(logits[b,t,:]) - logits[b,t,target] (0 for target -100); the
/// log-sum-exp is one pass over the logits (Lowerer::logSumExp).
Value lower(Lowerer &L, CrossEntropyOp op) {
  auto sh = shapeOf(op.getResult());
  Value logits = op.getLogits();
  Value lse = L.logSumExp(logits);
  return L.generic(L.empty(sh, L.f32()), ValueRange{op.getTargets(), lse},
                   {L.id(2), L.id(2), L.id(2)},
                   SmallVector<IteratorType>(2, IteratorType::parallel),
                   [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                     Value ib = linalg::IndexOp::create(nb, nl, 0);
                     Value it = linalg::IndexOp::create(nb, nl, 1);
                     // An ignored target (-100) reads logit 0 and contributes 0.
                     Value ignored = isIgnored(nb, nl, a[0]);
                     Value safe = arith::SelectOp::create(
                         nb, nl, ignored, arith::ConstantOp::create(nb, nl, nb.getI32IntegerAttr(0)),
                         a[0]);
                     Value tgt = Lowerer::toIndex(nb, nl, safe);
                     Value lt = tensor::ExtractOp::create(nb, nl, logits, ValueRange{ib, it, tgt});
                     Value l = arith::SubFOp::create(nb, nl, a[1], lt);
                     return arith::SelectOp::create(
                         nb, nl, ignored, arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(0.0f)), l);
                   });
}

/// d loss / d logits = (softmax(logits) - onehot(target)) * dy, 0 for target -100, in one
/// pass that writes over the logits tensor itself (`outs`): the probabilities exist only
/// as the gradient, and when nothing reads the logits afterwards (next_token: the forward's
/// gather and log-sum-exp come first) bufferization reuses the logits' buffer, so a step
/// holds one (B,T,V) buffer instead of two. The log-sum-exp is the forward's (CSE).
Value lower(Lowerer &L, CrossEntropyGradOp op) {
  Value lse = L.logSumExp(op.getLogits());
  AffineMap i3 = L.id(3), d3 = L.dropLast(3);
  return L.generic(op.getLogits(), ValueRange{op.getTargets(), lse, op.getDy()},
                   {d3, d3, d3, i3}, SmallVector<IteratorType>(3, IteratorType::parallel),
                   [](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                     Value x = a[3];
                     Value p = math::ExpOp::create(nb, nl, arith::SubFOp::create(nb, nl, x, a[1]));
                     Value v = arith::IndexCastOp::create(nb, nl, nb.getI32Type(),
                                                          linalg::IndexOp::create(nb, nl, 2));
                     Value hit = arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::eq, v, a[0]);
                     Value one = arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(1.0f));
                     Value pm = arith::SelectOp::create(nb, nl, hit, arith::SubFOp::create(nb, nl, p, one), p);
                     Value g = arith::MulFOp::create(nb, nl, pm, a[2]);
                     return arith::SelectOp::create(
                         nb, nl, isIgnored(nb, nl, a[0]),
                         arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(0.0f)), g);
                   });
}

/// max(number of targets that are not -100, 1), as an f32 rank-0 tensor.
Value targetCount(Lowerer &L, Value targets) {
  unsigned rank = shapeOf(targets).size();
  Value count = L.generic(L.fill({}, 0.0), targets,
                          {L.id(rank), AffineMap::get(rank, 0, {}, L.b.getContext())},
                          SmallVector<IteratorType>(rank, IteratorType::reduction),
                          [](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                            Value one = arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(1.0f));
                            Value zero = arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(0.0f));
                            Value inc = arith::SelectOp::create(nb, nl, isIgnored(nb, nl, a[0]), zero, one);
                            return arith::AddFOp::create(nb, nl, a[1], inc);
                          });
  return L.elementwise({}, count, [](OpBuilder &nb, Location nl, ValueRange a) -> Value {
    return arith::MaximumFOp::create(nb, nl, a[0],
                                     arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(1.0f)));
  });
}

Value lower(Lowerer &L, TargetMeanOp op) {
  auto sh = shapeOf(op.getInput());
  unsigned rank = sh.size();
  Value sum = L.generic(L.fill({}, 0.0), ValueRange{op.getInput(), op.getTargets()},
                        {L.id(rank), L.id(rank), AffineMap::get(rank, 0, {}, L.b.getContext())},
                        SmallVector<IteratorType>(rank, IteratorType::reduction),
                        [](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                          Value zero = arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(0.0f));
                          Value x = arith::SelectOp::create(nb, nl, isIgnored(nb, nl, a[1]), zero, a[0]);
                          return arith::AddFOp::create(nb, nl, a[2], x);
                        });
  Value count = targetCount(L, op.getTargets());
  return L.elementwise({}, ValueRange{sum, count},
                       [](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                         return arith::DivFOp::create(nb, nl, a[0], a[1]);
                       });
}

Value lower(Lowerer &L, TargetMeanGradOp op) {
  auto sh = shapeOf(op.getResult());
  unsigned rank = sh.size();
  Value count = targetCount(L, op.getTargets());
  AffineMap scalar = AffineMap::get(rank, 0, {}, L.b.getContext());
  return L.generic(L.empty(sh, L.f32()), ValueRange{op.getTargets(), op.getDy(), count},
                   {L.id(rank), scalar, scalar, L.id(rank)},
                   SmallVector<IteratorType>(rank, IteratorType::parallel),
                   [](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                     Value zero = arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(0.0f));
                     Value g = arith::DivFOp::create(nb, nl, a[1], a[2]);
                     return arith::SelectOp::create(nb, nl, isIgnored(nb, nl, a[0]), zero, g);
                   });
}

Value lower(Lowerer &L, MeanOp op) {
  auto sh = shapeOf(op.getInput());
  unsigned rank = sh.size();
  auto ty = cast<RankedTensorType>(op.getInput().getType());
  double inv = 1.0 / static_cast<double>(ty.getNumElements());
  Value sum = L.generic(L.fill({}, 0.0), op.getInput(),
                        {L.id(rank), AffineMap::get(rank, 0, {}, L.b.getContext())},
                        SmallVector<IteratorType>(rank, IteratorType::reduction),
                        [](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                          return arith::AddFOp::create(nb, nl, a[1], a[0]);
                        });
  return L.elementwise({}, sum, [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
    return arith::MulFOp::create(nb, nl, a[0], arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(inv)));
  });
}

Value lower(Lowerer &L, SplatOp op) {
  auto sh = shapeOf(op.getResult());
  unsigned rank = sh.size();
  double scale = op.getScale().convertToFloat();
  return L.generic(L.empty(sh, L.f32()), op.getInput(),
                   {AffineMap::get(rank, 0, {}, L.b.getContext()), L.id(rank)},
                   SmallVector<IteratorType>(rank, IteratorType::parallel),
                   [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                     return arith::MulFOp::create(
                         nb, nl, a[0], arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(scale)));
                   });
}

/// Lowers one op; returns its replacement values or failure for an unknown op.
/// `limits` are the pass options `attention-block` and `causal-row-block`.
FailureOr<SmallVector<Value>> lowerOp(Lowerer &L, Operation *op, AttentionLimits limits) {
  auto one = [](Value v) { return SmallVector<Value>{v}; };
  return llvm::TypeSwitch<Operation *, FailureOr<SmallVector<Value>>>(op)
      .Case<AttentionOp>([&](AttentionOp o) { return one(lower(L, o, limits)); })
      .Case<AttentionGradOp>([&](AttentionGradOp o) { return lower(L, o, limits); })
      .Case<EmbeddingOp, EmbeddingGradOp, MatmulOp, ReshapeOp, TransposeOp, AddOp, MulOp,
            SiluOp, SiluGradOp, DropoutOp, RMSNormOp, RopeOp, PositionsOp, CrossEntropyOp,
            CrossEntropyGradOp, TargetMeanOp, TargetMeanGradOp, MeanOp, SplatOp,
            KVCacheWriteOp, CacheAttentionOp, LastTokenOp>(
          [&](auto o) { return one(lower(L, o)); })
      .Case<RMSNormGradOp>([&](auto o) { return lower(L, o); })
      .Case<MatmulNf4Op>([&](MatmulNf4Op o) { return one(lower(L, o)); })
      .Default([](Operation *) { return failure(); });
}

struct LLMPLowerToLinalgPass
    : mlir::llmp::impl::LLMPLowerToLinalgBase<LLMPLowerToLinalgPass> {
  using LLMPLowerToLinalgBase::LLMPLowerToLinalgBase;
  void runOnOperation() override {
    SmallVector<Operation *> ops;
    getOperation()->walk([&](Operation *op) {
      if (isa<LLMPDialect>(op->getDialect()))
        ops.push_back(op);
    });
    IRRewriter rewriter(&getContext());
    FlashForwards flash(getOperation());
    for (Operation *op : ops) {
      rewriter.setInsertionPoint(op);
      Lowerer L{rewriter, op->getLoc()};
      FailureOr<SmallVector<Value>> repl =
          lowerFlash(L, op, AttentionLimits{attentionBlock, causalRowBlock}, flash);
      if (failed(repl)) {
        op->emitOpError() << "has no lowering to linalg";
        return signalPassFailure();
      }
      rewriter.replaceOp(op, *repl);
    }
  }
};

} // namespace
