// SPDX-License-Identifier: Apache-2.0
/// Matrix-product kernels called from compiled code (`llmp-linalg-to-lrt` emits the calls).
/// Every entry point computes C = op(A) op(B) + beta C (BLAS sgemm's beta) with
/// beta = 1 when `accumulate` is nonzero (C += op(A) op(B), linalg.matmul's semantics) and
/// beta = 0 otherwise (C = op(A) op(B): C is written without being read, so it may hold
/// anything, NaN included; the compiler uses this for a C whose only prior contents is a
/// zero fill, which it then drops). op transposes when its flag is nonzero. Operands are
/// f32 strided memref descriptors (runtime/MemRef.h); no error is reported (the compiler
/// checks the shapes: op(A) (M,K), op(B) (K,N), C (M,N)).
#pragma once

#include "runtime/MemRef.h"

#include <cstdint>

extern "C" {

/// A (M,K) or (K,M) if `ta`; B (K,N) or (N,K) if `tb`; C (M,N).
/// Kernel rule: a product with min(M, N, K) <= 64 (on AMD CPUs with AVX-512 any product
/// with min(M, N) > 4, lrt::matmulF32AllOnDnnl) and at least 64^3 multiply-adds, called from serial code, runs
/// on oneDNN's f32 matmul (kernels/cpu/MatmulF32Dnnl.h: LoRA's rank-r products and
/// attention's per-head ones, 1.1-2x faster there on 2 threads, bench/gemm_shapes); every
/// other product, and any layout oneDNN refuses, on cblas_sgemm
/// when the operands have a unit stride in one dimension, plain loops otherwise. The two
/// kernels agree within fp32 reassociation (tests: atol 1e-5 + |ref| K eps(f32)).
void _mlir_ciface_lrt_matmul_f32(int32_t ta, int32_t tb, int32_t accumulate,
                                 lrt::MemRef<float, 2> *a,
                                 lrt::MemRef<float, 2> *b, lrt::MemRef<float, 2> *c);

/// The batched form: A (Bt,M,K), B (Bt,K,N), C (Bt,M,N) (transposes act on the last two
/// dims); the rule above applies to the whole batch (Bt M N K multiply-adds).
void _mlir_ciface_lrt_batch_matmul_f32(int32_t ta, int32_t tb, int32_t accumulate,
                                       lrt::MemRef<float, 3> *a,
                                       lrt::MemRef<float, 3> *b, lrt::MemRef<float, 3> *c);

/// `_mlir_ciface_lrt_matmul_f32` without the oneDNN route (OpenBLAS or plain loops only):
/// the baseline of bench/gemm_shapes and of the routing tests.
void lrt_matmul_f32_blas(int32_t ta, int32_t tb, int32_t accumulate, lrt::MemRef<float, 2> *a,
                         lrt::MemRef<float, 2> *b, lrt::MemRef<float, 2> *c);

/// `_mlir_ciface_lrt_batch_matmul_f32` without the oneDNN route.
void lrt_batch_matmul_f32_blas(int32_t ta, int32_t tb, int32_t accumulate,
                               lrt::MemRef<float, 3> *a, lrt::MemRef<float, 3> *b,
                               lrt::MemRef<float, 3> *c);

/// Plain-loop reference of `_mlir_ciface_lrt_matmul_f32`, for tests.
void lrt_matmul_f32_ref(int32_t ta, int32_t tb, int32_t accumulate, const lrt::MemRef<float, 2> *a,
                        const lrt::MemRef<float, 2> *b, lrt::MemRef<float, 2> *c);
}
