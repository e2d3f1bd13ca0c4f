// SPDX-License-Identifier: Apache-2.0
/// The floating-point environment compiled step code runs in.
#pragma once

extern "C" {

/// Sets flush-to-zero (FTZ, MXCSR bit 15: results below FLT_MIN become 0) and
/// denormals-are-zero (DAZ, bit 6: denormal inputs read as 0) on the calling thread and on
/// every thread of the OpenMP pool; threads the pool creates later inherit the caller's
/// MXCSR (pthread_create copies the floating-point environment). On x86-64 a multiply or
/// add that reads or makes a denormal takes a microcode assist of about 100 cycles; late in
/// training softmax probabilities (exp of logits 87+ below the row maximum), their gradients
/// and AdamW moments of rarely seen embedding rows (m decays by beta1 per step) fall into
/// the denormal range, and GEMMs over them slow down. Values below 1.2e-38 do not change a
/// float32 training step otherwise. TensorFlow's `ScopedFlushDenormal` does the same.
/// A no-op on CPUs without SSE (non-x86). Never fails.
void lrt_flush_denormals_to_zero();

/// True if both FTZ and DAZ are set on the calling thread (false off x86).
bool lrt_denormals_flushed();
}
