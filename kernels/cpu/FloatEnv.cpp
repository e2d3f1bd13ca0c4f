// SPDX-License-Identifier: Apache-2.0
/// FTZ / DAZ in MXCSR for the threads that run compiled step code.
#include "kernels/cpu/FloatEnv.h"

#include <omp.h>

#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
constexpr unsigned kFtzDaz = 0x8040; // FTZ (bit 15) | DAZ (bit 6)
#define LLMP_HAVE_MXCSR 1
#endif

namespace {
void setOnThisThread() {
#ifdef LLMP_HAVE_MXCSR
  _mm_setcsr(_mm_getcsr() | kFtzDaz);
#endif
}
} // namespace

extern "C" void lrt_flush_denormals_to_zero() {
  setOnThisThread();
  // Each thread of the pool sets its own register (MXCSR is per thread).
#pragma omp parallel
  setOnThisThread();
}

extern "C" bool lrt_denormals_flushed() {
#ifdef LLMP_HAVE_MXCSR
  return (_mm_getcsr() & kFtzDaz) == kFtzDaz;
#else
  return false;
#endif
}
