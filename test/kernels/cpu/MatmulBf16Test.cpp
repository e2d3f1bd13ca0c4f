// SPDX-License-Identifier: Apache-2.0
/// `_mlir_ciface_lrt_matmul_bf16` against references computed here in double precision:
/// exact on bf16-representable operands, and on random ones equal to the product of the
/// operands rounded to bf16 (round to nearest even, as the definition of the format: the
/// upper 16 bits of the fp32 pattern after adding 0x7FFF plus the lowest kept bit).
#include "kernels/cpu/Matmul.h"
#include "kernels/cpu/MatmulBf16.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

namespace {

using lrt::MemRef;

float roundToBf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  u = (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
  float r;
  std::memcpy(&r, &u, 4);
  return r;
}

/// A row-major (rows, cols) matrix; `ref` views it (transposed storage when `t`).
struct Mat {
  int64_t rows, cols;
  std::vector<float> v;
  MemRef<float, 2> ref;
  Mat(int64_t r, int64_t c) : rows(r), cols(c), v(r * c), ref(lrt::viewOf(v.data(), {r, c})) {}
  float at(int64_t i, int64_t j, bool t) const { return t ? v[j * cols + i] : v[i * cols + j]; }
};

/// C = op(A) op(B) + beta C0 in double, with each operand passed through `round`; also
/// sum |a||b| per entry (the scale of fp32 accumulation error).
template <typename F>
void reference(bool ta, bool tb, const Mat &a, const Mat &b, const Mat &c0, bool accumulate,
               F round, std::vector<double> &out, std::vector<double> &scale) {
  int64_t m = c0.rows, n = c0.cols, k = ta ? a.rows : a.cols;
  out.assign(m * n, 0.0);
  scale.assign(m * n, 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = accumulate ? c0.v[i * n + j] : 0.0, s = 0.0;
      for (int64_t p = 0; p < k; ++p) {
        double x = round(a.at(i, p, ta)), y = round(b.at(p, j, tb));
        acc += x * y;
        s += std::fabs(x * y);
      }
      out[i * n + j] = acc;
      scale[i * n + j] = s;
    }
}

/// Operands for op(A) (m, k) and op(B) (k, n) stored transposed when the flags say so.
struct Problem {
  Mat a, b, c;
  Problem(bool ta, bool tb, int64_t m, int64_t n, int64_t k)
      : a(ta ? k : m, ta ? m : k), b(tb ? n : k, tb ? k : n), c(m, n) {}
};

TEST(MatmulBf16, Bf16ValuesMultiplyExactlyInEveryLayout) {
  // Multiples of 1/8 in [-4, 4] have at most 6 significant bits: exact in bf16, and every
  // partial sum (|sum| < 16 * 96 * 128, multiples of 1/64) is exact in fp32.
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> q(-32, 32);
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb)
      for (int acc = 0; acc < 2; ++acc) {
        Problem p(ta, tb, 128, 80, 96);
        for (float &x : p.a.v) x = q(rng) / 8.0f;
        for (float &x : p.b.v) x = q(rng) / 8.0f;
        // Without accumulation C's old contents must not matter: NaN everywhere.
        for (float &x : p.c.v) x = acc ? q(rng) / 8.0f : std::nanf("");
        Mat c0 = p.c;
        std::vector<double> want, scale;
        reference(ta, tb, p.a, p.b, c0, acc, [](float x) { return x; }, want, scale);
        _mlir_ciface_lrt_matmul_bf16(ta, tb, acc, &p.a.ref, &p.b.ref, &p.c.ref);
        for (size_t i = 0; i < want.size(); ++i)
          ASSERT_EQ(p.c.v[i], static_cast<float>(want[i]))
              << "ta " << ta << " tb " << tb << " accumulate " << acc << " at " << i;
      }
}

TEST(MatmulBf16, ProductOfBf16RoundedOperands) {
  std::mt19937 rng(11);
  std::normal_distribution<float> g(0.0f, 1.0f);
  Problem p(false, true, 192, 160, 256);
  for (float &x : p.a.v) x = g(rng);
  for (float &x : p.b.v) x = g(rng);
  std::vector<double> bf16, fp32, scale;
  reference(false, true, p.a, p.b, p.c, false, roundToBf16, bf16, scale);
  reference(false, true, p.a, p.b, p.c, false, [](float x) { return x; }, fp32, scale);
  _mlir_ciface_lrt_matmul_bf16(0, 1, 0, &p.a.ref, &p.b.ref, &p.c.ref);
  // fp32 accumulation of k = 256 terms: relative error at most about k * 2^-24 of sum |ab|.
  double worstBf16 = 0, worstFp32 = 0;
  for (size_t i = 0; i < bf16.size(); ++i) {
    worstBf16 = std::max(worstBf16, std::fabs(p.c.v[i] - bf16[i]) / scale[i]);
    worstFp32 = std::max(worstFp32, std::fabs(p.c.v[i] - fp32[i]) / scale[i]);
  }
  if (lrt_matmul_bf16_native()) {
    EXPECT_LT(worstBf16, 256 * std::ldexp(1.0, -24));
    // Rounding the operands moves single products by up to 2^-8 relative (about 1e-3 of
    // sum |ab| at worst here, measured 9.8e-4): over ten times the accumulation bound, so
    // this tells a bf16 product from an fp32 one.
    EXPECT_GT(worstFp32, 2e-4);
  } else { // the fp32 kernel: close to the fp32 product instead
    EXPECT_LT(worstFp32, 256 * std::ldexp(1.0, -24));
  }
}

TEST(MatmulBf16, NarrowProductsAreTheFp32KernelsBitwise) {
  // Rank-16 adapter shapes: op(A) (256, 16) x (16, 192), and (256, 192) x (192, 16).
  std::mt19937 rng(3);
  std::normal_distribution<float> g(0.0f, 1.0f);
  for (auto [m, n, k] : {std::tuple<int64_t, int64_t, int64_t>{256, 192, 16}, {256, 16, 192}}) {
    Problem p(false, false, m, n, k), q(false, false, m, n, k);
    for (float &x : p.a.v) x = g(rng);
    for (float &x : p.b.v) x = g(rng);
    q.a.v = p.a.v;
    q.b.v = p.b.v;
    _mlir_ciface_lrt_matmul_bf16(0, 0, 0, &p.a.ref, &p.b.ref, &p.c.ref);
    _mlir_ciface_lrt_matmul_f32(0, 0, 0, &q.a.ref, &q.b.ref, &q.c.ref);
    ASSERT_EQ(0, std::memcmp(p.c.v.data(), q.c.v.data(), p.c.v.size() * 4)) << m << "x" << n << "x" << k;
  }
}

/// B's bf16 bits (lrt::toBf16) in B's storage order, viewed as a (rows, cols) memref.
struct Bits {
  std::vector<uint16_t> v;
  MemRef<uint16_t, 2> ref;
  explicit Bits(const Mat &b) : v(b.v.size()) {
    for (size_t i = 0; i < v.size(); ++i)
      v[i] = lrt::toBf16(b.v[i]);
    ref = lrt::viewOf(v.data(), {b.rows, b.cols});
  }
};

TEST(MatmulBf16, ToBf16RoundsToNearestEvenAndWidensExactly) {
  // Hand-computed: 1 + 2^-8 is a tie between 1 and 1 + 2^-7 -> 1 (even); 1 + 3 * 2^-8 ties
  // between 1 + 2^-7 and 1 + 2^-6 -> 1 + 2^-6 (even); 1 + 2^-8 + 2^-20 rounds up.
  EXPECT_EQ(lrt::fromBf16(lrt::toBf16(1.0f + std::ldexp(1.0f, -8))), 1.0f);
  EXPECT_EQ(lrt::fromBf16(lrt::toBf16(1.0f + 3 * std::ldexp(1.0f, -8))), 1.0f + std::ldexp(1.0f, -6));
  EXPECT_EQ(lrt::fromBf16(lrt::toBf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20))),
            1.0f + std::ldexp(1.0f, -7));
  EXPECT_EQ(lrt::toBf16(-2.0f), 0xC000); // sign 1, exponent 128, mantissa 0
  EXPECT_TRUE(std::isnan(lrt::fromBf16(lrt::toBf16(std::nanf("")))));
  std::mt19937 rng(13);
  std::normal_distribution<float> g(0.0f, 1.0f);
  for (int i = 0; i < 1000; ++i) {
    float x = g(rng);
    ASSERT_EQ(lrt::fromBf16(lrt::toBf16(x)), roundToBf16(x)) << x;
  }
}

TEST(MatmulBf16, StoredBf16BMultipliesExactlyInEveryLayout) {
  // As Bf16ValuesMultiplyExactlyInEveryLayout, with B passed as its bf16 bits
  // (_mlir_ciface_lrt_matmul_bf16_b): exact on every CPU (the fallback widens exactly).
  std::mt19937 rng(17);
  std::uniform_int_distribution<int> q(-32, 32);
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb)
      for (int acc = 0; acc < 2; ++acc) {
        Problem p(ta, tb, 128, 80, 96);
        for (float &x : p.a.v) x = q(rng) / 8.0f;
        for (float &x : p.b.v) x = q(rng) / 8.0f;
        for (float &x : p.c.v) x = acc ? q(rng) / 8.0f : std::nanf("");
        Mat c0 = p.c;
        Bits b16(p.b);
        std::vector<double> want, scale;
        reference(ta, tb, p.a, p.b, c0, acc, [](float x) { return x; }, want, scale);
        _mlir_ciface_lrt_matmul_bf16_b(ta, tb, acc, &p.a.ref, &b16.ref, &p.c.ref);
        for (size_t i = 0; i < want.size(); ++i)
          ASSERT_EQ(p.c.v[i], static_cast<float>(want[i]))
              << "ta " << ta << " tb " << tb << " accumulate " << acc << " at " << i;
      }
}

TEST(MatmulBf16, StoredBf16BIsTheBf16ProductBitwise) {
  // Rounding B once at load or on every call gives the same bf16 operand, so the product
  // equals _mlir_ciface_lrt_matmul_bf16's with the fp32 B, bit for bit (both run oneDNN's
  // bf16 matmul on the same operands; on a CPU without bf16, both are fp32 products, of B
  // widened from bf16 against the fp32 B, so they differ there).
  std::mt19937 rng(19);
  std::normal_distribution<float> g(0.0f, 1.0f);
  for (int tb = 0; tb < 2; ++tb) {
    Problem p(false, tb, 192, 160, 256), q(false, tb, 192, 160, 256);
    for (float &x : p.a.v) x = g(rng);
    for (float &x : p.b.v) x = g(rng);
    q.a.v = p.a.v;
    q.b.v = p.b.v;
    Bits b16(p.b);
    _mlir_ciface_lrt_matmul_bf16_b(0, tb, 0, &p.a.ref, &b16.ref, &p.c.ref);
    if (lrt_matmul_bf16_native()) {
      _mlir_ciface_lrt_matmul_bf16(0, tb, 0, &q.a.ref, &q.b.ref, &q.c.ref);
    } else {
      for (float &x : q.b.v) x = roundToBf16(x);
      _mlir_ciface_lrt_matmul_f32(0, tb, 0, &q.a.ref, &q.b.ref, &q.c.ref);
    }
    ASSERT_EQ(0, std::memcmp(p.c.v.data(), q.c.v.data(), p.c.v.size() * 4)) << "tb " << tb;
  }
}

TEST(MatmulBf16, NarrowStoredBf16BIsTheFp32KernelOnTheWidenedB) {
  // Products with a dimension < 64 widen the stored B exactly and run the fp32 kernel:
  // bitwise the fp32 product with the bf16-rounded B, for both B layouts.
  std::mt19937 rng(23);
  std::normal_distribution<float> g(0.0f, 1.0f);
  for (auto [m, n, k] : {std::tuple<int64_t, int64_t, int64_t>{256, 192, 16}, {256, 16, 192}})
    for (int tb = 0; tb < 2; ++tb) {
      Problem p(false, tb, m, n, k), q(false, tb, m, n, k);
      for (float &x : p.a.v) x = g(rng);
      for (float &x : p.b.v) x = g(rng);
      q.a.v = p.a.v;
      for (size_t i = 0; i < p.b.v.size(); ++i)
        q.b.v[i] = roundToBf16(p.b.v[i]);
      Bits b16(p.b);
      _mlir_ciface_lrt_matmul_bf16_b(0, tb, 0, &p.a.ref, &b16.ref, &p.c.ref);
      _mlir_ciface_lrt_matmul_f32(0, tb, 0, &q.a.ref, &q.b.ref, &q.c.ref);
      ASSERT_EQ(0, std::memcmp(p.c.v.data(), q.c.v.data(), p.c.v.size() * 4))
          << m << "x" << n << "x" << k << " tb " << tb;
    }
}

/// A batch of `batch` matrices op(X) (rows, cols), stored interleaved as (rows, batch, cols)
/// (or (cols, batch, rows) when transposed): batch stride `cols` (or `rows`), not the
/// matrix size, as attention's per-head views of a (B*T, H*d) buffer. `at` reads op(X).
struct Batch {
  int64_t batch, rows, cols; ///< of the stored matrices
  bool t;
  std::vector<float> v;
  MemRef<float, 3> ref;
  Batch(int64_t nb, int64_t r, int64_t c, bool t) // op(X) is (r, c)
      : batch(nb), rows(t ? c : r), cols(t ? r : c), t(t), v(nb * r * c) {
    ref = MemRef<float, 3>{v.data(), v.data(), 0, {batch, rows, cols},
                           {cols, batch * cols, 1}};
  }
  float at(int64_t b, int64_t i, int64_t j) const {
    int64_t r = t ? j : i, c = t ? i : j;
    return v[r * batch * cols + b * cols + c];
  }
};

/// op(A) (nb, m, k) and op(B) (nb, k, n) (stored transposed when `tb`) of N(0, 1) values.
struct NormalBatches {
  Batch a, b;
  NormalBatches(unsigned seed, int64_t nb, int64_t m, int64_t n, int64_t k, bool tb)
      : a(nb, m, k, false), b(nb, k, n, tb) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> g(0.0f, 1.0f);
    for (float &x : a.v) x = g(rng);
    for (float &x : b.v) x = g(rng);
  }
};

/// C (b, i, j) = sum_p round(op(A)) round(op(B)) (+ C0) in double, and sum |ab|.
template <typename F>
void batchReference(const Batch &a, const Batch &b, const std::vector<float> &c0, int64_t nb,
                    int64_t m, int64_t n, int64_t k, bool accumulate, F round,
                    std::vector<double> &out, std::vector<double> &scale) {
  out.assign(nb * m * n, 0.0);
  scale.assign(nb * m * n, 0.0);
  for (int64_t q = 0; q < nb; ++q)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        int64_t o = (q * m + i) * n + j;
        double acc = accumulate ? c0[o] : 0.0, s = 0.0;
        for (int64_t p = 0; p < k; ++p) {
          double x = round(a.at(q, i, p)), y = round(b.at(q, p, j));
          acc += x * y;
          s += std::fabs(x * y);
        }
        out[o] = acc;
        scale[o] = s;
      }
}

TEST(MatmulBf16, BatchedBf16ValuesMultiplyExactlyInEveryLayout) {
  // As Bf16ValuesMultiplyExactlyInEveryLayout: multiples of 1/8 in [-4, 4], exact in bf16
  // and in every fp32 partial sum; 3 matrices per batch with an interleaved batch stride.
  std::mt19937 rng(17);
  std::uniform_int_distribution<int> q(-32, 32);
  const int64_t nb = 3, m = 96, n = 64, k = 80;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb)
      for (int acc = 0; acc < 2; ++acc) {
        Batch a(nb, m, k, ta), b(nb, k, n, tb);
        for (float &x : a.v) x = q(rng) / 8.0f;
        for (float &x : b.v) x = q(rng) / 8.0f;
        std::vector<float> c(nb * m * n);
        for (float &x : c) x = acc ? q(rng) / 8.0f : std::nanf("");
        std::vector<float> c0 = c;
        MemRef<float, 3> cref = lrt::viewOf(c.data(), {nb, m, n});
        std::vector<double> want, scale;
        batchReference(a, b, c0, nb, m, n, k, acc, [](float x) { return x; }, want, scale);
        _mlir_ciface_lrt_batch_matmul_bf16(ta, tb, acc, &a.ref, &b.ref, &cref);
        for (size_t i = 0; i < want.size(); ++i)
          ASSERT_EQ(c[i], static_cast<float>(want[i]))
              << "ta " << ta << " tb " << tb << " accumulate " << acc << " at " << i;
      }
}

TEST(MatmulBf16, BatchedProductOfBf16RoundedOperands) {
  // Attention's scores shape in miniature: q (3, 128, 64) k^T, random normal values.
  const int64_t nb = 3, m = 128, n = 96, k = 64;
  NormalBatches p(19, nb, m, n, k, true);
  const Batch &a = p.a, &b = p.b;
  std::vector<float> c(nb * m * n);
  MemRef<float, 3> cref = lrt::viewOf(c.data(), {nb, m, n});
  std::vector<double> bf16, fp32, scale;
  batchReference(a, b, c, nb, m, n, k, false, roundToBf16, bf16, scale);
  batchReference(a, b, c, nb, m, n, k, false, [](float x) { return x; }, fp32, scale);
  _mlir_ciface_lrt_batch_matmul_bf16(0, 1, 0, &p.a.ref, &p.b.ref, &cref);
  double worstBf16 = 0, worstFp32 = 0;
  for (size_t i = 0; i < bf16.size(); ++i) {
    worstBf16 = std::max(worstBf16, std::fabs(c[i] - bf16[i]) / scale[i]);
    worstFp32 = std::max(worstFp32, std::fabs(c[i] - fp32[i]) / scale[i]);
  }
  if (lrt_matmul_bf16_native()) {
    // fp32 accumulation of k = 64 terms: within k * 2^-24 of sum |ab|; rounding the
    // operands moves products by up to 2^-8 relative: far above that bound.
    EXPECT_LT(worstBf16, 64 * std::ldexp(1.0, -24));
    EXPECT_GT(worstFp32, 2e-4);
  } else {
    EXPECT_LT(worstFp32, 64 * std::ldexp(1.0, -24));
  }
}

TEST(MatmulBf16, NarrowBatchedProductsAreTheFp32KernelsBitwise) {
  // K = 16 < 64: lrt::matmulBf16Shape says fp32, so the batched bf16 entry point must give
  // the fp32 kernel's bits.
  const int64_t nb = 4, m = 96, n = 80, k = 16;
  NormalBatches p(23, nb, m, n, k, false);
  std::vector<float> c1(nb * m * n), c2(nb * m * n);
  MemRef<float, 3> r1 = lrt::viewOf(c1.data(), {nb, m, n}), r2 = lrt::viewOf(c2.data(), {nb, m, n});
  _mlir_ciface_lrt_batch_matmul_bf16(0, 0, 0, &p.a.ref, &p.b.ref, &r1);
  _mlir_ciface_lrt_batch_matmul_f32(0, 0, 0, &p.a.ref, &p.b.ref, &r2);
  EXPECT_EQ(0, std::memcmp(c1.data(), c2.data(), c1.size() * sizeof(float)));
}

} // namespace
