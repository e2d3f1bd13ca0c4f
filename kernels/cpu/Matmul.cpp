// SPDX-License-Identifier: Apache-2.0
/// GEMM kernels over strided memrefs: cblas_sgemm (OpenBLAS) with a plain-loop fallback,
/// shared over the OpenMP threads of the generated code (OpenBLAS itself single-threaded);
/// products with a dimension of at most 64 (every product on AMD CPUs with AVX-512) on oneDNN
/// (kernels/cpu/MatmulF32Dnnl.h).
#include "kernels/cpu/Matmul.h"
#include "kernels/cpu/MatmulF32Dnnl.h"

#include <algorithm>
#include <cblas.h>
#include <mutex>
#include <omp.h>

namespace {

/// A 2-D strided view: element (i, j) at data[i * s0 + j * s1].
struct View {
  float *data;
  int64_t rows, cols, s0, s1;
};

View view2(const lrt::MemRef<float, 2> *m) {
  return {m->aligned + m->offset, m->sizes[0], m->sizes[1], m->strides[0], m->strides[1]};
}

/// C (M,N) += op(A) op(B) (`acc`) or C = op(A) op(B) (not `acc`: C is only written, so
/// whatever it held, NaN included, is gone) with plain loops; any strides.
void gemmRef(bool ta, bool tb, bool acc, const View &a, const View &b, const View &c) {
  int64_t m = c.rows, n = c.cols, k = ta ? a.rows : a.cols;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      float sum = 0.0f;
      for (int64_t p = 0; p < k; ++p) {
        float av = ta ? a.data[p * a.s0 + i * a.s1] : a.data[i * a.s0 + p * a.s1];
        float bv = tb ? b.data[j * b.s0 + p * b.s1] : b.data[p * b.s0 + j * b.s1];
        sum += av * bv;
      }
      float &out = c.data[i * c.s0 + j * c.s1];
      out = acc ? out + sum : sum;
    }
}

/// Describes `v` (used transposed when `t`) as a row-major BLAS operand: returns false if
/// neither dimension has unit stride.
bool asBlas(const View &v, bool t, CBLAS_TRANSPOSE &trans, int64_t &ld) {
  if (v.s1 == 1 && v.s0 >= std::max<int64_t>(1, v.cols)) {
    trans = t ? CblasTrans : CblasNoTrans;
    ld = v.s0;
    return true;
  }
  if (v.s0 == 1 && v.s1 >= std::max<int64_t>(1, v.rows)) {
    // Column-major storage is the row-major storage of the transpose.
    trans = t ? CblasNoTrans : CblasTrans;
    ld = v.s1;
    return true;
  }
  return false;
}

/// C (+)= op(A) op(B) on the calling thread: cblas_sgemm with beta = 1 (`acc`) or 0
/// (OpenBLAS then writes C without reading it), gemmRef when a stride rules BLAS out.
void gemm1(bool ta, bool tb, bool acc, const View &a, const View &b, const View &c) {
  int64_t m = c.rows, n = c.cols, k = ta ? a.rows : a.cols;
  if (m == 0 || n == 0)
    return;
  CBLAS_TRANSPOSE tra, trb;
  int64_t lda, ldb;
  bool cRowMajor = c.s1 == 1 && c.s0 >= std::max<int64_t>(1, n);
  if (k == 0 || !cRowMajor || !asBlas(a, ta, tra, lda) || !asBlas(b, tb, trb, ldb)) {
    gemmRef(ta, tb, acc, a, b, c);
    return;
  }
  cblas_sgemm(CblasRowMajor, tra, trb, m, n, k, 1.0f, a.data, lda, b.data, ldb,
              acc ? 1.0f : 0.0f, c.data, c.s0);
}

/// The generated loops run on OpenMP threads and spread each GEMM over the same threads
/// (below); OpenBLAS's own pthreads would oversubscribe the cores and spin in sched_yield
/// while idle (about 20% of a step's samples before), so OpenBLAS runs single-threaded.
void useSingleThreadedBlas() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}

/// Rows [r0, r1) of op(X) for a (rows, cols) view `x` used transposed when `t`.
View rowsOf(const View &x, bool t, int64_t r0, int64_t r1) {
  return t ? View{x.data + r0 * x.s1, x.rows, r1 - r0, x.s0, x.s1}
           : View{x.data + r0 * x.s0, r1 - r0, x.cols, x.s0, x.s1};
}

/// Columns [c0, c1) of op(X).
View colsOf(const View &x, bool t, int64_t c0, int64_t c1) {
  return t ? View{x.data + c0 * x.s0, c1 - c0, x.cols, x.s0, x.s1}
           : View{x.data + c0 * x.s1, x.rows, c1 - c0, x.s0, x.s1};
}

/// Below this many multiply-adds a GEMM runs on the calling thread: a fork costs about
/// a microsecond, 64^3 multiply-adds about ten.
constexpr int64_t kMinParallelMacs = 64 * 64 * 64;

/// op(X) of a stored (rows, cols) view as a oneDNN operand of `batch` slices `sb` apart.
lrt::DnnlOperand dnnlOperand(const View &x, bool t, int64_t batch, int64_t sb) {
  if (t)
    return {x.data, batch, x.cols, x.rows, sb, x.s1, x.s0};
  return {x.data, batch, x.rows, x.cols, sb, x.s0, x.s1};
}

/// The routing rule of kernels/cpu/Matmul.h: `batch` products C = op(A) op(B) (slices
/// sa, sb, sc elements apart) with a dimension of at most 64 and enough work to share go
/// to oneDNN (from serial code only: its threads are the generated code's), which wins on
/// them (bench/gemm_shapes); false when it did not run (not routed, or oneDNN refused).
bool dnnlGemm(bool ta, bool tb, bool acc, int64_t batch, const View &a, const View &b,
              const View &c, int64_t sa, int64_t sb, int64_t sc) {
  int64_t m = c.rows, n = c.cols, k = ta ? a.rows : a.cols;
  if (omp_in_parallel() || k == 0 || batch * m * n * k < kMinParallelMacs ||
      !lrt::matmulF32PrefersDnnl(m, n, k))
    return false;
  return lrt::matmulF32Dnnl(dnnlOperand(a, ta, batch, sa), dnnlOperand(b, tb, batch, sb),
                            dnnlOperand(c, false, batch, sc), acc);
}

/// C (+)= op(A) op(B) (accumulating when `acc`), split over the OpenMP threads along the longer of C's dimensions in
/// blocks of 16 (the sgemm kernels' register tile). The split depends only on the shapes
/// and the thread count, so runs with the same thread count are bitwise reproducible.
/// `route`: products that the rule of Matmul.h sends to oneDNN go there.
void gemm(bool ta, bool tb, bool acc, const View &a, const View &b, const View &c,
          bool route = true) {
  useSingleThreadedBlas();
  int64_t m = c.rows, n = c.cols, k = ta ? a.rows : a.cols;
  if (route && dnnlGemm(ta, tb, acc, 1, a, b, c, 0, 0, 0))
    return;
  int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (threads <= 1 || m * n * k < kMinParallelMacs) {
    gemm1(ta, tb, acc, a, b, c);
    return;
  }
  bool byRows = m >= n;
  int64_t extent = byRows ? m : n;
  int64_t blocks = (extent + 15) / 16;
  threads = static_cast<int>(std::min<int64_t>(threads, blocks));
#pragma omp parallel num_threads(threads)
  {
    int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    int64_t lo = std::min(extent, blocks * t / nt * 16), hi = std::min(extent, blocks * (t + 1) / nt * 16);
    if (lo < hi) {
      if (byRows)
        gemm1(ta, tb, acc, rowsOf(a, ta, lo, hi), b,
              View{c.data + lo * c.s0, hi - lo, n, c.s0, c.s1});
      else
        gemm1(ta, tb, acc, a, colsOf(b, tb, lo, hi),
              View{c.data + lo * c.s1, m, hi - lo, c.s0, c.s1});
    }
  }
}

} // namespace

extern "C" void _mlir_ciface_lrt_matmul_f32(int32_t ta, int32_t tb, int32_t accumulate,
                                            lrt::MemRef<float, 2> *a,
                                            lrt::MemRef<float, 2> *b,
                                            lrt::MemRef<float, 2> *c) {
  gemm(ta != 0, tb != 0, accumulate != 0, view2(a), view2(b), view2(c));
}

extern "C" void lrt_matmul_f32_blas(int32_t ta, int32_t tb, int32_t accumulate,
                                    lrt::MemRef<float, 2> *a, lrt::MemRef<float, 2> *b,
                                    lrt::MemRef<float, 2> *c) {
  gemm(ta != 0, tb != 0, accumulate != 0, view2(a), view2(b), view2(c), /*route=*/false);
}

namespace {

void batchGemm(bool ta, bool tb, bool acc, lrt::MemRef<float, 3> *a, lrt::MemRef<float, 3> *b,
               lrt::MemRef<float, 3> *c, bool route) {
  auto slice = [](lrt::MemRef<float, 3> *m, int64_t i) {
    return View{m->aligned + m->offset + i * m->strides[0], m->sizes[1], m->sizes[2],
                m->strides[1], m->strides[2]};
  };
  int64_t batch = c->sizes[0];
  useSingleThreadedBlas();
  if (route && batch > 0 &&
      dnnlGemm(ta, tb, acc, batch, slice(a, 0), slice(b, 0), slice(c, 0), a->strides[0],
               b->strides[0], c->strides[0]))
    return;
  int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (batch < threads) { // too few slices to share: split each product instead
    for (int64_t i = 0; i < batch; ++i)
      gemm(ta, tb, acc, slice(a, i), slice(b, i), slice(c, i), route);
    return;
  }
  // Slices are independent: one thread each, in contiguous static chunks.
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t i = 0; i < batch; ++i)
    gemm1(ta, tb, acc, slice(a, i), slice(b, i), slice(c, i));
}

} // namespace

extern "C" void _mlir_ciface_lrt_batch_matmul_f32(int32_t ta, int32_t tb, int32_t accumulate,
                                                  lrt::MemRef<float, 3> *a,
                                                  lrt::MemRef<float, 3> *b,
                                                  lrt::MemRef<float, 3> *c) {
  batchGemm(ta != 0, tb != 0, accumulate != 0, a, b, c, /*route=*/true);
}

extern "C" void lrt_batch_matmul_f32_blas(int32_t ta, int32_t tb, int32_t accumulate,
                                          lrt::MemRef<float, 3> *a, lrt::MemRef<float, 3> *b,
                                          lrt::MemRef<float, 3> *c) {
  batchGemm(ta != 0, tb != 0, accumulate != 0, a, b, c, /*route=*/false);
}

extern "C" void lrt_matmul_f32_ref(int32_t ta, int32_t tb, int32_t accumulate,
                                   const lrt::MemRef<float, 2> *a,
                                   const lrt::MemRef<float, 2> *b, lrt::MemRef<float, 2> *c) {
  gemmRef(ta != 0, tb != 0, accumulate != 0, view2(a), view2(b), view2(c));
}
