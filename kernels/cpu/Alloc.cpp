// SPDX-License-Identifier: Apache-2.0
/// The caching allocator of kernels/cpu/Alloc.h. Algorithm:
///   1. Round the request up to a multiple of 64 bytes; the key is (rounded size, alignment).
///   2. Allocate: pop a block from the key's free list, else aligned_alloc a new one.
///      Remember the block's key in `live`.
///   3. Free: move the block from `live` to its key's free list.
/// One mutex guards the maps: a step allocates a few hundred blocks, each large.
#include "kernels/cpu/Alloc.h"

#include <cstdlib>
#include <map>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

namespace {

using Key = std::pair<size_t, size_t>; // (bytes, alignment)

struct Cache {
  std::mutex mu;
  std::map<Key, std::vector<void *>> freeLists;
  std::unordered_map<void *, Key> live;
  LrtAllocStats stats{};
};

Cache &cache() {
  static Cache *c = new Cache(); // never destroyed: JIT code may free during exit
  return *c;
}

void *allocate(size_t alignment, size_t size) {
  if (alignment < 64)
    alignment = 64;
  size_t bytes = (size + alignment - 1) / alignment * alignment;
  if (bytes == 0)
    bytes = alignment;
  Key key{bytes, alignment};
  Cache &c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  void *p = nullptr;
  auto it = c.freeLists.find(key);
  if (it != c.freeLists.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
    c.stats.cachedBytes -= bytes;
    ++c.stats.reuses;
  } else {
    p = std::aligned_alloc(alignment, bytes);
    if (!p)
      return nullptr;
    ++c.stats.systemAllocs;
  }
  c.live[p] = key;
  c.stats.liveBytes += bytes;
  if (c.stats.liveBytes > c.stats.peakBytes)
    c.stats.peakBytes = c.stats.liveBytes;
  return p;
}

} // namespace

extern "C" void *lrt_alloc(size_t size) { return allocate(64, size); }

extern "C" void *lrt_aligned_alloc(size_t alignment, size_t size) {
  return allocate(alignment, size);
}

extern "C" void lrt_free(void *ptr) {
  if (!ptr)
    return;
  Cache &c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  auto it = c.live.find(ptr);
  if (it == c.live.end()) { // not ours (cannot happen for JIT code): hand it to libc
    std::free(ptr);
    return;
  }
  Key key = it->second;
  c.live.erase(it);
  c.freeLists[key].push_back(ptr);
  c.stats.liveBytes -= key.first;
  c.stats.cachedBytes += key.first;
}

extern "C" void lrt_alloc_release_cached() {
  Cache &c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  for (auto &[key, blocks] : c.freeLists)
    for (void *p : blocks)
      std::free(p);
  c.freeLists.clear();
  c.stats.cachedBytes = 0;
}

extern "C" void lrt_alloc_reset_peak() {
  Cache &c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.stats.peakBytes = c.stats.liveBytes;
}

extern "C" LrtAllocStats lrt_alloc_stats() {
  Cache &c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.stats;
}
