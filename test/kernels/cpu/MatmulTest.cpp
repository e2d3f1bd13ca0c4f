// SPDX-License-Identifier: Apache-2.0
/// The BLAS-backed GEMM kernels against their plain-loop reference, for every transpose
/// combination, strided (sub-matrix and column-major) operands and the batched form, on one
/// thread and split over several OpenMP threads.
/// Tolerance: atol + |ref| * eps(f32) * K, with atol = 1e-5.
#include "kernels/cpu/Matmul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <omp.h>
#include <random>
#include <vector>

namespace {

/// A matrix of `rows` x `cols` stored in `data` with the given strides.
struct Mat {
  std::vector<float> data;
  lrt::MemRef<float, 2> ref;
};

Mat make(int64_t rows, int64_t cols, bool colMajor, int64_t pad, std::mt19937 &rng) {
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  int64_t ld = (colMajor ? rows : cols) + pad;
  Mat m;
  m.data.resize((colMajor ? cols : rows) * ld + 3);
  for (float &x : m.data)
    x = uni(rng);
  int64_t s0 = colMajor ? 1 : ld, s1 = colMajor ? ld : 1;
  m.ref = {m.data.data(), m.data.data(), 3, {rows, cols}, {s0, s1}};
  return m;
}

void expectClose(const std::vector<float> &got, const std::vector<float> &want, int64_t k) {
  ASSERT_EQ(got.size(), want.size());
  float eps = std::numeric_limits<float>::epsilon();
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], 1e-5f + std::fabs(want[i]) * eps * k) << "at " << i;
}

TEST(Matmul, MatchesReferenceForAllLayouts) {
  std::mt19937 rng(7);
  const int64_t m = 5, n = 7, k = 9;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb)
      for (int layout = 0; layout < 4; ++layout) {
        SCOPED_TRACE(testing::Message() << "ta=" << ta << " tb=" << tb << " layout=" << layout);
        bool colA = layout & 1, colB = layout & 2;
        Mat a = ta ? make(k, m, colA, 2, rng) : make(m, k, colA, 2, rng);
        Mat b = tb ? make(n, k, colB, 1, rng) : make(k, n, colB, 1, rng);
        Mat c1 = make(m, n, false, 3, rng), c2 = c1;
        c2.ref.allocated = c2.ref.aligned = c2.data.data();
        _mlir_ciface_lrt_matmul_f32(ta, tb, &a.ref, &b.ref, &c1.ref);
        lrt_matmul_f32_ref(ta, tb, &a.ref, &b.ref, &c2.ref);
        expectClose(c1.data, c2.data, k);
      }
}

TEST(Matmul, SplitOverThreadsMatchesReference) {
  // Large enough to be split (m n k >= 64^3), with sizes that are not multiples of the
  // 16-row blocks or of the thread count; tall (split by rows) and wide (split by columns).
  std::mt19937 rng(11);
  struct Shape { int64_t m, n, k; };
  for (int threads : {2, 3})
    for (Shape s : {Shape{301, 70, 65}, Shape{45, 333, 97}})
      for (int ta = 0; ta < 2; ++ta)
        for (int tb = 0; tb < 2; ++tb) {
          SCOPED_TRACE(testing::Message() << "threads=" << threads << " m=" << s.m << " n=" << s.n
                                          << " ta=" << ta << " tb=" << tb);
          omp_set_num_threads(threads);
          Mat a = ta ? make(s.k, s.m, false, 1, rng) : make(s.m, s.k, false, 1, rng);
          Mat b = tb ? make(s.n, s.k, true, 2, rng) : make(s.k, s.n, false, 0, rng);
          Mat c1 = make(s.m, s.n, false, 3, rng), c2 = c1;
          c2.ref.allocated = c2.ref.aligned = c2.data.data();
          _mlir_ciface_lrt_matmul_f32(ta, tb, &a.ref, &b.ref, &c1.ref);
          lrt_matmul_f32_ref(ta, tb, &a.ref, &b.ref, &c2.ref);
          expectClose(c1.data, c2.data, s.k);
        }
  omp_set_num_threads(1);
}

TEST(Matmul, FallsBackForNonUnitStrides) {
  std::mt19937 rng(8);
  Mat a = make(4, 6, false, 0, rng), b = make(3, 5, false, 0, rng);
  // Every other column of a: (4, 3) with strides (6, 2).
  a.ref.sizes[1] = 3;
  a.ref.strides[1] = 2;
  Mat c1 = make(4, 5, false, 0, rng), c2 = c1;
  c2.ref.allocated = c2.ref.aligned = c2.data.data();
  _mlir_ciface_lrt_matmul_f32(0, 0, &a.ref, &b.ref, &c1.ref);
  lrt_matmul_f32_ref(0, 0, &a.ref, &b.ref, &c2.ref);
  expectClose(c1.data, c2.data, 3);
}

TEST(Matmul, BatchedMatchesPerSliceReference) {
  std::mt19937 rng(9);
  const int64_t bt = 3, m = 4, n = 5, k = 6;
  omp_set_num_threads(2); // 3 slices over 2 threads: one thread takes two
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  std::vector<float> a(bt * k * m), b(bt * k * n), c(bt * m * n, 0.5f), want = c;
  for (float &x : a)
    x = uni(rng);
  for (float &x : b)
    x = uni(rng);
  // a is (bt, k, m) used transposed, b is (bt, k, n).
  auto av = lrt::viewOf(a.data(), {bt, k, m});
  auto bv = lrt::viewOf(b.data(), {bt, k, n});
  auto cv = lrt::viewOf(c.data(), {bt, m, n});
  _mlir_ciface_lrt_batch_matmul_f32(1, 0, &av, &bv, &cv);
  for (int64_t i = 0; i < bt; ++i) {
    auto as = lrt::viewOf(a.data() + i * k * m, {k, m});
    auto bs = lrt::viewOf(b.data() + i * k * n, {k, n});
    auto cs = lrt::viewOf(want.data() + i * m * n, {m, n});
    lrt_matmul_f32_ref(1, 0, &as, &bs, &cs);
  }
  expectClose(c, want, k);
}

} // namespace
