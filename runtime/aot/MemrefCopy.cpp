// SPDX-License-Identifier: Apache-2.0
/// memrefCopy (MemrefCopy.h): one recursion level per dimension, the innermost run copied
/// at once when both views are contiguous along it.
#include "runtime/aot/MemrefCopy.h"

#include <cstring>

namespace {

/// A ranked descriptor's fields, read through its layout (MemrefCopy.h).
struct View {
  char *data = nullptr; ///< the aligned pointer advanced by the offset, in bytes
  const int64_t *sizes = nullptr;
  const int64_t *strides = nullptr;
};

View viewOf(const LrtUnrankedMemRef &m, int64_t elemSize) {
  auto *words = static_cast<char *>(m.descriptor);
  char *aligned = nullptr;
  int64_t offset = 0;
  std::memcpy(&aligned, words + sizeof(void *), sizeof aligned);
  std::memcpy(&offset, words + 2 * sizeof(void *), sizeof offset);
  View v;
  v.data = aligned + offset * elemSize;
  v.sizes = reinterpret_cast<const int64_t *>(words + 2 * sizeof(void *) + sizeof(int64_t));
  v.strides = v.sizes + m.rank;
  return v;
}

/// Copies dimensions d.. of the views starting at `from` and `to`.
void copyFrom(int64_t d, int64_t rank, int64_t elemSize, const View &src, const View &dst,
              const char *from, char *to) {
  const int64_t n = src.sizes[d];
  const int64_t a = src.strides[d] * elemSize, b = dst.strides[d] * elemSize;
  if (d + 1 < rank) {
    for (int64_t i = 0; i < n; ++i)
      copyFrom(d + 1, rank, elemSize, src, dst, from + i * a, to + i * b);
    return;
  }
  if (a == elemSize && b == elemSize) {
    std::memcpy(to, from, size_t(n * elemSize));
    return;
  }
  for (int64_t i = 0; i < n; ++i)
    std::memcpy(to + i * b, from + i * a, size_t(elemSize));
}

} // namespace

extern "C" void memrefCopy(int64_t elemSize, LrtUnrankedMemRef *src, LrtUnrankedMemRef *dst) {
  const int64_t rank = src->rank;
  View s = viewOf(*src, elemSize), t = viewOf(*dst, elemSize);
  if (rank == 0) {
    std::memcpy(t.data, s.data, size_t(elemSize));
    return;
  }
  for (int64_t d = 0; d < rank; ++d)
    if (s.sizes[d] == 0)
      return;
  copyFrom(0, rank, elemSize, s, t, s.data, t.data);
}
