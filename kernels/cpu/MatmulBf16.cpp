// SPDX-License-Identifier: Apache-2.0
/// `precision: bf16` GEMMs through oneDNN's matmul (kernels/cpu/MatmulBf16.h).
#include "kernels/cpu/MatmulBf16.h"

#include "kernels/cpu/Alloc.h"
#include "kernels/cpu/Matmul.h"

#include <dnnl.hpp>

#include <algorithm>
#include <map>
#include <mutex>
#include <omp.h>
#include <tuple>

namespace {

using dnnl::memory;

/// An operand op(X) of logical shape (rows, cols) with element strides (s0, s1); with
/// batch > 1, `batch` such matrices `sb` elements apart (a batched product's operand).
struct Operand {
  void *data;
  int64_t rows, cols, s0, s1;
  int64_t batch = 1, sb = 0;
};

template <typename T>
Operand operand(const lrt::MemRef<T, 2> *m, bool t) {
  T *p = m->aligned + m->offset;
  if (!t)
    return {p, m->sizes[0], m->sizes[1], m->strides[0], m->strides[1]};
  return {p, m->sizes[1], m->sizes[0], m->strides[1], m->strides[0]};
}

/// op(X) of each matrix of a (batch, rows, cols) memref (transposes act on the last two
/// dimensions).
Operand operand(const lrt::MemRef<float, 3> *m, bool t) {
  float *p = m->aligned + m->offset;
  if (!t)
    return {p, m->sizes[1], m->sizes[2], m->strides[1], m->strides[2], m->sizes[0],
            m->strides[0]};
  return {p, m->sizes[2], m->sizes[1], m->strides[2], m->strides[1], m->sizes[0],
          m->strides[0]};
}

/// The dense bf16 copy keeps the operand's physical order (a plain conversion, no
/// transpose): column-major when the source's row stride is the unit one; the matrices of
/// a batch one after the other.
memory::dims denseStrides(const Operand &x) {
  memory::dims inner = x.s0 == 1 && x.s1 != 1 ? memory::dims{1, x.rows} : memory::dims{x.cols, 1};
  if (x.batch == 1)
    return inner;
  return {x.rows * x.cols, inner[0], inner[1]};
}

/// oneDNN dims and strides of `x` as stored: 2-D, or 3-D for a batch.
memory::dims dimsOf(const Operand &x) {
  if (x.batch == 1)
    return {x.rows, x.cols};
  return {x.batch, x.rows, x.cols};
}
memory::dims stridesOf(const Operand &x) {
  if (x.batch == 1)
    return {x.s0, x.s1};
  return {x.sb, x.s0, x.s1};
}

/// Primitives for one product shape and layout; oneDNN's own cache would still redo the
/// implementation dispatch of the primitive descriptors on every call.
struct Plan {
  dnnl::reorder toBf16A, toBf16B;
  dnnl::matmul matmul;
  memory::desc a32, b32, a16, b16, c32;
};

/// Shapes, strides, beta and whether B is stored bf16: everything a Plan depends on
/// (denseStrides derives from them).
using Key = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                       int64_t, bool, bool, int64_t, int64_t, int64_t, int64_t>;

struct Context {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  std::mutex mu;
  std::map<Key, Plan> plans;
};

Context &context() {
  static Context ctx;
  return ctx;
}

/// The primitives of one product; with `bStored` B is bf16 already (its own strides) and
/// needs no reorder.
const Plan &planFor(const Operand &a, const Operand &b, const Operand &c, bool accumulate,
                    bool bStored) {
  Context &ctx = context();
  Key key{a.rows, a.cols, b.cols, a.s0, a.s1, b.s0, b.s1, c.s0, c.s1, accumulate, bStored,
          a.batch, a.sb, b.sb, c.sb};
  std::lock_guard<std::mutex> lock(ctx.mu);
  auto it = ctx.plans.find(key);
  if (it != ctx.plans.end())
    return it->second;
  using dt = memory::data_type;
  Plan p;
  p.a32 = memory::desc(dimsOf(a), dt::f32, stridesOf(a));
  p.b32 = memory::desc(dimsOf(b), dt::f32, stridesOf(b));
  p.a16 = memory::desc(dimsOf(a), dt::bf16, denseStrides(a));
  p.b16 = memory::desc(dimsOf(b), dt::bf16, bStored ? stridesOf(b) : denseStrides(b));
  p.c32 = memory::desc(dimsOf(c), dt::f32, stridesOf(c));
  p.toBf16A = dnnl::reorder(dnnl::reorder::primitive_desc(ctx.engine, p.a32, ctx.engine, p.a16));
  if (!bStored)
    p.toBf16B = dnnl::reorder(dnnl::reorder::primitive_desc(ctx.engine, p.b32, ctx.engine, p.b16));
  dnnl::primitive_attr attr;
  if (accumulate) { // C += A B; without it C = A B
    dnnl::post_ops sum;
    sum.append_sum(1.0f);
    attr.set_post_ops(sum);
  }
  p.matmul = dnnl::matmul(
      dnnl::matmul::primitive_desc(dnnl::matmul::desc(p.a16, p.b16, p.c32), attr, ctx.engine));
  return ctx.plans.emplace(key, std::move(p)).first->second;
}

/// A bf16 copy's buffer from the step heap, freed when the product is done (none for 0).
struct Scratch {
  void *data;
  explicit Scratch(int64_t elems)
      : data(elems > 0 ? lrt_alloc(static_cast<size_t>(elems) * 2) : nullptr) {}
  ~Scratch() { lrt_free(data); }
  Scratch(const Scratch &) = delete;
  Scratch &operator=(const Scratch &) = delete;
};

/// Whether the bf16 path applies to a product of these operands on this CPU.
bool bf16Applies(const Operand &a, const Operand &b, const Operand &c) {
  return lrt_matmul_bf16_native() && lrt::matmulBf16Shape(a.rows, b.cols, a.cols) &&
         (a.s0 == 1 || a.s1 == 1) && (b.s0 == 1 || b.s1 == 1) && c.s1 == 1;
}

/// C = op(A) op(B) (+ C) in bf16 with fp32 accumulation; B fp32 (rounded here into scratch)
/// or, with `bStored`, bf16 already. False when the fp32 kernel must compute it instead.
bool multiplyBf16(const Operand &a, const Operand &b, const Operand &c, bool accumulate,
                  bool bStored) {
  if (!bf16Applies(a, b, c))
    return false;
  try {
    const Plan &p = planFor(a, b, c, accumulate, bStored);
    Scratch bufA(a.batch * a.rows * a.cols), bufB(bStored ? 0 : b.batch * b.rows * b.cols);
    dnnl::engine &eng = context().engine;
    memory a32(p.a32, eng, a.data), c32(p.c32, eng, c.data);
    memory a16(p.a16, eng, bufA.data), b16(p.b16, eng, bStored ? b.data : bufB.data);
    dnnl::stream &s = context().stream;
    p.toBf16A.execute(s, a32, a16);
    if (!bStored) {
      memory b32(p.b32, eng, b.data);
      p.toBf16B.execute(s, b32, b16);
    }
    p.matmul.execute(s, {{DNNL_ARG_SRC, a16}, {DNNL_ARG_WEIGHTS, b16}, {DNNL_ARG_DST, c32}});
    s.wait();
    return true;
  } catch (const dnnl::error &) {
    return false; // the fp32 kernel computes the product instead
  }
}

} // namespace

extern "C" bool lrt_matmul_bf16_native() {
  static const bool native = [] {
    auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
    auto bf16 = static_cast<unsigned>(dnnl::cpu_isa::avx512_core_bf16);
    return (isa & bf16) == bf16;
  }();
  return native;
}

extern "C" void _mlir_ciface_lrt_matmul_bf16(int32_t ta, int32_t tb, int32_t accumulate,
                                             lrt::MemRef<float, 2> *a,
                                             lrt::MemRef<float, 2> *b,
                                             lrt::MemRef<float, 2> *c) {
  if (!multiplyBf16(operand(a, ta != 0), operand(b, tb != 0), operand(c, false),
                    accumulate != 0, false))
    _mlir_ciface_lrt_matmul_f32(ta, tb, accumulate, a, b, c);
}

extern "C" void _mlir_ciface_lrt_batch_matmul_bf16(int32_t ta, int32_t tb, int32_t accumulate,
                                                   lrt::MemRef<float, 3> *a,
                                                   lrt::MemRef<float, 3> *b,
                                                   lrt::MemRef<float, 3> *c) {
  // A batch of one matrix is the 2-D product (oneDNN's 2-D primitive, its own plan).
  Operand oa = operand(a, ta != 0), ob = operand(b, tb != 0), oc = operand(c, false);
  if (oa.batch == 1)
    oa.sb = ob.sb = oc.sb = 0;
  if (oa.batch != ob.batch || oa.batch != oc.batch ||
      !multiplyBf16(oa, ob, oc, accumulate != 0, false))
    _mlir_ciface_lrt_batch_matmul_f32(ta, tb, accumulate, a, b, c);
}

extern "C" void _mlir_ciface_lrt_matmul_bf16_b(int32_t ta, int32_t tb, int32_t accumulate,
                                               lrt::MemRef<float, 2> *a,
                                               lrt::MemRef<uint16_t, 2> *b,
                                               lrt::MemRef<float, 2> *c) {
  if (multiplyBf16(operand(a, ta != 0), operand(b, tb != 0), operand(c, false),
                   accumulate != 0, true))
    return;
  // Fallback: B widened exactly to a dense row-major fp32 copy (4 KN bytes of step heap).
  int64_t rows = b->sizes[0], cols = b->sizes[1];
  float *wide = static_cast<float *>(lrt_alloc(size_t(rows * cols) * 4));
  const uint16_t *src = b->aligned + b->offset;
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j)
      wide[i * cols + j] = lrt::fromBf16(src[i * b->strides[0] + j * b->strides[1]]);
  lrt::MemRef<float, 2> b32 = lrt::viewOf(wide, {rows, cols});
  _mlir_ciface_lrt_matmul_f32(ta, tb, accumulate, a, &b32, c);
  lrt_free(wide);
}
