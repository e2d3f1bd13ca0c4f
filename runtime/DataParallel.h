// SPDX-License-Identifier: Apache-2.0
/// Data parallel training across processes (`mpirun -np R llmpc run ...`): which rows of a
/// step each rank trains on, and the checks that keep the ranks in step. The transport is
/// runtime/collective (Collective.h); the step protocol (token counts, gradient scales,
/// allreduce of the gradients between grad_step and apply_step) is in StepABI.h.
///
/// A stage with `batch: G x T` and `ranks: R` compiles its steps for G / R rows. One
/// optimizer step of K micro-batches (`accumulate: K`) draws R * K micro-batches of G / R
/// rows from the seeded window order, exactly the K * G rows that one process with
/// `batch: G x T` draws; rank r trains micro-batches r*K .. r*K + K - 1 of them. So the
/// step's gradient (the mean over all its target tokens) does not depend on R, and the
/// loss curve of R ranks matches that of one process up to fp32 rounding.
#pragma once

#include "runtime/Data.h"
#include "runtime/Status.h"
#include "runtime/collective/Collective.h"

#include <cstdint>
#include <string>

namespace lrt {

/// Fills this rank's `microBatches` micro-batches of the next optimizer step and advances
/// `train` past the whole step (all ranks' rows), so every rank's `train` stays at the
/// same cursor. `tokens`, `targets` (and `segments` when not null, see TrainBatches::next):
/// i32[microBatches, train.batch(), train.seqLen()].
/// Requires 0 <= rank < ranks and microBatches >= 1.
void nextShard(TrainBatches &train, int rank, int ranks, int64_t microBatches,
               int32_t *tokens, int32_t *targets, int32_t *segments = nullptr);

/// The status every rank agrees on after a step that may fail on some ranks only (rank 0's
/// file writes, loading a checkpoint): `local` where it failed; elsewhere, if any rank
/// failed, Internal "stopped: rank(s) ... failed" naming how many; else success. One
/// allreduce of two int64. Errors: the collective's own.
Status agreeOnStatus(Collective &world, const Status &local);

/// True on every rank if `local` is true on any rank (one allreduce of one int64): ranks
/// that see a stop request at different steps stop at the same one.
/// Errors: the collective's own.
Expected<bool> anyRank(Collective &world, bool local);

/// Checks that `data` (fp32[n]) is bitwise the same on every rank: rank 0 broadcasts it in
/// chunks of 1 Mi elements and each rank compares. Errors: Internal "<what> differ between
/// ranks: first at element i (rank 0: x, rank r: y)" on the ranks that differ, and on the
/// others the agreeOnStatus message; the collective's own errors.
Status checkIdentical(Collective &world, const float *data, int64_t n, const std::string &what);

} // namespace lrt
