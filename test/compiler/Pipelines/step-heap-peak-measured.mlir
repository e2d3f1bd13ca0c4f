// RUN: llmpc emit %llmp_src/examples/pretrain.llmp --compile-to=grad -o %t.mlir
// RUN: llmp-step-memory %t.mlir | awk -f %S/Inputs/heap-peak-bound.awk | FileCheck %s

// The step heap peak that llmp-step-heap-peak computes from the bufferized IR against the
// one measured (lrt_alloc_stats().peakBytes, kernels/cpu/Alloc.h) over one grad_step of
// the main example (4 layers, dim 128, batch 16 x 128, vocab 2048), run by
// bench/step_memory.cpp. Bound: equal to the byte. Every buffer of grad_step is a static
// memref.alloc freed by a memref.dealloc in straight-line code (no loop or parallel region
// allocates), so walking them in program order with lrt_alloc's rounding is exact; the
// passes after llmp-step-heap-peak add no allocation. Since llmp-static-arena all 183 are
// views of one arena allocated for the whole step, so this also checks the arena's
// compile-time size against what the allocator hands out. (On 2026-11-29: 280,841,408
// bytes; 268,255,424 since llmp-accumulate-into-matmul; 141,672,576 with the arena:
// 141,672,512 + 64 for its alignment.)
// CHECK: measured == computed: yes
