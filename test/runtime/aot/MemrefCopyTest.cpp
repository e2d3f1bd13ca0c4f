// SPDX-License-Identifier: Apache-2.0
/// memrefCopy (runtime/aot/MemrefCopy.h), the copy between strided views that trainer
/// binaries define in place of MLIR's: every expected value below is the source element at
/// the same index, written out by hand from the views' offsets and strides.
#include "runtime/aot/MemrefCopy.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace {

/// MLIR's ranked descriptor of rank R over T (MemrefCopy.h).
template <typename T, int R>
struct Descriptor {
  T *allocated;
  T *aligned;
  int64_t offset;
  int64_t sizes[R];
  int64_t strides[R];
};

template <typename T, int R>
LrtUnrankedMemRef unranked(Descriptor<T, R> &d) {
  return {R, &d};
}

// Tests a transposing copy: the 4 x 3 view with strides {1, 4} of a row-major 3 x 4 array
// (element (i, j) is source[j][i] = 4 j + i) into a contiguous 4 x 3 array.
TEST(MemrefCopyTest, TransposedView) {
  std::vector<float> source(12), out(12, -1.0f);
  for (int i = 0; i < 12; ++i)
    source[i] = float(i);
  Descriptor<float, 2> src{source.data(), source.data(), 0, {4, 3}, {1, 4}};
  Descriptor<float, 2> dst{out.data(), out.data(), 0, {4, 3}, {3, 1}};
  LrtUnrankedMemRef s = unranked(src), d = unranked(dst);
  memrefCopy(sizeof(float), &s, &d);
  EXPECT_EQ(out, (std::vector<float>{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}));
}

// Tests offsets on both sides and contiguous rows: the 2 x 2 block at row 1, column 1 of a
// 4 x 4 array holding 0..15 (offset 5, strides {4, 1}: 5, 6, 9, 10) into the last two
// columns of a 2 x 3 array (offset 1, strides {3, 1}).
TEST(MemrefCopyTest, OffsetsAndContiguousRows) {
  std::vector<int32_t> source(16), out(6, -1);
  for (int i = 0; i < 16; ++i)
    source[i] = i;
  Descriptor<int32_t, 2> src{source.data(), source.data(), 5, {2, 2}, {4, 1}};
  Descriptor<int32_t, 2> dst{out.data(), out.data(), 1, {2, 2}, {3, 1}};
  LrtUnrankedMemRef s = unranked(src), d = unranked(dst);
  memrefCopy(sizeof(int32_t), &s, &d);
  EXPECT_EQ(out, (std::vector<int32_t>{-1, 5, 6, -1, 9, 10}));
}

// Tests a rank-3 copy of 2-byte elements with every stride other than 1: the 2 x 2 x 2
// view of 0..15 with offset 1 and strides {8, 2, 4} (element (a, b, c) is 1 + 8a + 2b + 4c)
// into a contiguous 2 x 2 x 2 array.
TEST(MemrefCopyTest, Rank3Strided) {
  std::vector<int16_t> source(16), out(8, -1);
  for (int i = 0; i < 16; ++i)
    source[i] = int16_t(i);
  Descriptor<int16_t, 3> src{source.data(), source.data(), 1, {2, 2, 2}, {8, 2, 4}};
  Descriptor<int16_t, 3> dst{out.data(), out.data(), 0, {2, 2, 2}, {4, 2, 1}};
  LrtUnrankedMemRef s = unranked(src), d = unranked(dst);
  memrefCopy(sizeof(int16_t), &s, &d);
  EXPECT_EQ(out, (std::vector<int16_t>{1, 5, 3, 7, 9, 13, 11, 15}));
}

// Tests rank 0 (one element, at the offsets) and an empty view (nothing written).
TEST(MemrefCopyTest, ScalarAndEmpty) {
  std::vector<double> source{1.5, 2.5}, out{0.0, 0.0};
  struct Scalar {
    double *allocated, *aligned;
    int64_t offset;
  } src{source.data(), source.data(), 1}, dst{out.data(), out.data(), 0};
  LrtUnrankedMemRef s{0, &src}, d{0, &dst};
  memrefCopy(sizeof(double), &s, &d);
  EXPECT_EQ(out, (std::vector<double>{2.5, 0.0}));

  Descriptor<double, 2> empty{source.data(), source.data(), 0, {2, 0}, {1, 1}};
  Descriptor<double, 2> target{out.data(), out.data(), 0, {2, 0}, {1, 1}};
  LrtUnrankedMemRef e = unranked(empty), t = unranked(target);
  memrefCopy(sizeof(double), &e, &t);
  EXPECT_EQ(out, (std::vector<double>{2.5, 0.0}));
}

} // namespace
