// SPDX-License-Identifier: Apache-2.0
/// The heap of compiled step functions: a caching allocator that keeps freed blocks in
/// per-size free lists and hands them out again, so that a step, which allocates the same
/// temporaries in the same sizes every time, touches malloc, the kernel (brk/mmap/munmap)
/// and fresh pages only in its first call. `finalize-memref-to-llvm{use-generic-functions}`
/// emits calls to `_mlir_memref_to_llvm_{alloc,aligned_alloc,free}`; the JIT binds those
/// names to the functions below. Blocks are never returned to the system (the cache is
/// bounded by the peak of the largest step); `lrt_alloc_release_cached` frees the idle ones.
#pragma once

#include <cstddef>
#include <cstdint>

extern "C" {

/// `size` bytes aligned to 64 bytes (the widest vector register); never null for size 0.
void *lrt_alloc(size_t size);
/// `size` bytes aligned to max(`alignment`, 64).
void *lrt_aligned_alloc(size_t alignment, size_t size);
/// Returns a block from lrt_alloc / lrt_aligned_alloc to its free list (null is ignored).
void lrt_free(void *ptr);
/// Frees every cached (not live) block to the system.
void lrt_alloc_release_cached();
/// Restarts the peak: peakBytes becomes the current liveBytes, so that what runs next (the
/// steps of one stage of a pipeline that runs several in one process) measures its own
/// peak. The other counters keep counting.
void lrt_alloc_reset_peak();

/// Counters, for tests and reports.
struct LrtAllocStats {
  uint64_t systemAllocs; ///< blocks obtained from the system
  uint64_t reuses;       ///< allocations served from a free list
  uint64_t liveBytes;    ///< bytes in blocks handed out and not yet freed
  uint64_t cachedBytes;  ///< bytes in free lists
  uint64_t peakBytes;    ///< the largest liveBytes so far
};
LrtAllocStats lrt_alloc_stats();
}
