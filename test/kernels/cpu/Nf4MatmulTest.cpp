// SPDX-License-Identifier: Apache-2.0
/// The NF4 blob layout (kernels/cpu/Quant.h) and the fused NF4 matmul (kernels/cpu/
/// Nf4Matmul.h) against dequantizeNf4 + a plain double-precision product.
///
/// Tolerance: the kernel's panels are dequantized bitwise as dequantizeNf4 does, so the only
/// difference to the exact product of the dequantized weights is fp32 accumulation over K
/// terms, bounded by K * 2^-24 * sum_k |x_k w_k| (Higham, "Accuracy and Stability of
/// Numerical Algorithms", eq. 3.5, with FMAs or not); the test allows 2 K * 2^-24 * that sum.
#include "kernels/cpu/Nf4Matmul.h"
#include "kernels/cpu/Quant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <omp.h>
#include <random>
#include <vector>

namespace q = lrt::quant;

namespace {

std::vector<float> randomVec(int64_t n, std::mt19937 &rng, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (float &x : v)
    x = d(rng);
  return v;
}

/// A random weight (rows, cols) quantized to a blob, with its dequantized values.
struct Weight {
  int64_t rows, cols, block;
  bool dq;
  std::vector<uint8_t> blob;
  std::vector<float> deq;
};

Weight makeWeight(int64_t rows, int64_t cols, int64_t block, bool dq, std::mt19937 &rng) {
  Weight w{rows, cols, block, dq, {}, {}};
  std::vector<float> v = randomVec(rows * cols, rng, 0.05f);
  auto t = q::quantizeNf4(v.data(), rows * cols, {block, dq, 256});
  EXPECT_TRUE(t.isOk());
  q::Nf4Layout l = q::nf4Layout(rows * cols, block, dq);
  w.blob.resize(static_cast<size_t>(l.byteSize));
  EXPECT_TRUE(q::writeNf4Blob(*t, w.blob.data()).isOk());
  w.deq.resize(static_cast<size_t>(rows * cols));
  EXPECT_TRUE(q::dequantizeNf4(*t, w.deq.data()).isOk());
  return w;
}

/// Runs the kernel (C starts at `c0`, accumulated into) and compares with the reference.
/// `xColMajor` passes X as a column-major view (unit stride in its first dimension).
void check(const Weight &w, int64_t m, bool tb, bool xColMajor, std::mt19937 &rng) {
  SCOPED_TRACE(testing::Message() << "m=" << m << " rows=" << w.rows << " cols=" << w.cols
                                  << " block=" << w.block << " dq=" << w.dq << " tb=" << tb
                                  << " xColMajor=" << xColMajor);
  int64_t k = tb ? w.cols : w.rows, n = tb ? w.rows : w.cols;
  std::vector<float> x = randomVec(m * k, rng), c = randomVec(m * n, rng), c0 = c;
  lrt::MemRef<float, 2> xv = lrt::viewOf(x.data(), {m, k});
  if (xColMajor) { // the same logical matrix, stored column-major
    std::vector<float> cm(x.size());
    for (int64_t i = 0; i < m; ++i)
      for (int64_t p = 0; p < k; ++p)
        cm[p * m + i] = x[i * k + p];
    x = cm;
    xv = lrt::MemRef<float, 2>{x.data(), x.data(), 0, {m, k}, {1, m}};
  }
  auto xAt = [&](int64_t i, int64_t p) { return x[xv.offset + i * xv.strides[0] + p * xv.strides[1]]; };
  auto cv = lrt::viewOf(c.data(), {m, n});
  std::vector<int8_t> blob(w.blob.begin(), w.blob.end());
  auto wv = lrt::viewOf(blob.data(), {static_cast<int64_t>(blob.size())});
  _mlir_ciface_lrt_matmul_nf4_f32(tb, w.rows, w.cols, w.block, w.dq, &xv, &wv, &cv);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double ref = c0[i * n + j], mag = std::fabs(ref);
      for (int64_t p = 0; p < k; ++p) {
        double wv2 = tb ? w.deq[j * w.cols + p] : w.deq[p * w.cols + j];
        ref += static_cast<double>(xAt(i, p)) * wv2;
        mag += std::fabs(static_cast<double>(xAt(i, p)) * wv2);
      }
      double bound = 2.0 * static_cast<double>(k + 1) * std::ldexp(1.0, -24) * mag + 1e-30;
      ASSERT_NEAR(c[i * n + j], ref, bound) << "C[" << i << ", " << j << "]";
    }
}

} // namespace

// Byte counts by hand: 576 x 576 = 331776 weights at block 64: 165888 code bytes, 5184
// absmax codes, ceil(5184 / 256) = 21 scales (84 bytes, at 171072, already 4-aligned), one
// offset: 171160 bytes = 4.127 bits per weight (4 + 8/64 + 32/(64*256) + 32/n).
TEST(Nf4MatmulTest, LayoutByteCounts) {
  q::Nf4Layout l = q::nf4Layout(576 * 576, 64, true);
  EXPECT_EQ(l.codesBytes, 165888);
  EXPECT_EQ(l.numBlocks, 5184);
  EXPECT_EQ(l.absmaxAt, 165888);
  EXPECT_EQ(l.numScales, 21);
  EXPECT_EQ(l.scalesAt, 171072);
  EXPECT_EQ(l.offsetAt, 171156);
  EXPECT_EQ(l.byteSize, 171160);
  EXPECT_NEAR(8.0 * l.byteSize / (576.0 * 576.0), 4.127, 5e-4);
  // 5 weights at block 2: 3 code bytes, 3 absmax codes -> scales at align4(6) = 8.
  q::Nf4Layout s = q::nf4Layout(5, 2, true);
  EXPECT_EQ(s.scalesAt, 8);
  EXPECT_EQ(s.byteSize, 16);
  // Without double quantization: fp32 absmax at align4(3) = 4, 3 of them.
  q::Nf4Layout f = q::nf4Layout(5, 2, false);
  EXPECT_EQ(f.absmaxAt, 4);
  EXPECT_EQ(f.byteSize, 16);
}

// writeNf4Blob / readNf4Blob round-trip every field, and dequantizeNf4Range is bitwise
// dequantizeNf4 on any range (odd starts and ends, ranges across blocks).
TEST(Nf4MatmulTest, BlobRoundTripAndRanges) {
  std::mt19937 rng(7);
  for (bool dq : {true, false})
    for (int64_t block : {64, 7, 1}) {
      int64_t n = 1001;
      std::vector<float> v = randomVec(n, rng);
      auto t = q::quantizeNf4(v.data(), n, {block, dq, 256});
      ASSERT_TRUE(t.isOk());
      q::Nf4Layout l = q::nf4Layout(n, block, dq);
      std::vector<uint8_t> blob(static_cast<size_t>(l.byteSize));
      ASSERT_TRUE(q::writeNf4Blob(*t, blob.data()).isOk());
      q::Nf4Tensor r = q::readNf4Blob(blob.data(), l);
      EXPECT_EQ(r.packed, t->packed);
      EXPECT_EQ(r.absmaxCodes, t->absmaxCodes);
      EXPECT_EQ(r.absmaxScales, t->absmaxScales);
      EXPECT_EQ(r.absmax, t->absmax);
      EXPECT_EQ(r.absmaxOffset, t->absmaxOffset);
      std::vector<float> all(static_cast<size_t>(n));
      ASSERT_TRUE(q::dequantizeNf4(*t, all.data()).isOk());
      std::uniform_int_distribution<int64_t> pos(0, n);
      for (int trial = 0; trial < 50; ++trial) {
        int64_t a = pos(rng), b = pos(rng);
        if (a > b)
          std::swap(a, b);
        std::vector<float> part(static_cast<size_t>(b - a));
        q::dequantizeNf4Range(blob.data(), l, a, b, part.data());
        for (int64_t i = a; i < b; ++i)
          ASSERT_EQ(part[i - a], all[i]) << "block=" << block << " dq=" << dq << " i=" << i;
      }
    }
}

// Odd shapes, blocks of 64 and others, with and without double quantization, both
// products, one thread and two (the parallel split: m * n * k >= 64^3).
TEST(Nf4MatmulTest, MatchesDequantizedProduct) {
  std::mt19937 rng(11);
  struct Shape { int64_t m, rows, cols, block; bool dq; };
  for (Shape s : {Shape{1, 1, 1, 64, true}, Shape{3, 5, 7, 64, true}, Shape{17, 65, 33, 64, true},
                  Shape{5, 33, 19, 7, true}, Shape{4, 40, 30, 128, false}, Shape{9, 31, 3, 1, true},
                  Shape{64, 200, 130, 64, true}, Shape{70, 130, 333, 32, false},
                  Shape{33, 600, 47, 64, true}})
    for (int threads : {1, 2}) {
      omp_set_num_threads(threads);
      Weight w = makeWeight(s.rows, s.cols, s.block, s.dq, rng);
      for (bool tb : {false, true})
        for (bool colMajor : {false, true})
          check(w, s.m, tb, colMajor, rng);
    }
}

// The split depends only on the thread count: two runs give identical bits.
TEST(Nf4MatmulTest, Deterministic) {
  std::mt19937 rng(3);
  omp_set_num_threads(2);
  Weight w = makeWeight(96, 80, 64, true, rng);
  std::vector<float> x = randomVec(50 * 96, rng);
  std::vector<int8_t> blob(w.blob.begin(), w.blob.end());
  auto run = [&] {
    std::vector<float> c(50 * 80, 0.0f);
    auto xv = lrt::viewOf(x.data(), {50, 96});
    auto cv = lrt::viewOf(c.data(), {50, 80});
    auto wv = lrt::viewOf(blob.data(), {static_cast<int64_t>(blob.size())});
    _mlir_ciface_lrt_matmul_nf4_f32(0, 96, 80, 64, 1, &xv, &wv, &cv);
    return c;
  };
  EXPECT_EQ(run(), run());
}
