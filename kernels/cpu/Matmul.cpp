// SPDX-License-Identifier: Apache-2.0
/// GEMM kernels over strided memrefs: cblas_sgemm (OpenBLAS) with a plain-loop fallback.
#include "kernels/cpu/Matmul.h"

#include <algorithm>
#include <cblas.h>

namespace {

/// A 2-D strided view: element (i, j) at data[i * s0 + j * s1].
struct View {
  float *data;
  int64_t rows, cols, s0, s1;
};

View view2(const lrt::MemRef<float, 2> *m) {
  return {m->aligned + m->offset, m->sizes[0], m->sizes[1], m->strides[0], m->strides[1]};
}

/// C (M,N) += op(A) op(B) with plain loops; any strides.
void gemmRef(bool ta, bool tb, const View &a, const View &b, const View &c) {
  int64_t m = c.rows, n = c.cols, k = ta ? a.rows : a.cols;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      float acc = 0.0f;
      for (int64_t p = 0; p < k; ++p) {
        float av = ta ? a.data[p * a.s0 + i * a.s1] : a.data[i * a.s0 + p * a.s1];
        float bv = tb ? b.data[j * b.s0 + p * b.s1] : b.data[p * b.s0 + j * b.s1];
        acc += av * bv;
      }
      c.data[i * c.s0 + j * c.s1] += acc;
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

void gemm(bool ta, bool tb, const View &a, const View &b, const View &c) {
  int64_t m = c.rows, n = c.cols, k = ta ? a.rows : a.cols;
  if (m == 0 || n == 0)
    return;
  CBLAS_TRANSPOSE tra, trb;
  int64_t lda, ldb;
  bool cRowMajor = c.s1 == 1 && c.s0 >= std::max<int64_t>(1, n);
  if (k == 0 || !cRowMajor || !asBlas(a, ta, tra, lda) || !asBlas(b, tb, trb, ldb)) {
    gemmRef(ta, tb, a, b, c);
    return;
  }
  cblas_sgemm(CblasRowMajor, tra, trb, m, n, k, 1.0f, a.data, lda, b.data, ldb, 1.0f, c.data,
              c.s0);
}

} // namespace

extern "C" void _mlir_ciface_lrt_matmul_f32(int32_t ta, int32_t tb, lrt::MemRef<float, 2> *a,
                                            lrt::MemRef<float, 2> *b,
                                            lrt::MemRef<float, 2> *c) {
  gemm(ta != 0, tb != 0, view2(a), view2(b), view2(c));
}

extern "C" void _mlir_ciface_lrt_batch_matmul_f32(int32_t ta, int32_t tb,
                                                  lrt::MemRef<float, 3> *a,
                                                  lrt::MemRef<float, 3> *b,
                                                  lrt::MemRef<float, 3> *c) {
  for (int64_t i = 0; i < c->sizes[0]; ++i) {
    auto slice = [i](lrt::MemRef<float, 3> *m) {
      return View{m->aligned + m->offset + i * m->strides[0], m->sizes[1], m->sizes[2],
                  m->strides[1], m->strides[2]};
    };
    gemm(ta != 0, tb != 0, slice(a), slice(b), slice(c));
  }
}

extern "C" void lrt_matmul_f32_ref(int32_t ta, int32_t tb, const lrt::MemRef<float, 2> *a,
                                   const lrt::MemRef<float, 2> *b, lrt::MemRef<float, 2> *c) {
  gemmRef(ta != 0, tb != 0, view2(a), view2(b), view2(c));
}
