// SPDX-License-Identifier: Apache-2.0
/// The BLAS-backed GEMM kernels against their plain-loop reference, for every transpose
/// combination, strided (sub-matrix and column-major) operands and the batched form, on one
/// thread and split over several OpenMP threads; the overwrite mode (accumulate = 0, beta 0)
/// against a product computed in double precision here, with C full of NaN beforehand.
/// Tolerance: atol + |ref| * eps(f32) * K, with atol = 1e-5. The shapes with a dimension
/// of at most 64 run on oneDNN (kernels/cpu/MatmulF32Dnnl.h), the rest on OpenBLAS: both
/// within the same fp32-reassociation bound of the double-precision product.
#include "kernels/cpu/Matmul.h"
#include "kernels/cpu/MatmulF32Dnnl.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <omp.h>
#include <random>
#include <string>
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

/// `n` values uniform in [-1, 1).
std::vector<float> uniform(int64_t n, std::mt19937 &rng) {
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float &x : v)
    x = uni(rng);
  return v;
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
        _mlir_ciface_lrt_matmul_f32(ta, tb, 1, &a.ref, &b.ref, &c1.ref);
        lrt_matmul_f32_ref(ta, tb, 1, &a.ref, &b.ref, &c2.ref);
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
          _mlir_ciface_lrt_matmul_f32(ta, tb, 1, &a.ref, &b.ref, &c1.ref);
          lrt_matmul_f32_ref(ta, tb, 1, &a.ref, &b.ref, &c2.ref);
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
  _mlir_ciface_lrt_matmul_f32(0, 0, 1, &a.ref, &b.ref, &c1.ref);
  lrt_matmul_f32_ref(0, 0, 1, &a.ref, &b.ref, &c2.ref);
  expectClose(c1.data, c2.data, 3);
}

TEST(Matmul, BatchedMatchesPerSliceReference) {
  std::mt19937 rng(9);
  const int64_t bt = 3, m = 4, n = 5, k = 6;
  omp_set_num_threads(2); // 3 slices over 2 threads: one thread takes two
  std::vector<float> a = uniform(bt * k * m, rng), b = uniform(bt * k * n, rng);
  std::vector<float> c(bt * m * n, 0.5f), want = c;
  // a is (bt, k, m) used transposed, b is (bt, k, n).
  auto av = lrt::viewOf(a.data(), {bt, k, m});
  auto bv = lrt::viewOf(b.data(), {bt, k, n});
  auto cv = lrt::viewOf(c.data(), {bt, m, n});
  _mlir_ciface_lrt_batch_matmul_f32(1, 0, 1, &av, &bv, &cv);
  for (int64_t i = 0; i < bt; ++i) {
    auto as = lrt::viewOf(a.data() + i * k * m, {k, m});
    auto bs = lrt::viewOf(b.data() + i * k * n, {k, n});
    auto cs = lrt::viewOf(want.data() + i * m * n, {m, n});
    lrt_matmul_f32_ref(1, 0, 1, &as, &bs, &cs);
  }
  expectClose(c, want, k);
}

/// op(A) op(B) in double precision with plain loops (the independent reference of the
/// overwrite tests: not the kernel's own gemmRef).
std::vector<float> product(const Mat &a, bool ta, const Mat &b, bool tb, int64_t m, int64_t n,
                           int64_t k) {
  auto at = [](const Mat &x, int64_t i, int64_t j) {
    return static_cast<double>(x.ref.aligned[x.ref.offset + i * x.ref.strides[0] +
                                             j * x.ref.strides[1]]);
  };
  std::vector<float> out(m * n);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t p = 0; p < k; ++p)
        s += (ta ? at(a, p, i) : at(a, i, p)) * (tb ? at(b, j, p) : at(b, p, j));
      out[i * n + j] = static_cast<float>(s);
    }
  return out;
}

TEST(Matmul, OverwriteIgnoresWhatCHeld) {
  // accumulate = 0: C = op(A) op(B) whatever C held (NaN here, which any read of C would
  // propagate), on one thread, split over two (301 x 70 x 65 >= 64^3), through the
  // plain-loop fallback (a column-major C is not a BLAS operand here) and through
  // lrt_matmul_f32_ref; K = 0 must give zeros.
  std::mt19937 rng(12);
  float nan = std::numeric_limits<float>::quiet_NaN();
  struct Case { int64_t m, n, k; int threads; bool colC; };
  for (Case s : {Case{5, 7, 9, 1, false}, Case{301, 70, 65, 2, false}, Case{6, 4, 3, 1, true},
                 Case{3, 4, 0, 1, false}})
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb)
        for (int ref = 0; ref < 2; ++ref) {
          SCOPED_TRACE(testing::Message() << "m=" << s.m << " k=" << s.k << " threads="
                                          << s.threads << " colC=" << s.colC << " ta=" << ta
                                          << " tb=" << tb << " ref=" << ref);
          omp_set_num_threads(s.threads);
          Mat a = ta ? make(s.k, s.m, false, 1, rng) : make(s.m, s.k, false, 1, rng);
          Mat b = tb ? make(s.n, s.k, false, 2, rng) : make(s.k, s.n, false, 0, rng);
          Mat c = make(s.m, s.n, s.colC, 0, rng);
          std::fill(c.data.begin(), c.data.end(), nan);
          if (ref)
            lrt_matmul_f32_ref(ta, tb, 0, &a.ref, &b.ref, &c.ref);
          else
            _mlir_ciface_lrt_matmul_f32(ta, tb, 0, &a.ref, &b.ref, &c.ref);
          std::vector<float> got(s.m * s.n);
          for (int64_t i = 0; i < s.m; ++i)
            for (int64_t j = 0; j < s.n; ++j)
              got[i * s.n + j] =
                  c.ref.aligned[c.ref.offset + i * c.ref.strides[0] + j * c.ref.strides[1]];
          expectClose(got, product(a, ta, b, tb, s.m, s.n, s.k), std::max<int64_t>(1, s.k));
        }
  omp_set_num_threads(1);
}

TEST(Matmul, AccumulateAddsToC) {
  // accumulate = 1 keeps C's contents: C0 + op(A) op(B), C0 a random matrix.
  std::mt19937 rng(13);
  const int64_t m = 4, n = 6, k = 5;
  Mat a = make(m, k, false, 0, rng), b = make(n, k, false, 0, rng);
  Mat c = make(m, n, false, 0, rng);
  std::vector<float> want = product(a, false, b, true, m, n, k);
  for (int64_t i = 0; i < m * n; ++i)
    want[i] += c.data[c.ref.offset + i];
  _mlir_ciface_lrt_matmul_f32(0, 1, 1, &a.ref, &b.ref, &c.ref);
  std::vector<float> got(c.data.begin() + c.ref.offset, c.data.begin() + c.ref.offset + m * n);
  expectClose(got, want, k);
}

TEST(Matmul, BatchedOverwrite) {
  // The batched kernel with accumulate = 0 over NaN-filled C, one slice per thread.
  std::mt19937 rng(14);
  const int64_t bt = 4, m = 3, n = 5, k = 7;
  omp_set_num_threads(2);
  std::vector<float> a = uniform(bt * m * k, rng), b = uniform(bt * k * n, rng);
  std::vector<float> c(bt * m * n, std::numeric_limits<float>::quiet_NaN());
  auto av = lrt::viewOf(a.data(), {bt, m, k});
  auto bv = lrt::viewOf(b.data(), {bt, k, n});
  auto cv = lrt::viewOf(c.data(), {bt, m, n});
  _mlir_ciface_lrt_batch_matmul_f32(0, 0, 0, &av, &bv, &cv);
  std::vector<float> want(bt * m * n);
  for (int64_t s = 0; s < bt; ++s)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double sum = 0;
        for (int64_t p = 0; p < k; ++p)
          sum += double(a[(s * m + i) * k + p]) * b[(s * k + p) * n + j];
        want[(s * m + i) * n + j] = static_cast<float>(sum);
      }
  expectClose(c, want, k);
  omp_set_num_threads(1);
}

TEST(Matmul, RoutesSmallDimensionsToDnnl) {
  // The rule of kernels/cpu/Matmul.h on the SmolLM2 LoRA step's shapes (bench/gemm_shapes):
  // LoRA's rank-16 products and attention's head-dim-64 products go to oneDNN; the base
  // layers' and the LM head's stay on OpenBLAS, except on AMD with AVX-512, where every
  // product with more than 4 rows and columns goes to oneDNN (matmulF32AllOnDnnl, read
  // here from /proc/cpuinfo independently).
  EXPECT_TRUE(lrt::matmulF32PrefersDnnl(1024, 16, 576));   // x A^T
  EXPECT_TRUE(lrt::matmulF32PrefersDnnl(16, 576, 1024));   // dA
  EXPECT_TRUE(lrt::matmulF32PrefersDnnl(768, 256, 64));    // attention scores
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string text((std::istreambuf_iterator<char>(cpuinfo)), std::istreambuf_iterator<char>());
  bool amdAvx512 = text.find("AuthenticAMD") != std::string::npos &&
                   text.find(" avx512f ") != std::string::npos &&
                   text.find(" avx512bw ") != std::string::npos;
  EXPECT_EQ(lrt::matmulF32AllOnDnnl(), amdAvx512);
  EXPECT_EQ(lrt::matmulF32PrefersDnnl(1024, 1536, 576), amdAvx512);  // gate / up
  EXPECT_EQ(lrt::matmulF32PrefersDnnl(1024, 192, 576), amdAvx512);   // k / v
  EXPECT_EQ(lrt::matmulF32PrefersDnnl(1024, 49152, 576), amdAvx512); // LM head
  // Decode at batch 1 (one row): oneDNN by the min-dimension rule, OpenBLAS on AMD.
  EXPECT_EQ(lrt::matmulF32PrefersDnnl(1, 512, 512), !amdAvx512);
  EXPECT_EQ(lrt::matmulF32PrefersDnnl(512, 4, 512), !amdAvx512);
  EXPECT_TRUE(lrt::matmulF32PrefersDnnl(16, 512, 512)); // decode at batch 16
}

TEST(Matmul, DnnlShapesMatchDoubleProduct) {
  // LoRA-shaped products (rank 16) through the routed kernel on two threads, every
  // transpose, a column-major B, overwrite over NaN and accumulate; against the product in
  // double precision; the same call twice gives the same bits (fixed split per thread count).
  std::mt19937 rng(15);
  float nan = std::numeric_limits<float>::quiet_NaN();
  omp_set_num_threads(2);
  struct Shape { int64_t m, n, k; };
  for (Shape s : {Shape{200, 16, 96}, Shape{16, 96, 200}, Shape{200, 96, 16}})
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb)
        for (int acc = 0; acc < 2; ++acc) {
          SCOPED_TRACE(testing::Message() << "m=" << s.m << " n=" << s.n << " k=" << s.k
                                          << " ta=" << ta << " tb=" << tb << " acc=" << acc);
          ASSERT_TRUE(lrt::matmulF32PrefersDnnl(s.m, s.n, s.k));
          Mat a = ta ? make(s.k, s.m, false, 1, rng) : make(s.m, s.k, false, 1, rng);
          Mat b = tb ? make(s.n, s.k, true, 2, rng) : make(s.k, s.n, false, 0, rng);
          Mat c = make(s.m, s.n, false, 0, rng);
          std::vector<float> want = product(a, ta, b, tb, s.m, s.n, s.k);
          if (acc)
            for (int64_t i = 0; i < s.m * s.n; ++i)
              want[i] += c.data[c.ref.offset + i];
          else
            std::fill(c.data.begin(), c.data.end(), nan);
          std::vector<float> before = c.data;
          _mlir_ciface_lrt_matmul_f32(ta, tb, acc, &a.ref, &b.ref, &c.ref);
          std::vector<float> got(c.data.begin() + c.ref.offset,
                                 c.data.begin() + c.ref.offset + s.m * s.n);
          expectClose(got, want, s.k);
          c.data = before; // the same call again: the same bits
          _mlir_ciface_lrt_matmul_f32(ta, tb, acc, &a.ref, &b.ref, &c.ref);
          EXPECT_EQ(std::memcmp(got.data(), c.data.data() + c.ref.offset, got.size() * 4), 0);
        }
  omp_set_num_threads(1);
}

TEST(Matmul, DnnlBatchedMatchesDoubleProduct) {
  // Attention-shaped batched products (head dim 64 <= the routing bound): scores
  // Q K^T (bt, m, 64) x (bt, n, 64)^T and dK = dS^T Q, against double precision.
  std::mt19937 rng(16);
  omp_set_num_threads(2);
  const int64_t bt = 3, m = 80, n = 48, d = 64;
  for (int ta = 0; ta < 2; ++ta) {
    SCOPED_TRACE(testing::Message() << "ta=" << ta);
    // ta = 0: A (bt, m, d), B^T with B stored (bt, n, d): C (bt, m, n).
    // ta = 1: A stored (bt, d, m) used transposed, B (bt, d, n): C (bt, m, n).
    std::vector<float> a = uniform(bt * m * d, rng), b = uniform(bt * n * d, rng);
    std::vector<float> c(bt * m * n, 0.25f), want(bt * m * n);
    auto av = ta ? lrt::viewOf(a.data(), {bt, d, m}) : lrt::viewOf(a.data(), {bt, m, d});
    auto bv = ta ? lrt::viewOf(b.data(), {bt, d, n}) : lrt::viewOf(b.data(), {bt, n, d});
    auto cv = lrt::viewOf(c.data(), {bt, m, n});
    _mlir_ciface_lrt_batch_matmul_f32(ta, !ta, 1, &av, &bv, &cv);
    for (int64_t s = 0; s < bt; ++s)
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
          double sum = 0.25;
          for (int64_t p = 0; p < d; ++p)
            sum += ta ? double(a[(s * d + p) * m + i]) * b[(s * d + p) * n + j]
                      : double(a[(s * m + i) * d + p]) * b[(s * n + j) * d + p];
          want[(s * m + i) * n + j] = static_cast<float>(sum);
        }
    expectClose(c, want, d);
  }
  omp_set_num_threads(1);
}

} // namespace
